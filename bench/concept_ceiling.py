"""Can the mini model learn concept questions at all? Supervised training on them alone.

    python bench/concept_ceiling.py MODEL_DIR [--steps 200] [--batch 16] [--lr 1e-3]
        [--lora-r 16 | --full] [--every 50] [--n 300] [--seed 0] [--threads 2]

Pretraining leaves concept questions ("does it look festive ?") at chance
(bench/concept_probe.py). This trains the model on the pretraining mix's straight concept
questions only, by cross-entropy between the answer's "yes" and "no" (the same reading as
the evaluator's P(yes)), with LoRA (RLVR's setting, which learns a verdict on image pairs:
bench/judge_ceiling.py) or with all weights (`--full`, as pretraining does), and reads
held-out accuracy (P(yes) > 1/2) on the probe's questions as it goes: if LoRA learns what
full-weight pretraining did not, the optimiser's setting is what holds concepts back.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, supervised_yes_no_step, table  # noqa: E402
from concept_probe import KINDS, questions, scores  # noqa: E402
from seer.data import templates as T  # noqa: E402
from seer.data.mix import Mix  # noqa: E402
from seer.eval.mini import world_image_size  # noqa: E402
from seer.models import load_model  # noqa: E402
from seer.world.render import render  # noqa: E402


def held_out_accuracy(model, rows, size: int, batch_size: int = 32) -> dict[str, float]:
    model.eval()
    p = []
    with torch.no_grad():
        for k in range(0, len(rows), batch_size):
            chunk = rows[k:k + batch_size]
            pictures = [[render(s, size)] for _, _, s, _ in chunk]
            p += model.p_yes([q for _, q, _, _ in chunk], pictures).p_yes.tolist()
    return scores(rows, [T.YES if x > 0.5 else T.NO for x in p])


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("model")
    ap.add_argument("--steps", type=int, default=200)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--full", action="store_true", help="train all weights instead of LoRA")
    ap.add_argument("--every", type=int, default=50)
    ap.add_argument("--n", type=int, default=300, help="held-out probe questions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    model = load_model(None, args.model)
    size = world_image_size(model)
    probe_rows = questions(args.n, seed=1)
    rows: list[list] = []

    def measure(step: int, seconds: str = "-") -> None:
        acc = held_out_accuracy(model, probe_rows, size)
        rows.append([step, *(f"{100 * acc[k]:.1f}%" for k in ("all", *KINDS, "says yes")), seconds])
        print(" | ".join(map(str, rows[-1])), flush=True)

    measure(0)
    if not args.full:
        model.enable_lora(r=args.lora_r, alpha=2 * args.lora_r)
    params = model.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    mix = Mix(args.seed, {"concept": 1.0})
    straight = (e for e in mix.stream("concept") if not e.prompt.endswith(T.THINK_FIRST))
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        batch = [next(straight) for _ in range(args.batch)]
        loss = supervised_yes_no_step(model, optimizer, params, [e.prompt for e in batch],
                                      [[render(s, size) for s in e.images] for e in batch],
                                      [e.answer for e in batch], step)
        if step % 10 == 0:
            print(f"step {step}: loss {loss:.3f}", flush=True)
        if step % args.every == 0 or step == args.steps:
            measure(step, f"{(time.perf_counter() - t0) / step:.2f}")

    how = "all weights" if args.full else f"LoRA r {args.lora_r}"
    print(f"\nmachine: {machine()}")
    print(f"settings: {args.model}, straight concept questions of the mix, {args.batch} a step, {how}, "
          f"lr {args.lr}, seed {args.seed}; held out: {args.n} probe questions, P(yes) > 1/2\n")
    print(table(["step", "all", *KINDS, "says yes", "s/step"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
