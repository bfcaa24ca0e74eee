"""Stage 2, RLMT: the model learns to reprompt itself, rewarded only by its own frozen evaluator.

For each (prompt P, instruction I) of the VIE train set, the policy writes G completions
`<think> reasoning </think> <answer> reprompt </answer>`. The frozen generator renders the
policy image from each reprompt and the reference image from the baseline text "P, I"
(once per prompt, cached); every image of a prompt uses the same seed, so the images of a
group differ only by their text. The frozen RLVR evaluator is asked "does the first image
match the instruction better than the second image ?" and its P(Yes) (read after its own
reasoning) is the reward: averaged over both image orders by default (P(Yes) with the
policy image first, P(No) with it second), or the paper's single order (policy first).
A completion that cannot be parsed gets reward 0 (and no render). GRPO updates the
policy's text tokens; no external reward model is used.

Reward-hacking watch (shapes world): every step logs the ground-truth satisfaction of the
policy images, its correlation with the endogenous reward, and the reprompt length.
"""

from __future__ import annotations

import dataclasses
import random
import time
from pathlib import Path
from typing import Any

import torch

from seer.config import ConfigError
from seer.data import templates as T
from seer.data.formats import parse_reprompt
from seer.io import atomic_write_json
from seer.rewards import order_averaged, pearson
from seer.rollout import ImageCache, Prompt, Rollout, judge_p_yes, sample_reprompts, sample_seed
from seer.train.grpo import GRPOConfig, GRPOEngine, write_config

ORDERS = ("both", "policy_first")
STARTS = ("rlvr", "base")
# "evaluator" is SEER's endogenous reward. "ground_truth" (shapes world only) rewards the
# analyzer's instruction satisfaction instead: an ablation that separates what the policy
# can learn at all from what the evaluator's errors cost.
REWARDS = ("evaluator", "ground_truth")


def _rlmt_grpo() -> GRPOConfig:
    return GRPOConfig(
        num_generations=8,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=2,
        max_completion_length=48,
        learning_rate=1e-4,
        beta=0.02,
        max_steps=30,
        save_steps=10,
    )


@dataclasses.dataclass
class RLMTConfig:
    out: str = "runs/rlmt"
    seed: int = 0
    vie: str = "runs/vie"
    evaluator: str = "runs/rlvr/model"  # the frozen RLVR checkpoint: evaluator and generator
    start: str = "rlvr"  # the policy starts from the RLVR checkpoint, or from the base model
    base_model: str | None = None  # the base model when start: base (default: the packaged mini)
    order: str = "both"
    reward: str = "evaluator"
    # Keyword arguments for the backend's from_pretrained (dtype, device, gradient_checkpointing, ...).
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    format_weight: float = 0.0
    reward_weight: float = 1.0
    guidance_scale: float | None = None
    max_reasoning_tokens: int = 12  # the evaluator's reasoning before its answer
    eval_splits: list[str] = dataclasses.field(default_factory=lambda: ["test_id", "test_ood"])
    eval_samples: int = 0  # per split; 0: all
    eval_before: bool = True
    batch_size: int = 32
    grpo: GRPOConfig = dataclasses.field(default_factory=_rlmt_grpo)

    def validate(self) -> None:
        if self.order not in ORDERS:
            raise ConfigError(f"order must be one of {', '.join(ORDERS)}, got {self.order!r}")
        if self.start not in STARTS:
            raise ConfigError(f"start must be one of {', '.join(STARTS)}, got {self.start!r}")
        if self.reward not in REWARDS:
            raise ConfigError(f"reward must be one of {', '.join(REWARDS)}, got {self.reward!r}")
        self.grpo.validate()


class RLMTStage:
    name = "rlmt"
    prefix = ""
    progress_keys = ("gt_satisfaction", "format")

    def __init__(self, cfg: RLMTConfig, samples: list[dict], judge_model, world: bool = True):
        if not samples:
            raise ValueError(f"{cfg.vie}: the train split has no samples")
        if cfg.reward == "ground_truth" and not world:
            raise ConfigError(f"{cfg.vie}: reward: ground_truth needs a shapes-world VIE set (its analyzer)")
        self.cfg, self.samples, self.judge_model, self.world = cfg, samples, judge_model, world
        self.cache = ImageCache(judge_model, cfg.guidance_scale, cfg.batch_size)
        self.policy_renders = 0
        self.instructions = None
        if world:
            from seer.world.instructions import load_instructions

            self.instructions = load_instructions()

    def batch(self, step: int, n: int) -> list[Prompt]:
        rng = random.Random(f"{self.cfg.seed}/rlmt/batch/{step}")
        chosen = rng.sample(self.samples, n) if n <= len(self.samples) else rng.choices(self.samples, k=n)
        return [Prompt(T.reprompt_question(s["prompt"], s["instruction"]), [], {"sample": s}) for s in chosen]

    def rewards(self, rollout: Rollout, step: int) -> dict[str, torch.Tensor]:
        n = len(rollout.prompts)
        parsed = [parse_reprompt(c) for c in rollout.completions]
        samples = [p.data["sample"] for p in rollout.prompts]
        ok = [i for i in range(n) if parsed[i].ok]
        reward = torch.zeros(n)
        first = torch.zeros(n)
        gt = torch.full((n,), float("nan"))
        render_s = judge_s = 0.0
        if ok:
            started = time.perf_counter()
            # A group often repeats a reprompt; drawn with its sample's seed it gives the same
            # image, and so the same reward: each distinct (reprompt, sample) is drawn and
            # judged once (`uniq`), and its copies take its values.
            first_of: dict[tuple[str, str], int] = {}
            for i in ok:
                first_of.setdefault((parsed[i].reprompt, samples[i]["id"]), i)
            uniq = list(first_of.values())
            source = [first_of[(parsed[i].reprompt, samples[i]["id"])] for i in ok]
            seeds = [sample_seed(self.cfg.seed, samples[i]) for i in uniq]
            policy = self.judge_model.generate_images(
                [parsed[i].reprompt for i in uniq], guidance_scale=self.cfg.guidance_scale, seed=seeds
            )
            self.policy_renders += len(uniq)
            render_s = time.perf_counter() - started
            if self.cfg.reward == "evaluator":
                refs = self.cache.get([samples[i]["baseline"] for i in uniq], seeds)
                reward[uniq], first[uniq] = self._judge([samples[i] for i in uniq], policy, refs)
            judge_s = time.perf_counter() - started - render_s
            if self.world:
                from seer.world.analyzer import analyze_scene

                for i, image in zip(uniq, policy, strict=True):
                    gt[i] = self.instructions.by_text(samples[i]["instruction"]).satisfaction(
                        analyze_scene(image)
                    )
            reward[ok], first[ok], gt[ok] = reward[source], first[source], gt[source]
        if self.cfg.reward == "ground_truth":
            reward = torch.nan_to_num(gt, nan=0.0)
        fmt = torch.tensor([float(p.ok) for p in parsed])
        lengths = torch.tensor([float(len(p.reprompt.split())) for p in parsed])
        name = "endogenous" if self.cfg.reward == "evaluator" else "ground_truth"
        out = {
            name: reward,
            "format": fmt,
            f"metric/{name}": reward,
            "metric/format": fmt,
            "metric/reprompt_words": lengths,
            "metric/renders_reference": torch.full((n,), float(self.cache.renders)),
            "metric/renders_policy": torch.full((n,), float(self.policy_renders)),
            "metric/seconds_render": torch.full((n,), render_s),
            "metric/seconds_judge": torch.full((n,), judge_s),
        }
        if self.cfg.reward == "evaluator":
            out["metric/p_policy_first"] = first
        if self.world:
            valid = ~torch.isnan(gt)
            out["metric/gt_satisfaction"] = torch.nan_to_num(gt, nan=0.0)
            if self.cfg.reward == "evaluator":
                agreement = pearson(reward[valid], gt[valid]) if int(valid.sum()) > 1 else 0.0
                out["metric/reward_gt_correlation"] = torch.full((n,), agreement)
        return out

    def _judge(self, samples: list[dict], policy: list, refs: list) -> tuple[torch.Tensor, torch.Tensor]:
        """The endogenous reward of each policy image against its reference, and P(Yes) with
        the policy image first."""
        questions = [T.pair_question("instruction", s["instruction"]) for s in samples]
        pairs = [[a, b] for a, b in zip(policy, refs, strict=True)]

        def p_yes(image_pairs):
            return judge_p_yes(
                self.judge_model,
                questions,
                image_pairs,
                max_reasoning_tokens=self.cfg.max_reasoning_tokens,
                batch_size=self.cfg.batch_size,
            )

        p_first = p_yes(pairs)
        if self.cfg.order == "policy_first":
            return p_first, p_first
        return order_averaged(p_first, p_yes([[b, a] for a, b in pairs])), p_first


def run_rlmt(cfg: RLMTConfig, resume: bool = False) -> dict[str, Any]:
    """Train the reprompting policy; writes out/model, out/metrics.json, logs."""
    from seer.data.vie import load_manifest, load_samples
    from seer.eval.generation import gap_closed, method_table
    from seer.models import load_model

    cfg.validate()
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    world = load_manifest(cfg.vie).get("ground_truth", False)
    samples = load_samples(cfg.vie, "train")
    judge = load_model(None, cfg.evaluator, **cfg.model_options).eval()
    policy = load_model(None, cfg.evaluator if cfg.start == "rlvr" else cfg.base_model, **cfg.model_options)
    stage = RLMTStage(cfg, samples, judge, world=world)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, cfg)
    engine = GRPOEngine(
        policy,
        stage,
        cfg.grpo,
        out,
        seed=cfg.seed,
        reward_weights={
            "endogenous": cfg.reward_weight,
            "ground_truth": cfg.reward_weight,
            "format": cfg.format_weight,
        },
        load_model=lambda path: load_model(None, path, **cfg.model_options),
    )
    eval_sets = {}
    for split in cfg.eval_splits:
        rows = load_samples(cfg.vie, split)
        eval_sets[split] = rows[: cfg.eval_samples] if cfg.eval_samples else rows

    def evaluate(tag: str, with_references: bool) -> dict[str, Any]:
        policy.eval()
        tables = {}
        for split, rows in eval_sets.items():
            methods = {}
            if with_references:
                methods |= {
                    "baseline": [r["baseline"] for r in rows],
                    "oracle": [r["elaboration"] for r in rows],
                }
            methods[f"policy_{tag}"] = sample_reprompts(
                policy, rows, max_new_tokens=cfg.grpo.max_completion_length, batch_size=cfg.batch_size
            )[0]
            tables[split] = method_table(judge, rows, methods, seed=cfg.seed, batch_size=cfg.batch_size)
        return tables

    metrics_file = out / "metrics.json"
    metrics: dict[str, Any] = {
        "stage": "rlmt",
        "vie": str(cfg.vie),
        "evaluator": cfg.evaluator,
        "order": cfg.order,
    }
    saved = engine.resume_if_asked(resume, metrics_file)
    if saved is not None:
        metrics = saved or metrics
    elif world and cfg.eval_before:
        with policy.gathered():  # sharded: full weights everywhere, the main process evaluates alone
            if engine.is_main:
                metrics["quality"] = evaluate("before", with_references=True)
                atomic_write_json(metrics_file, metrics)
    train = engine.run("rlmt")
    policy.eval()
    engine.save_model(out / "model")
    with policy.gathered():
        if engine.is_main:
            metrics["train"] = {
                **train,
                "renders_reference": stage.cache.renders,
                "renders_policy": stage.policy_renders,
            }
            if world:
                after = evaluate("after", with_references="quality" not in metrics)
                quality = metrics.setdefault("quality", {})
                for split, table in after.items():
                    quality.setdefault(split, {}).update(table)
                metrics["gap_closed"] = {
                    split: {name: gap_closed(table, name) for name in table if name.startswith("policy_")}
                    for split, table in quality.items()
                    if {"baseline", "oracle"} <= set(table)
                }
            atomic_write_json(metrics_file, metrics)
    return metrics
