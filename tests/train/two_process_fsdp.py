"""Run by test_grpo.py under `accelerate launch --num_processes 2`: the same GRPO steps with
replicated and with sharded (FSDP) parameters, a resume of the sharded run, and its saved
model; the main process writes what the test compares to out/fsdp.json."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch
from accelerate import Accelerator

sys.path.insert(0, str(Path(__file__).parent))
from test_grpo import WordStage, _cfg, _model  # noqa: E402

from seer.models.fsdp import full_tensor  # noqa: E402
from seer.models.mini.model import MiniUMM  # noqa: E402
from seer.train.grpo import GRPOEngine  # noqa: E402

out = Path(sys.argv[1])
accelerator = Accelerator(cpu=True)
# Full training with dapo (its loss is scaled by the process count), one update per step;
# LoRA with grpo, two updates per step (old log-probs) and a KL to the reference model.
VARIANTS = {
    "full": dict(loss_type="dapo", scale_rewards="batch"),
    "lora": dict(loss_type="grpo", use_lora=True, num_iterations=2, beta=0.05),
}


def engine(name: str, max_steps: int, **kw) -> GRPOEngine:
    cfg = _cfg(max_steps=max_steps, save_steps=1, learning_rate=1e-2, **kw)
    return GRPOEngine(_model(), WordStage(), cfg, out / name, accelerator=accelerator,
                      load_model=MiniUMM.from_pretrained)


def weights(e: GRPOEngine) -> torch.Tensor:
    """Every trainable parameter, whole (gathering a sharded one is collective)."""
    return torch.cat([full_tensor(p.detach()).flatten() for p in e.model.trainable_parameters()])


report = {"processes": accelerator.num_processes}
for variant, kw in VARIANTS.items():
    plain = engine(f"{variant}-plain", 2, **kw)
    w_start = weights(plain)
    plain_records = plain.train()
    sharded = engine(f"{variant}-fsdp", 2, fsdp=True, **kw)
    assert sharded.sharded and not plain.sharded
    sharded_records = sharded.train()
    engine(f"{variant}-resumed", 1, fsdp=True, **kw).train()  # stops after step 1's checkpoint
    resumed = engine(f"{variant}-resumed", 2, fsdp=True, **kw)
    start = resumed.resume()
    resumed.train()
    w_plain, w_sharded, w_resumed = weights(plain), weights(sharded), weights(resumed)
    entry = {
        "moved": float((w_plain - w_start).abs().max()),
        "sharded_vs_plain": float((w_sharded - w_plain).abs().max()),
        "resumed_vs_sharded": float((w_resumed - w_sharded).abs().max()),
        "resumed_from": start,
        "reward": [[r["reward"] for r in rs] for rs in (plain_records, sharded_records)],
    }
    if accelerator.is_main_process:
        saved = MiniUMM.from_pretrained(out / f"{variant}-fsdp" / "checkpoint")  # written whole, LoRA merged
        ref = MiniUMM.from_pretrained(out / f"{variant}-plain" / "checkpoint")
        a, b = saved.lm.state_dict(), ref.lm.state_dict()
        entry["saved_keys_equal"] = a.keys() == b.keys()
        entry["saved_vs_plain"] = max(float((a[k] - b[k]).abs().max()) for k in a)
        report[variant] = entry
    accelerator.wait_for_everyone()
if accelerator.is_main_process:
    (out / "fsdp.json").write_text(json.dumps(report))
