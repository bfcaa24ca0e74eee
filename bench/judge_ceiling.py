"""Is RLVR's evaluator capped by GRPO or by what the model can read? A supervised ceiling.

    python bench/judge_ceiling.py VIE_DIR [--steps 150] [--pairs 4] [--lr 1e-3] [--lora-r 16]
        [--judges DIR ...] [--seed 0] [--threads 2]

Trains the packaged mini model, with the same LoRA as RLVR, by plain cross-entropy on the
VIE set's train items: the answer's P(yes) against P(no), read right after an empty
reasoning ('<think> </think> <answer>'), both image orders of a pair in each batch. Every
item's label is given, so nothing caps learning but the model's reading of the two images:
if this judge stays where RLVR ends, GRPO is not what holds RLVR back. Held-out accuracy
(P(yes) > 1/2 against the label) and the position gap are read after an empty reasoning
and after the judge's own greedy reasoning (as RLMT reads its reward), for the base, for
this judge along the way, and for any RLVR checkpoints given with --judges.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, supervised_yes_no_step, table  # noqa: E402
from seer.data import templates as T  # noqa: E402
from seer.data.vie import load_items, open_images  # noqa: E402
from seer.models import load_model  # noqa: E402
from seer.rollout import judge_p_yes  # noqa: E402
from seer.train.rlvr import order_twins  # noqa: E402

ANSWER_AFTER_EMPTY_REASONING = f"{T.THINK_OPEN} {T.THINK_CLOSE} {T.ANSWER_OPEN}"


def read_accuracy(model, items: list[dict], images: dict, reasoned: bool = False,
                  batch_size: int = 32) -> tuple[float, float]:
    """(accuracy, position gap) of P(yes) > 1/2, read at the answer after an empty reasoning,
    or with `reasoned` after the judge's own greedy reasoning (as RLMT reads its reward)."""
    right = {"positive_first": [], "negative_first": []}
    model.eval()
    for k in range(0, len(items), batch_size):
        chunk = items[k : k + batch_size]
        questions, pictures = [i["question"] for i in chunk], [images[i["id"]] for i in chunk]
        if reasoned:
            p_yes = judge_p_yes(model, questions, pictures, batch_size=batch_size)
        else:
            p_yes = model.p_yes(questions, pictures, prefix=ANSWER_AFTER_EMPTY_REASONING).p_yes
        for item, p in zip(chunk, p_yes.float().tolist(), strict=True):
            right[item["order"]].append(("yes" if p > 0.5 else "no") == item["label"])
    every = right["positive_first"] + right["negative_first"]
    first, second = (sum(v) / max(len(v), 1) for v in right.values())
    return sum(every) / len(every), abs(first - second)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("vie", type=Path)
    ap.add_argument("--steps", type=int, default=150)
    ap.add_argument("--pairs", type=int, default=4, help="pairs a step (each in both image orders)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--lora-r", type=int, default=16)
    ap.add_argument("--every", type=int, default=50, help="held-out reading every this many steps")
    ap.add_argument("--judges", nargs="*", default=[], help="RLVR model folders read the same way")
    ap.add_argument("--splits", nargs="+", default=["test_id", "test_ood"])
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)

    train = load_items(args.vie, "train")
    held_out = {split: load_items(args.vie, split) for split in args.splits}
    images = {i["id"]: open_images(args.vie, i) for rows in [train, *held_out.values()] for i in rows}
    rows: list[list] = []

    def measure(name: str, model, step: str, seconds: str = "-") -> None:
        cells = [name, step]
        for items in held_out.values():
            for reasoned in (False, True):
                acc, gap = read_accuracy(model, items, images, reasoned)
                cells.append(f"{100 * acc:.1f}% ({100 * gap:.1f})")
        rows.append([*cells, seconds])
        print(" | ".join(cells), flush=True)

    for folder in args.judges:
        measure(f"RLVR judge {folder}", load_model(None, folder), "-")

    model = load_model(None, None)
    measure("base (packaged)", model, "0")
    model.enable_lora(r=args.lora_r, alpha=2 * args.lora_r)
    params = model.trainable_parameters()
    optimizer = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.0)
    twin = order_twins(train)
    pairs = [(i, twin[i]) for i, item in enumerate(train) if item["order"] == "positive_first"]
    rng = random.Random(f"{args.seed}/judge-ceiling")
    order: list[tuple[int, int]] = []
    t0 = time.perf_counter()
    for step in range(1, args.steps + 1):
        if len(order) < args.pairs:
            order += rng.sample(pairs, len(pairs))
        chosen = [train[i] for pair in order[: args.pairs] for i in pair]
        del order[: args.pairs]
        loss = supervised_yes_no_step(model, optimizer, params, [i["question"] for i in chosen],
                                      [images[i["id"]] for i in chosen], [i["label"] for i in chosen], step,
                                      prefix=ANSWER_AFTER_EMPTY_REASONING)
        if step % 10 == 0:
            print(f"step {step}: loss {loss:.3f}", flush=True)
        if step % args.every == 0 or step == args.steps:
            per_step = (time.perf_counter() - t0) / step
            measure("supervised (LoRA, cross-entropy)", model, str(step), f"{per_step:.2f}")

    print(f"\nmachine: {machine()}")
    print(f"settings: {args.vie}, {len(train)} train items, {args.pairs} pairs "
          f"({2 * args.pairs} items) a step, "
          f"lr {args.lr}, LoRA r {args.lora_r}, seed {args.seed}; reading: P(yes) > 1/2 after "
          f"'{ANSWER_AFTER_EMPTY_REASONING}' or after the judge's own greedy reasoning (RLMT's reading); "
          "cells: accuracy (position gap)\n")
    readings = [f"{split}, {how}" for split in args.splits for how in ("empty reasoning", "own reasoning")]
    print(table(["judge", "step", *readings, "s/step"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
