"""Held-out scenes as rendered, as the tokenizer reconstructs them, and as the model draws
them from their descriptors, in one captioned grid (the caption under a drawing is what
the analyzer reads in it).

    python scripts/mini_side_by_side.py MODEL_DIR --out look.png [--n 8] [--temperature 0.5]
"""

from __future__ import annotations

import argparse
import random

import torch

from seer.models.mini.model import MiniUMM
from seer.world.analyzer import analyze_scene
from seer.world.descriptors import describe
from seer.world.render import captioned_grid, render
from seer.world.scene import sample_scene


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("model")
    ap.add_argument("--out", required=True)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=0.5)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    torch.set_num_threads(2)
    model = MiniUMM.from_pretrained(args.model)
    rng = random.Random(f"side-by-side/{args.seed}")
    scenes = [sample_scene(rng) for _ in range(args.n)]
    drawn = model.generate_images([describe(s) for s in scenes], seed=args.seed, temperature=args.temperature)
    rebuilt = model.decode_images(model.encode_images([render(s) for s in scenes]))
    images, captions = [], []
    for scene, reconstruction, drawing in zip(scenes, rebuilt, drawn, strict=True):
        seen = analyze_scene(drawing)
        images += [render(scene), reconstruction, drawing]
        captions += [describe(scene), "tokenizer", describe(seen) if seen.objects else f"no objects: {seen}"]
    captioned_grid(images, captions, cols=6, scale=2, caption_lines=6).save(args.out)
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
