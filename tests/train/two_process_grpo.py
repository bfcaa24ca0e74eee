"""Run by test_grpo.py under `accelerate launch --num_processes 2`: a few GRPO steps of the
toy stage; each process writes a fingerprint of its weights and what it saw."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).parent))
from test_grpo import WordStage, _cfg, _model  # noqa: E402

from seer.train.grpo import GRPOEngine  # noqa: E402

out = Path(sys.argv[1])
accelerator = Accelerator(cpu=True)
stage = WordStage()
seen: list[str] = []
batch = stage.batch
stage.batch = lambda step, n: seen.append(f"{step}:{n}") or batch(step, n)
engine = GRPOEngine(
    _model(), stage, _cfg(max_steps=2, save_steps=100, scale_rewards="batch"), out, accelerator=accelerator
)
records = engine.train()
weights = torch.cat([p.detach().flatten() for p in engine.model.trainable_parameters()])
rank = accelerator.process_index
(out / f"rank{rank}.json").write_text(
    json.dumps(
        {
            "processes": accelerator.num_processes,
            "sum": float(weights.double().sum()),
            "norm": float(weights.double().norm()),
            "batches": seen,
            "reward": [r["reward"] for r in records],
        }
    )
)
