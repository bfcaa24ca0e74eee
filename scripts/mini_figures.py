"""The mini model's pretraining figures on held-out items, for any model folder.

    python scripts/mini_figures.py MODEL_DIR [--n 200] [--temperatures 1.0,0.5] [--out figures.json]

The same measures as `seer pretrain --eval N` (`seer.eval.mini`), on a finished model or a
checkpoint folder, with generation measured at each image temperature given.
"""

from __future__ import annotations

import argparse
import json
import time

import torch

from seer.eval import mini as ev
from seer.models.mini.model import MiniUMM


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("model")
    ap.add_argument("--n", type=int, default=200, help="held-out items per kind")
    ap.add_argument("--temperatures", default="1.0", help="image temperatures, comma-separated")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="also write the figures to this JSON file")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    model = MiniUMM.from_pretrained(args.model)
    temperatures = [float(t) for t in args.temperatures.split(",")]
    figures: dict = {}
    t0 = time.perf_counter()
    for t in temperatures:
        model.config.image_temperature = t
        figures[f"generation_T{t}"] = ev.generation(model, n=args.n)
        seconds = time.perf_counter() - t0
        print(f"generation at T {t}: {figures[f'generation_T{t}']} ({seconds:.0f} s)", flush=True)
    model.config.image_temperature = temperatures[0]
    figures |= ev.understanding(model, n=args.n) | ev.knowledge(model)
    figures |= ev.gap(model, per_instruction=max(1, args.n // 50))
    print(json.dumps(figures, indent=2))
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
