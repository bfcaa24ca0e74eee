"""Stage 1, RLVR: the model becomes an accurate evaluator of image pairs.

Items come from a VIE set (`seer data vie`): two images, a question ("does the first image
match the instruction better than the second image ?"), and a verifiable label. The model
answers in the authors' format (reasoning in <think> </think>, then only yes or no in
<answer> </answer>); reward = format reward + accuracy reward; GRPO updates it.

Curriculum (the paper's schedule is not published; ours, configurable): train items are
sorted by difficulty (the base evaluator's failure rate over k samples, or in the shapes
world the ground-truth margin between the two images, small margin = hard) and cut into
`curriculum_buckets` buckets; bucket b joins the pool at the fraction
`curriculum_schedule[b]` of training; a step draws its items uniformly from the pool.
`curriculum: none` draws from all items from the start.
"""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path
from typing import Any

import torch

from seer.config import ConfigError
from seer.io import atomic_write_json
from seer.rewards import accuracy_reward, format_reward, yes_no
from seer.rollout import Prompt, Rollout
from seer.train.grpo import GRPOConfig, GRPOEngine, write_config

CURRICULA = ("easy_to_hard", "none")
DIFFICULTIES = ("pass_rate", "margin")


def _rlvr_grpo() -> GRPOConfig:
    # LoRA at 1e-3 rather than all weights at 1e-4..1e-3: on the mini model full training
    # drifted into always-yes or always-no within 100 steps; LoRA learned steadily
    # (docs/benchmarks.md, "RLVR on the packaged mini model").
    return GRPOConfig(
        num_generations=8,
        per_device_train_batch_size=16,
        gradient_accumulation_steps=2,
        max_completion_length=12,
        learning_rate=1e-3,
        use_lora=True,
        lora_r=16,
        lora_alpha=32,
        max_steps=100,
        save_steps=25,
        # Twice the prompts sampled, the split groups trained on: over three seeds +5 points
        # in distribution and +8.5 out of it, for ~1.6x the time a step (docs/benchmarks.md,
        # "RLVR with dynamic sampling").
        dynamic_sampling_factor=2,
    )


@dataclasses.dataclass
class RLVRConfig:
    out: str = "runs/rlvr"
    seed: int = 0
    vie: str = "runs/vie"
    model: str | None = None  # starting model folder; default: the packaged mini model
    # Keyword arguments for the backend's from_pretrained (dtype, device, gradient_checkpointing, ...).
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    curriculum: str = "easy_to_hard"
    difficulty: str = "pass_rate"
    curriculum_buckets: int = 3
    curriculum_schedule: list[float] = dataclasses.field(default_factory=lambda: [0.0, 0.25, 0.5])
    format_weight: float = 1.0
    accuracy_weight: float = 1.0
    eval_splits: list[str] = dataclasses.field(default_factory=lambda: ["test_id", "test_ood"])
    eval_batch_size: int = 32
    eval_before: bool = True
    # Draw each item together with its twin (the same two images in the other order, the
    # opposite label): a step then cannot reward "always yes" or "always no", only reading
    # which image is which.
    paired_orders: bool = True
    grpo: GRPOConfig = dataclasses.field(default_factory=_rlvr_grpo)

    def validate(self) -> None:
        if self.curriculum not in CURRICULA:
            raise ConfigError(f"curriculum must be one of {', '.join(CURRICULA)}, got {self.curriculum!r}")
        if self.difficulty not in DIFFICULTIES:
            raise ConfigError(f"difficulty must be one of {', '.join(DIFFICULTIES)}, got {self.difficulty!r}")
        if self.curriculum_buckets < 1 or len(self.curriculum_schedule) != self.curriculum_buckets:
            raise ConfigError(
                f"curriculum_schedule needs one start fraction per bucket "
                f"({self.curriculum_buckets}), got {self.curriculum_schedule}"
            )
        if any(not 0 <= f <= 1 for f in self.curriculum_schedule) or self.curriculum_schedule[0] != 0:
            raise ConfigError(
                f"curriculum_schedule fractions must be in [0, 1], the first 0; "
                f"got {self.curriculum_schedule}"
            )
        self.grpo.validate()
        if self.paired_orders and self.grpo.prompts_per_step % 2:
            raise ConfigError(
                f"paired_orders needs an even number of prompts per step, got {self.grpo.prompts_per_step} "
                "(per_device_train_batch_size * gradient_accumulation_steps / num_generations)"
            )


def curriculum_buckets(items: list[dict], key: str, n_buckets: int, seed: int) -> list[list[int]]:
    """Item indices cut into `n_buckets` buckets from easy to hard (ties in random order)."""
    rng = random.Random(f"{seed}/curriculum")
    order = list(range(len(items)))
    rng.shuffle(order)
    hardness = [_hardness(items[i], key) for i in range(len(items))]
    order.sort(key=lambda i: hardness[i])
    size = len(order) / n_buckets
    return [order[round(b * size) : round((b + 1) * size)] for b in range(n_buckets)]


def _hardness(item: dict, key: str) -> float:
    if key == "margin":
        if item.get("margin") is None:
            raise ValueError(
                f"item {item.get('id')}: no ground-truth margin (a user VIE set has none); "
                "use difficulty: pass_rate"
            )
        return -float(item["margin"])
    if item.get("difficulty") is None:
        raise ValueError(
            f"item {item.get('id')}: no difficulty score; build the VIE set with "
            "difficulty_samples > 0 or use curriculum: none"
        )
    return float(item["difficulty"])


def order_twins(items: list[dict]) -> dict[int, int]:
    """Item index -> the index of the same sample and question kind in the other order."""
    by_key: dict[tuple, dict[str, int]] = {}
    for i, item in enumerate(items):
        by_key.setdefault((item["sample_id"], item["kind"]), {})[item["order"]] = i
    twin = {}
    for key, orders in by_key.items():
        if len(orders) != 2:
            raise ValueError(
                f"sample {key[0]} ({key[1]}): paired_orders needs both image orders, found {sorted(orders)}"
            )
        a, b = orders.values()
        twin[a], twin[b] = b, a
    return twin


class RLVRStage:
    name = "rlvr"
    prefix = ""
    progress_keys = ("accuracy", "format")

    def __init__(self, cfg: RLVRConfig, items: list[dict], open_images):
        self.cfg, self.items, self.open_images = cfg, items, open_images
        if not items:
            raise ValueError(f"{cfg.vie}: the train split has no items")
        if cfg.curriculum == "none":
            self.buckets = [list(range(len(items)))]
            self.starts = [0.0]
        else:
            self.buckets = curriculum_buckets(items, cfg.difficulty, cfg.curriculum_buckets, cfg.seed)
            self.starts = list(cfg.curriculum_schedule)
        self.twin = order_twins(items) if cfg.paired_orders else {}

    def pool(self, step: int) -> list[int]:
        progress = step / max(self.cfg.grpo.max_steps, 1)
        return [i for b, start in zip(self.buckets, self.starts, strict=True) if progress >= start for i in b]

    def batch(self, step: int, n: int) -> list[Prompt]:
        pool = self.pool(step)
        rng = random.Random(f"{self.cfg.seed}/rlvr/batch/{step}")
        draw = n // 2 if self.twin else n
        if self.twin:  # one representative per pair, so no pair comes twice in a batch
            pool = sorted({min(i, self.twin[i]) for i in pool})
        chosen = rng.sample(pool, draw) if draw <= len(pool) else [rng.choice(pool) for _ in range(draw)]
        if self.twin:
            chosen = [j for i in chosen for j in (i, self.twin[i])]
        return [
            Prompt(
                self.items[i]["question"],
                self.open_images(self.items[i]),
                {"label": self.items[i]["label"], "order": self.items[i]["order"]},
            )
            for i in chosen
        ]

    def rewards(self, rollout: Rollout, step: int) -> dict[str, torch.Tensor]:
        labels = [p.data["label"] for p in rollout.prompts]
        fmt = torch.tensor(format_reward(rollout.completions))
        acc = torch.tensor(accuracy_reward(rollout.completions, labels))
        says_yes = torch.tensor([float(yes_no(c) == "yes") for c in rollout.completions])
        return {
            "format": fmt,
            "accuracy": acc,
            "metric/format": fmt,
            "metric/accuracy": acc,
            "metric/says_yes": says_yes,
            "metric/pool": torch.full_like(fmt, len(self.pool(step))),
        }


def run_rlvr(cfg: RLVRConfig, resume: bool = False) -> dict[str, Any]:
    """Train the evaluator; writes out/model (HF layout), out/metrics.json, logs."""
    from seer.data.vie import load_items, open_images
    from seer.eval.evaluator import evaluate_items
    from seer.models import load_model

    cfg.validate()
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    items = load_items(cfg.vie, "train")
    images = _ImageOpener(cfg.vie, open_images)
    model = load_model(None, cfg.model, **cfg.model_options)
    stage = RLVRStage(cfg, items, images)
    out.mkdir(parents=True, exist_ok=True)
    write_config(out, cfg)
    engine = GRPOEngine(
        model,
        stage,
        cfg.grpo,
        out,
        seed=cfg.seed,
        reward_weights={"format": cfg.format_weight, "accuracy": cfg.accuracy_weight},
        load_model=lambda path: load_model(None, path, **cfg.model_options),
    )
    metrics: dict[str, Any] = {"stage": "rlvr", "vie": str(cfg.vie), "curriculum": cfg.curriculum}
    eval_sets = {split: load_items(cfg.vie, split) for split in cfg.eval_splits}

    def evaluate(tag: str) -> dict[str, Any]:
        model.eval()
        return {
            split: evaluate_items(
                model,
                rows,
                images,
                batch_size=cfg.eval_batch_size,
                max_new_tokens=cfg.grpo.max_completion_length,
                desc=f"eval {tag} {split}",
            )
            for split, rows in eval_sets.items()
        }

    metrics_file = out / "metrics.json"
    saved = engine.resume_if_asked(resume, metrics_file)
    if saved is not None:
        metrics = saved or metrics
    elif cfg.eval_before:
        with model.gathered():  # sharded: full weights everywhere, the main process evaluates alone
            if engine.is_main:
                metrics["before"] = evaluate("before")
                atomic_write_json(metrics_file, metrics)
    train = engine.run("rlvr")
    model.eval()
    engine.save_model(out / "model")
    with model.gathered():
        if engine.is_main:
            metrics["train"] = train
            metrics["after"] = evaluate("after")
            atomic_write_json(metrics_file, metrics)
    return metrics


class _ImageOpener:
    """Opens an item's two images once and keeps them: items repeat across steps."""

    def __init__(self, vie: str, open_images):
        self.vie, self.open_images, self.cache = vie, open_images, {}

    def __call__(self, item: dict):
        key = tuple(item["images"])
        if key not in self.cache:
            self.cache[key] = self.open_images(self.vie, item)
        return self.cache[key]
