"""Analyzer accuracy, noise/shift tolerance, instruction oracles, and throughput.

    python bench/world.py [--n 10000] [--seed 0] [--size 64]

Prints markdown tables (pasted into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.world.analyzer import analyze  # noqa: E402
from seer.world.geometry import DEFAULT_SIZE  # noqa: E402
from seer.world.instructions import load_instructions  # noqa: E402
from seer.world.render import render_array  # noqa: E402
from seer.world.scene import GLOBAL_FIELDS, sample_scene  # noqa: E402
from seer.world.scores import object_agreement  # noqa: E402

OBJECT_ATTRS = ("shape", "color", "size", "position")


def accuracy(scenes, images) -> dict[str, float]:
    hits = {f: 0 for f in ("background", *GLOBAL_FIELDS, *OBJECT_ATTRS, "object count")}
    n_objects = exact = 0
    for scene, image in zip(scenes, images, strict=True):
        seen = analyze(image).scene
        exact += seen == scene
        for f in ("background", *GLOBAL_FIELDS):
            hits[f] += getattr(seen, f) == getattr(scene, f)
        hits["object count"] += len(seen.objects) == len(scene.objects)
        n_objects += len(scene.objects)
        for a in OBJECT_ATTRS:
            hits[a] += object_agreement(scene.objects, seen.objects, [a])
    n = len(scenes)
    out = {f: hits[f] / (n_objects if f in OBJECT_ATTRS else n) for f in hits}
    out["all attributes (mean)"] = float(np.mean(list(out.values())))
    out["exact scene"] = exact / n
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=10_000)
    ap.add_argument("--n-perturbed", type=int, default=1_000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--size", type=int, default=DEFAULT_SIZE, help="image side in pixels")
    args = ap.parse_args()
    size = args.size
    rng = random.Random(args.seed)
    print(f"machine: {machine()}\nsettings: {args.n} random scenes at {size} px, seed {args.seed}\n")

    scenes = [sample_scene(rng) for _ in range(args.n)]
    t0 = time.perf_counter()
    images = [render_array(s, size) for s in scenes]
    t_render = time.perf_counter() - t0
    t0 = time.perf_counter()
    clean = accuracy(scenes, images)
    t_analyze = time.perf_counter() - t0

    print("## Analyzer accuracy on clean renders\n")
    print(table(["attribute", "accuracy"], [[k, f"{v:.4%}"] for k, v in clean.items()]))

    noise_rng = np.random.default_rng(args.seed)
    few_s, few_i = scenes[:args.n_perturbed], images[:args.n_perturbed]
    rows = []
    for sigma in (0, 5, 10, 15, 20, 30):
        noisy = [np.clip(im + noise_rng.normal(0, sigma, im.shape), 0, 255).astype(np.uint8)
                 for im in few_i]
        acc = accuracy(few_s, noisy)
        rows.append([f"gaussian noise sigma={sigma}", f"{acc['all attributes (mean)']:.2%}",
                     f"{acc['exact scene']:.2%}"])
    for d in (1, 2, 3):
        shifted = [np.roll(im, (d, d), (0, 1)) for im in few_i]
        acc = accuracy(few_s, shifted)
        rows.append([f"shift by {d} px (x and y)", f"{acc['all attributes (mean)']:.2%}",
                     f"{acc['exact scene']:.2%}"])
    print(f"\n## Tolerance ({args.n_perturbed} scenes each)\n")
    print(table(["perturbation", "per-attribute", "exact scene"], rows))

    print("\n## Instructions: oracle elaboration vs plain scene (20 plain scenes each)\n")
    instructions = load_instructions()
    rows = []
    worst_oracle = 1.0
    for ins in instructions.instructions:
        plain_full = oracle_sum = 0
        for _ in range(20):
            scene = sample_scene(rng, plain=True)
            plain_full += ins.satisfaction(scene) == 1.0
            oracle = analyze(render_array(ins.apply(scene), size)).scene
            oracle_sum += ins.satisfaction(oracle)
        worst_oracle = min(worst_oracle, oracle_sum / 20)
        if ins.split != "train" or ins.text == instructions.families[ins.families[0]].train[0]:
            rows.append([ins.text, ins.split, ins.difficulty, f"{oracle_sum / 20:.0%}",
                         f"{plain_full / 20:.0%}"])
    print(table(["instruction", "split", "difficulty", "oracle satisfaction (analyzed)",
                 "plain scene already satisfies"], rows))
    print(f"\nlowest oracle satisfaction over all {len(instructions.instructions)} instructions: "
          f"{worst_oracle:.0%}")

    print("\n## Throughput\n")
    print(table(["step", "images/s"], [
        [f"render ({size} px)", f"{args.n / t_render:.0f}"],
        [f"analyze ({size} px)", f"{args.n / t_analyze:.0f}"],
    ]))


if __name__ == "__main__":
    main()
