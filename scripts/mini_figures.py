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
    t0 = time.perf_counter()
    figures = ev.figures(model, n=args.n, temperatures=tuple(temperatures))
    print(json.dumps(figures, indent=2))
    print(f"{time.perf_counter() - t0:.0f} s")
    if args.out:
        with open(args.out, "w") as f:
            json.dump(figures, f, indent=2)


if __name__ == "__main__":
    main()
