"""One GRPO engine, on PyTorch and `accelerate`; RLVR and RLMT are stages on top of it.

The knobs carry the names and meanings of TRL's `GRPOConfig`: `num_generations` (G),
`beta` (KL to a frozen reference; 0 keeps no reference model in memory), `epsilon` and
`epsilon_high` (clipping, asymmetric when they differ), `loss_type` (grpo / bnpo /
dr_grpo / dapo), `scale_rewards` (group / batch / none), `importance_sampling_level`
(token / sequence), `num_iterations`, `mask_truncated_completions`,
`max_completion_length`, `per_device_train_batch_size` (completions per micro-batch),
`gradient_accumulation_steps`.

A *step* is one generation round: each process samples G completions for each of its
prompts (whole groups stay on one process, so group statistics are exact), the stage
scores them, and the policy takes `num_iterations` optimizer updates on that batch.
Gradients are summed across processes (gloo on CPU), with each process's loss scaled so
the sum is the loss of the whole batch. With `fsdp` the parameters are sharded instead
(FSDP2, `UnifiedModel.shard`), and FSDP averages the gradients: the same update.

Checkpoints hold the model, optimizer, scheduler, RNG and step (the data position: a
stage's batch is a pure function of the step), written atomically; sampling draws from a
generator seeded by (seed, step, process), so `--resume` gives the metrics an
uninterrupted run gives. A non-finite reward, loss or gradient stops the step before the
weights change.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from seer.config import ConfigError
from seer.io import atomic_write_json
from seer.models.fsdp import assign, device_mesh, full_tensor
from seer.models.interface import UnifiedModel
from seer.rollout import Prompt, Rollout, hash_seed, sample_groups
from seer.train.checkpoint import check_finite, load_state, restore, save_checkpoint

LOSS_TYPES = ("grpo", "bnpo", "dr_grpo", "dapo")
SCALE_REWARDS = ("group", "batch", "none")
IS_LEVELS = ("token", "sequence")
STD_EPS = 1e-4  # as in TRL and the authors' code: (r - mean) / (std + 1e-4)


@dataclasses.dataclass
class GRPOConfig:
    num_generations: int = 8
    per_device_train_batch_size: int = 16
    gradient_accumulation_steps: int = 2
    max_completion_length: int = 24
    temperature: float = 1.0
    beta: float = 0.0
    epsilon: float = 0.2
    epsilon_high: float | None = None
    loss_type: str = "dapo"
    scale_rewards: str = "group"
    importance_sampling_level: str = "token"
    num_iterations: int = 1
    mask_truncated_completions: bool = False
    # DAPO's dynamic sampling: draw this many times the step's prompts, sample them all, and
    # train on the groups whose rewards differ, filling up with unanimous ones (no gradient)
    # only when too few differ. 1: off. Costs the extra sampling, not extra backward passes.
    dynamic_sampling_factor: int = 1
    learning_rate: float = 1e-4
    lr_scheduler_type: str = "constant"
    warmup_steps: int = 0
    weight_decay: float = 0.0
    max_grad_norm: float = 1.0
    max_steps: int = 60
    logging_steps: int = 1
    save_steps: int = 20
    use_lora: bool = False
    lora_r: int = 8
    lora_alpha: int = 16
    # Shard the policy's parameters, gradients and AdamW state across processes (FSDP2):
    # for models whose full training does not fit one device. Off: every process holds
    # all of them. No effect with one process. Sampling gathers full weights for its
    # loop; the reference model (beta != 0) stays whole on every process. Resume with the
    # setting the checkpoint was written with.
    fsdp: bool = False

    def validate(self) -> None:
        checks = {
            "loss_type": (self.loss_type, LOSS_TYPES),
            "scale_rewards": (self.scale_rewards, SCALE_REWARDS),
            "importance_sampling_level": (self.importance_sampling_level, IS_LEVELS),
        }
        for key, (value, allowed) in checks.items():
            if value not in allowed:
                raise ConfigError(f"{key} must be one of {', '.join(allowed)}, got {value!r}")
        for key in (
            "num_generations",
            "per_device_train_batch_size",
            "gradient_accumulation_steps",
            "max_completion_length",
            "num_iterations",
            "logging_steps",
            "save_steps",
            "dynamic_sampling_factor",
        ):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key} must be at least 1, got {getattr(self, key)}")
        if self.num_generations < 2:
            raise ConfigError("num_generations must be at least 2: advantages compare completions of a group")
        if self.completions_per_step % self.num_generations:
            raise ConfigError(
                f"per_device_train_batch_size x gradient_accumulation_steps "
                f"({self.completions_per_step}) must be a multiple of num_generations "
                f"({self.num_generations}), so whole groups go in a step"
            )
        if self.max_steps < 0 or self.temperature <= 0 or self.epsilon < 0:
            raise ConfigError("max_steps must be >= 0, temperature > 0 and epsilon >= 0")

    @property
    def completions_per_step(self) -> int:
        """Completions each process samples per step."""
        return self.per_device_train_batch_size * self.gradient_accumulation_steps

    @property
    def prompts_per_step(self) -> int:
        return self.completions_per_step // self.num_generations


# ---------------------------------------------------------------- the math (pure functions)


def group_advantages(
    rewards: torch.Tensor,
    num_generations: int,
    scale_rewards: str = "group",
    batch_std: torch.Tensor | None = None,
) -> torch.Tensor:
    """(r - group mean), divided by the group's std ("group"), the batch's ("batch") or
    nothing ("none"); rewards are group-contiguous. `batch_std` overrides the local batch
    std (the std over all processes' rewards)."""
    groups = rewards.view(-1, num_generations)
    centred = groups - groups.mean(1, keepdim=True)
    # A group of equal rewards has no signal: its advantages are exactly 0 (a float mean can
    # miss the common value by an ulp, which the group std + eps would blow up to ~1e-3).
    centred = centred.masked_fill(unanimous(groups).unsqueeze(1), 0.0)
    if scale_rewards == "group":
        centred = centred / (groups.std(1, keepdim=True) + STD_EPS)
    elif scale_rewards == "batch":
        std = rewards.std() if batch_std is None else batch_std
        centred = centred / (std + STD_EPS)
    elif scale_rewards != "none":
        raise ValueError(f"scale_rewards must be one of {', '.join(SCALE_REWARDS)}, got {scale_rewards!r}")
    return centred.reshape(-1)


def unanimous(groups: torch.Tensor) -> torch.Tensor:
    """Per group (a row of `groups`, G rewards): whether all its rewards are equal."""
    return groups.amax(1) == groups.amin(1)


def kl_k3(logp: torch.Tensor, ref_logp: torch.Tensor) -> torch.Tensor:
    """Per-token KL estimate exp(ref - pi) - (ref - pi) - 1 (unbiased, always >= 0)."""
    delta = ref_logp - logp
    return torch.exp(delta) - delta - 1


def per_token_loss(
    logp: torch.Tensor,
    old_logp: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    *,
    epsilon: float,
    epsilon_high: float | None = None,
    beta: float = 0.0,
    ref_logp: torch.Tensor | None = None,
    importance_sampling_level: str = "token",
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """The clipped surrogate (+ beta KL) per token, and what to log about it. B x T in."""
    eps_low, eps_high = epsilon, epsilon if epsilon_high is None else epsilon_high
    log_ratio = logp - old_logp
    if importance_sampling_level == "sequence":
        log_ratio = ((log_ratio * mask).sum(1) / mask.sum(1).clamp(min=1)).unsqueeze(1)
    elif importance_sampling_level != "token":
        raise ValueError(
            f"importance_sampling_level must be token or sequence, got {importance_sampling_level!r}"
        )
    ratio = torch.exp(log_ratio)
    clipped = torch.clamp(ratio, 1 - eps_low, 1 + eps_high)
    adv = advantages.unsqueeze(1)
    loss = -torch.min(ratio * adv, clipped * adv)
    stats: dict[str, torch.Tensor] = {}
    # Tokens where clipping bit: ratio below 1 - eps with A < 0, or above 1 + eps with A > 0.
    low = ((ratio < 1 - eps_low) & (adv < 0)).expand_as(mask)
    high = ((ratio > 1 + eps_high) & (adv > 0)).expand_as(mask)
    stats["clip_ratio/low"] = _masked_mean(low.float(), mask)
    stats["clip_ratio/high"] = _masked_mean(high.float(), mask)
    if beta != 0.0:
        if ref_logp is None:
            raise ValueError("beta != 0 needs the reference log-probs")
        kl = kl_k3(logp, ref_logp)
        loss = loss + beta * kl
        stats["kl"] = _masked_mean(kl, mask)
    return loss, stats


def reduce_loss(
    loss: torch.Tensor,
    mask: torch.Tensor,
    loss_type: str,
    *,
    max_completion_length: int,
    num_items_in_batch: float | None = None,
) -> torch.Tensor:
    """TRL's reductions: grpo (per sequence, then mean), bnpo (mean over the micro-batch's
    tokens), dr_grpo (sum / (B x max_completion_length)), dapo (sum / tokens of the whole
    generation batch, `num_items_in_batch`)."""
    mask = mask.float()
    total = (loss * mask).sum()
    if loss_type == "grpo":
        return ((loss * mask).sum(1) / mask.sum(1).clamp(min=1)).mean()
    if loss_type == "bnpo":
        return total / mask.sum().clamp(min=1)
    if loss_type == "dr_grpo":
        return total / (loss.shape[0] * max_completion_length)
    if loss_type == "dapo":
        return total / max(num_items_in_batch if num_items_in_batch is not None else float(mask.sum()), 1.0)
    raise ValueError(f"loss_type must be one of {', '.join(LOSS_TYPES)}, got {loss_type!r}")


def _masked_mean(x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    mask = mask.float()
    return (x * mask).sum() / mask.sum().clamp(min=1)


# ---------------------------------------------------------------- the engine


class Stage(Protocol):
    """What a stage gives the engine."""

    name: str
    prefix: str  # forced start of every completion (usually "")
    progress_keys: tuple[str, ...]  # metrics shown on the progress bar

    def batch(self, step: int, n: int) -> list[Prompt]:
        """The step's n prompts: a pure function of the step, so resuming replays the data."""

    def rewards(self, rollout: Rollout, step: int) -> dict[str, torch.Tensor]:
        """Reward components per completion (summed with weights into the reward); may
        also return 'metric/...' entries, logged but not rewarded."""


def _sum_rewards(parts: dict[str, torch.Tensor], weights: dict[str, float] | None) -> torch.Tensor:
    rewards = [w * parts[k] for k, w in (weights or {k: 1.0 for k in parts}).items() if k in parts]
    if not rewards:
        raise ValueError("the stage returned no reward components")
    return torch.stack(rewards).sum(0)


class GRPOEngine:
    def __init__(
        self,
        model: UnifiedModel,
        stage: Stage,
        cfg: GRPOConfig,
        out: str | Path,
        *,
        seed: int = 0,
        reward_weights: dict[str, float] | None = None,
        init_model: str | Path | None = None,
        load_model: Callable[[str | Path], UnifiedModel] | None = None,
        accelerator=None,
    ):
        cfg.validate()
        from accelerate import Accelerator

        self.cfg, self.stage, self.out, self.seed = cfg, stage, Path(out), seed
        self.reward_weights = reward_weights
        self.accelerator = accelerator or Accelerator(cpu=True)
        self.model = model
        self.init_model, self.load_model = init_model, load_model
        self.ref = None
        if cfg.beta != 0.0:  # a frozen copy of the starting policy; none at all when beta == 0
            self.ref = copy.deepcopy(model).eval()
            for p in self.ref.trainable_parameters():
                p.requires_grad_(False)
        if cfg.use_lora:
            model.enable_lora(r=cfg.lora_r, alpha=cfg.lora_alpha)
        # Sharded after the reference copy and the adapters exist, before the optimizer, which
        # must hold the sharded parameters; `fsdp_root` holds them all (optimizer state dicts).
        self.fsdp_root = None
        if cfg.fsdp and self.accelerator.num_processes > 1:
            self.fsdp_root = model.shard(device_mesh(model.device))
        self.params = model.trainable_parameters()
        if not self.params:
            raise ValueError("the model has no trainable parameters")
        self.optimizer = torch.optim.AdamW(self.params, lr=cfg.learning_rate, weight_decay=cfg.weight_decay)
        from transformers import get_scheduler

        self.scheduler = get_scheduler(
            cfg.lr_scheduler_type,
            self.optimizer,
            num_warmup_steps=cfg.warmup_steps,
            num_training_steps=max(cfg.max_steps * cfg.num_iterations, 1),
        )
        self.start_step = 0

    # ------------------------------------------------------------ state

    @property
    def is_main(self) -> bool:
        return self.accelerator.is_main_process

    @property
    def checkpoint_dir(self) -> Path:
        return self.out / "checkpoint"

    @property
    def sharded(self) -> bool:
        return self.fsdp_root is not None

    def _optimizer_state(self) -> dict[str, Any] | None:
        """Sharded: the full AdamW state keyed by parameter name, on the main process
        (collective); it loads into any number of processes. Replicated: None (the
        optimizer's own state dict is saved)."""
        if not self.sharded:
            return None
        from torch.distributed.checkpoint.state_dict import StateDictOptions, get_optimizer_state_dict

        return get_optimizer_state_dict(
            self.fsdp_root, self.optimizer, options=StateDictOptions(full_state_dict=True, cpu_offload=True)
        )

    def _save(self, step: int) -> None:
        # Sharded, every gathering below is collective: all processes run it, in this order.
        extra: dict[str, Any] = {"fsdp": self.sharded}
        if self.cfg.use_lora:  # adapters apart from the merged copy, so a resume is exact
            extra["adapter"] = {
                n: full_tensor(p.detach()).cpu().clone()
                for n, p in self.model.lm.named_parameters()
                if p.requires_grad
            }
        optimizer_state = self._optimizer_state()
        if self.is_main:
            save_checkpoint(
                self.checkpoint_dir,
                self.model.save_pretrained,
                step=step,
                optimizer=self.optimizer,
                optimizer_state=optimizer_state,
                scheduler=self.scheduler,
                extra=extra,
            )
        elif self.sharded:  # gathers the weights with the main process; writes nothing here
            self.model.save_pretrained(self.checkpoint_dir)
        self.accelerator.wait_for_everyone()

    def save_model(self, directory: str | Path) -> None:
        """The policy in Hugging Face layout, written by the main process; every process
        calls it (sharded, the weights are gathered from all of them)."""
        if self.is_main or self.sharded:
            self.model.save_pretrained(directory)
        self.accelerator.wait_for_everyone()

    def resume(self) -> int:
        """Load the last checkpoint in `out`; returns the step to continue from."""
        state = load_state(self.checkpoint_dir)
        if bool(state["extra"].get("fsdp", False)) != self.sharded:
            raise ValueError(
                f"{self.checkpoint_dir}: written with {'sharded' if not self.sharded else 'replicated'} "
                "parameters; resume with the fsdp setting it was written with"
            )
        # `assign` puts each process's shard of the saved value into a sharded parameter.
        if self.cfg.use_lora:
            named = dict(self.model.lm.named_parameters())
            for name, value in state["extra"]["adapter"].items():
                assign(named[name], value)
        else:
            if self.load_model is None:
                raise ValueError("resuming needs a model loader")
            saved = self.load_model(self.checkpoint_dir)
            for p, q in zip(self.params, saved.trainable_parameters(), strict=True):
                assign(p, q)
        if self.sharded:
            from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict

            set_optimizer_state_dict(
                self.fsdp_root,
                self.optimizer,
                optim_state_dict=state["optimizer"],
                options=StateDictOptions(full_state_dict=True),
            )
            state = {**state, "optimizer": None}
        self.start_step = restore(state, self.optimizer, self.scheduler)
        return self.start_step

    def resume_if_asked(self, resume: bool, metrics_file: Path) -> dict[str, Any] | None:
        """With `resume` and a checkpoint in `out`: load it, and return the metrics the
        interrupted run had saved ({} if none); otherwise None (a fresh run)."""
        if not (resume and self.checkpoint_dir.exists()):
            return None
        self.resume()
        return json.loads(metrics_file.read_text()) if metrics_file.exists() else {}

    def run(self, name: str) -> dict[str, Any]:
        """Train to max_steps, logging to out/log.jsonl and TensorBoard; the timing record."""
        log = RunLog(self.out, name, self.is_main)
        t0 = time.perf_counter()
        try:
            records = self.train(log)
        finally:
            log.close()
        seconds = time.perf_counter() - t0
        return {"steps": self.cfg.max_steps, "steps_run": len(records), "seconds": seconds,
                "seconds_per_step": seconds / max(len(records), 1)}

    # ------------------------------------------------------------ one step

    def _gather(self, x: torch.Tensor) -> torch.Tensor:
        """All processes' values, on the CPU (collectives run on the process's device: NCCL
        needs CUDA tensors, gloo CPU ones)."""
        return self.accelerator.gather(x.to(self.accelerator.device)).cpu()

    def _sum(self, x: torch.Tensor) -> torch.Tensor:
        return self.accelerator.reduce(x.to(self.accelerator.device), "sum").cpu()

    def _generator(self, step: int) -> torch.Generator:
        return torch.Generator().manual_seed(hash_seed(self.seed, step, self.accelerator.process_index))

    def _local_prompts(self, step: int) -> list[Prompt]:
        n = self.cfg.prompts_per_step * self.cfg.dynamic_sampling_factor
        everyone = self.stage.batch(step, n * self.accelerator.num_processes)
        k = self.accelerator.process_index
        return everyone[k * n : (k + 1) * n]

    def _logps(
        self, model: UnifiedModel, rollout: Rollout, rows: list[int], active: torch.Tensor | None = None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs and mask of the completions `rows`. With `active`, only the rows it marks
        are run through the model; the others get log-prob 0 under their true mask. With a
        zero advantage and no KL term a row adds nothing to the loss or its gradient, only its
        tokens to the loss's normaliser, so this is the same loss, for less compute."""
        if active is not None and not bool(active[rows].all()):
            return self._some_logps(model, rollout, rows, active)
        prompts = [rollout.prompts[i] for i in rows]
        images = [p.images for p in prompts] if any(p.images for p in prompts) else None
        return model.completion_logprobs(
            [p.text for p in prompts],
            [rollout.samples.token_ids[i] for i in rows],
            images,
            prefix=self.stage.prefix,
            temperature=self.cfg.temperature,
        )

    def _some_logps(
        self, model: UnifiedModel, rollout: Rollout, rows: list[int], active: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        lengths = [len(rollout.samples.token_ids[i]) for i in rows]
        width = max(lengths)
        mask = torch.zeros(len(rows), width, dtype=torch.bool)
        for k, n in enumerate(lengths):
            if n:
                mask[k, width - n :] = True
        # One row runs even when none is active, so every process does a backward pass
        # each micro-batch (the gradient collectives must match across processes).
        live = [k for k, i in enumerate(rows) if active[i]] or [0]
        some, _ = self._logps(model, rollout, [rows[k] for k in live])
        some = F.pad(some, (width - some.shape[1], 0))  # right-aligned, like the full batch
        logp = torch.zeros(len(rows), width, dtype=some.dtype, device=some.device)
        logp = logp.index_copy(0, torch.tensor(live, device=some.device), some)
        return logp, mask.to(some.device)

    def _select_groups(self, rewards: torch.Tensor) -> list[int]:
        """Dynamic sampling: the indices of the step's `prompts_per_step` groups, those whose
        rewards differ first (in draw order), then unanimous ones if too few differ."""
        split = (~unanimous(rewards.view(-1, self.cfg.num_generations))).tolist()
        order = [g for g, s in enumerate(split) if s] + [g for g, s in enumerate(split) if not s]
        return sorted(order[: self.cfg.prompts_per_step])

    def step(self, step: int) -> dict[str, float]:
        cfg, acc = self.cfg, self.accelerator
        t0 = time.perf_counter()
        self.model.eval()
        with torch.no_grad():
            rollout = sample_groups(
                self.model,
                self._local_prompts(step),
                cfg.num_generations,
                max_new_tokens=cfg.max_completion_length,
                temperature=cfg.temperature,
                generator=self._generator(step),
                prefix=self.stage.prefix,
                batch_size=cfg.per_device_train_batch_size * 2,
            )
        t_sample = time.perf_counter() - t0
        parts = {
            k: torch.as_tensor(v, dtype=torch.float32) for k, v in self.stage.rewards(rollout, step).items()
        }
        rewarded = {k: v for k, v in parts.items() if not k.startswith("metric/")}
        drawn = rewards = _sum_rewards(rewarded, self.reward_weights)
        check_finite("reward", rewards, step)
        sampled = rollout  # what the policy did this step: logged whole
        if cfg.dynamic_sampling_factor > 1:
            rows = [g * cfg.num_generations + j for g in self._select_groups(drawn)
                    for j in range(cfg.num_generations)]
            rollout, rewards = rollout.select(rows), drawn[rows]
        batch_std = self._gather(rewards).std() if cfg.scale_rewards == "batch" else None
        advantages = group_advantages(rewards, cfg.num_generations, cfg.scale_rewards, batch_std)

        n = len(rollout.prompts)
        lengths = torch.tensor([len(t) for t in rollout.samples.token_ids], dtype=torch.float32)
        keep = torch.ones(n)
        if cfg.mask_truncated_completions:
            keep = 1.0 - torch.tensor(rollout.samples.truncated, dtype=torch.float32)
        tokens_here = float((lengths * keep).sum())
        tokens_all = float(self._sum(torch.tensor(tokens_here)))
        procs = acc.num_processes
        micro = [
            list(range(k, min(k + cfg.per_device_train_batch_size, n)))
            for k in range(0, n, cfg.per_device_train_batch_size)
        ]
        # Without a KL term, completions with a zero advantage (unanimous groups) cannot move
        # the weights: the model skips them (`_logps`).
        active = advantages != 0 if self.ref is None else None

        old, ref = {}, {}
        with torch.no_grad():
            for j, rows in enumerate(micro):
                if cfg.num_iterations > 1:
                    old[j] = self._logps(self.model, rollout, rows, active)[0]
                if self.ref is not None:
                    ref[j] = self._logps(self.ref, rollout, rows)[0]

        self.model.train()
        stats: dict[str, list[float]] = {}
        for _ in range(cfg.num_iterations):
            step_loss = 0.0  # this process's share of the batch loss
            self.optimizer.zero_grad(set_to_none=True)
            for j, rows in enumerate(micro):
                logp, mask = self._logps(self.model, rollout, rows, active)
                mask = mask & (keep[rows] > 0).unsqueeze(1).to(mask.device)
                old_logp = old[j] if j in old else logp.detach()
                loss_tok, s = per_token_loss(
                    logp,
                    old_logp,
                    advantages[rows].to(logp.device),
                    mask,
                    epsilon=cfg.epsilon,
                    epsilon_high=cfg.epsilon_high,
                    beta=cfg.beta,
                    ref_logp=ref.get(j),
                    importance_sampling_level=cfg.importance_sampling_level,
                )
                if cfg.loss_type == "dapo":
                    loss = (
                        reduce_loss(
                            loss_tok,
                            mask,
                            "dapo",
                            max_completion_length=cfg.max_completion_length,
                            num_items_in_batch=tokens_all,
                        )
                        * procs
                    )
                else:
                    loss = reduce_loss(
                        loss_tok, mask, cfg.loss_type, max_completion_length=cfg.max_completion_length
                    ) / len(micro)
                check_finite("loss", loss, step)
                # Replicated: the processes' gradients are summed below. Sharded: FSDP averages
                # them, so each backpropagates its whole share (dapo's `* procs` included).
                (loss if self.sharded else loss / procs).backward()
                for key, value in s.items():
                    stats.setdefault(key, []).append(float(value.detach()))
                step_loss += float(loss.detach())
            if procs > 1 and not self.sharded:  # sum of the scaled losses = the whole batch's loss
                for p in self.params:
                    if p.grad is not None:
                        p.grad.copy_(acc.reduce(p.grad, "sum"))
            norm = full_tensor(torch.nn.utils.clip_grad_norm_(self.params, cfg.max_grad_norm))
            if not torch.isfinite(norm):
                self.optimizer.zero_grad(set_to_none=True)
                check_finite("gradient norm", norm, step)
            self.optimizer.step()
            self.scheduler.step()
            stats.setdefault("grad_norm", []).append(float(norm))
            stats.setdefault("loss", []).append(float(self._sum(torch.tensor(step_loss))) / procs)

        everyone = self._gather(drawn)
        groups = everyone.view(-1, cfg.num_generations)
        sampled_lengths = torch.tensor([len(t) for t in sampled.samples.token_ids], dtype=torch.float32)
        record: dict[str, float] = {
            "step": step + 1,
            "reward": float(everyone.mean()),
            "reward_std": float(groups.std(1).mean()),
            "frac_reward_zero_std": float((groups.std(1) < 1e-6).float().mean()),
            "completion_length": float(self._gather(sampled_lengths).mean()),
            "truncated": float(
                self._gather(torch.tensor(sampled.samples.truncated, dtype=torch.float32)).mean()
            ),
            # completions of the update with a zero advantage: the share the skip saves
            "frac_trained_zero_advantage": float((self._gather(advantages) == 0).float().mean()),
            "learning_rate": self.scheduler.get_last_lr()[0],
            "seconds_sampling": t_sample,
            "seconds": time.perf_counter() - t0,
        }
        for key, value in parts.items():
            name = key.removeprefix("metric/") if key.startswith("metric/") else f"rewards/{key}"
            record[name] = float(self._gather(value).mean())
        for key, values in stats.items():
            record[key] = float(sum(values) / len(values))
        return record

    # ------------------------------------------------------------ the loop

    def train(self, log: Callable[[dict[str, Any]], None] | None = None) -> list[dict[str, Any]]:
        cfg = self.cfg
        records = []
        bar = tqdm(
            range(self.start_step, cfg.max_steps),
            desc=f"{self.stage.name}",
            initial=self.start_step,
            total=cfg.max_steps,
            disable=not self.is_main,
        )
        for step in bar:
            record = self.step(step)
            records.append(record)
            if self.is_main and ((step + 1) % cfg.logging_steps == 0 or step + 1 == cfg.max_steps):
                if log is not None:
                    log(record)
                bar.set_postfix(
                    {k: f"{record[k]:.3f}" for k in ("reward", *self.stage.progress_keys) if k in record}
                )
            if (step + 1) % cfg.save_steps == 0 or step + 1 == cfg.max_steps:
                self._save(step + 1)
        return records


class RunLog:
    """log.jsonl + TensorBoard under `out`, written by the main process."""

    def __init__(self, out: Path, prefix: str, enabled: bool = True):
        self.enabled, self.prefix = enabled, prefix
        if not enabled:
            return
        from torch.utils.tensorboard import SummaryWriter

        out.mkdir(parents=True, exist_ok=True)
        self.file = (out / "log.jsonl").open("a")
        self.writer = SummaryWriter(str(out / "tensorboard"))

    def __call__(self, record: dict[str, Any]) -> None:
        if not self.enabled:
            return
        self.file.write(json.dumps(record) + "\n")
        self.file.flush()
        for key, value in record.items():
            if key != "step" and isinstance(value, (int, float)) and math.isfinite(value):
                self.writer.add_scalar(f"{self.prefix}/{key}", value, record["step"])

    def close(self) -> None:
        if self.enabled:
            self.file.close()
            self.writer.close()


def write_config(out: Path, config: Any) -> None:
    atomic_write_json(
        out / "config.json", dataclasses.asdict(config) if dataclasses.is_dataclass(config) else config
    )
