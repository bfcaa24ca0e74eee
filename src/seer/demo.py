"""`seer demo`: the whole method end to end on the packaged mini model, in minutes.

VIE set -> RLVR (the evaluator) -> RLMT (the reprompter) -> eval -> report, under one folder:

    DIR/vie/                    the VIE set (images, evaluator items, manifest)
    DIR/checkpoints/rlvr/       the evaluator: model/ (HF layout), log.jsonl, metrics.json
    DIR/checkpoints/rlmt/       the reprompting policy: the same
    DIR/metrics.json            everything `seer eval` measures (+ CSV tables)
    DIR/report.html             the report
    DIR/demo.json               the resolved config of every stage

Each stage is skipped when its output is already complete, so `seer demo --resume` after
an interruption continues with the first unfinished stage (a stage that was cut off
resumes from its last checkpoint).
"""

from __future__ import annotations

import dataclasses
import json
import time
from pathlib import Path
from typing import Any

from seer.data.vie import VIEConfig
from seer.eval.suite import EvalConfig
from seer.io import atomic_write_json
from seer.train.grpo import GRPOConfig
from seer.train.rlmt import RLMTConfig
from seer.train.rlvr import RLVRConfig


def _vie() -> VIEConfig:
    # Difficulty from the world's ground-truth margin: the base evaluator's pass rate costs
    # k answers per item, a minute the demo spends on training instead.
    return VIEConfig(n_train=300, n_validation=0, n_test_id=48, n_test_ood=48, difficulty_samples=0)


def _rlvr() -> RLVRConfig:
    # The stage's defaults (LoRA at 1e-3, 100 steps: 80 steps measured 69.8% held-out
    # accuracy, 100 steps 78.1%); difficulty from the ground-truth margin. No evaluation of
    # its own: the eval stage measures the evaluator on both test sets.
    return RLVRConfig(eval_before=False, eval_splits=[], difficulty="margin")


def _rlmt() -> RLMTConfig:
    return RLMTConfig(
        eval_before=False,
        eval_splits=[],
        grpo=GRPOConfig(
            num_generations=8,
            per_device_train_batch_size=16,
            gradient_accumulation_steps=2,
            max_completion_length=40,
            learning_rate=1e-4,
            beta=0.02,
            max_steps=20,
            save_steps=10,
        ),
    )


def _eval() -> EvalConfig:
    return EvalConfig(evaluator_items=96, retention_items=64, examples=4)


@dataclasses.dataclass
class DemoConfig:
    out: str = "runs/demo"
    seed: int = 0
    model: str | None = None  # the base model; default: the packaged mini model
    vie: VIEConfig = dataclasses.field(default_factory=_vie)
    rlvr: RLVRConfig = dataclasses.field(default_factory=_rlvr)
    rlmt: RLMTConfig = dataclasses.field(default_factory=_rlmt)
    eval: EvalConfig = dataclasses.field(default_factory=_eval)

    def wire(self) -> DemoConfig:
        """Point every stage at the demo folder, the seed and the base model."""
        root = Path(self.out)
        vie, rlvr, rlmt = root / "vie", root / "checkpoints" / "rlvr", root / "checkpoints" / "rlmt"
        self.vie = dataclasses.replace(self.vie, out=str(vie), seed=self.seed, model=self.model)
        self.rlvr = dataclasses.replace(
            self.rlvr, out=str(rlvr), seed=self.seed, vie=str(vie), model=self.model
        )
        self.rlmt = dataclasses.replace(
            self.rlmt,
            out=str(rlmt),
            seed=self.seed,
            vie=str(vie),
            evaluator=str(rlvr / "model"),
            base_model=self.model,
        )
        self.eval = dataclasses.replace(
            self.eval,
            out=str(root),
            seed=self.seed,
            vie=str(vie),
            checkpoint=str(rlmt / "model"),
            evaluator=str(rlvr / "model"),
            base=self.model,
            policy_before=str(rlvr / "model"),
            logs={"rlvr": "checkpoints/rlvr/log.jsonl", "rlmt": "checkpoints/rlmt/log.jsonl"},
        )
        return self


def _done(path: Path, key: str | None = None) -> bool:
    if not path.exists():
        return False
    return key is None or key in json.loads(path.read_text())


def run_demo(cfg: DemoConfig, resume: bool = False) -> dict[str, Any]:
    from seer.data.vie import build_vie
    from seer.eval.suite import run_eval
    from seer.report import write_report
    from seer.train.rlmt import run_rlmt
    from seer.train.rlvr import run_rlvr

    cfg.wire()
    root = Path(cfg.out)
    if root.exists() and any(root.iterdir()) and not resume:
        raise ValueError(f"{root} is not empty: pass --resume to continue the demo there, or another --out")
    root.mkdir(parents=True, exist_ok=True)
    atomic_write_json(root / "demo.json", dataclasses.asdict(cfg))
    seconds: dict[str, float] = {}

    def stage(name: str, finished: bool, run) -> None:
        if finished:
            print(f"demo: {name} already done, skipped")
            return
        print(f"demo: {name} ...", flush=True)
        t0 = time.perf_counter()
        run()
        seconds[name] = time.perf_counter() - t0

    stage("VIE set", _done(Path(cfg.vie.out) / "manifest.json"), lambda: build_vie(cfg.vie))
    stage(
        "RLVR",
        _done(Path(cfg.rlvr.out) / "metrics.json", "after"),
        lambda: run_rlvr(cfg.rlvr, resume=(Path(cfg.rlvr.out) / "checkpoint").exists()),
    )
    stage(
        "RLMT",
        _done(Path(cfg.rlmt.out) / "metrics.json", "train"),
        lambda: run_rlmt(cfg.rlmt, resume=(Path(cfg.rlmt.out) / "checkpoint").exists()),
    )
    stage("eval", _done(root / "metrics.json"), lambda: run_eval(cfg.eval))
    stage("report", False, lambda: write_report(root, root / "report.html"))
    metrics = json.loads((root / "metrics.json").read_text())
    metrics["demo_seconds"] = seconds
    atomic_write_json(root / "timings.json", seconds)
    return metrics
