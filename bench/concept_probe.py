"""Does a mini model answer concept questions from the image? Held-out concept questions,
asked straight and with reasoning first, split by the kind of image.

    python bench/concept_probe.py MODEL_DIR [MODEL_DIR ...] [--n 400] [--seed 1] [--threads 2]

Training instructions; a third of the images fully satisfy the instruction, a third are
random scenes that do not, a third are near misses (the oracle elaboration with one clause
broken, as in the pretraining mix). Both question templates. Straight questions are read
as the greedy answer; with "think , then answer ." the answer is read from its tags. A
model that ignores the image scores its "says yes" rate on positives and one minus it on
negatives, which the table makes plain (docs/benchmarks.md, "concept questions").
"""

from __future__ import annotations

import argparse
import random
import sys
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.data import templates as T  # noqa: E402
from seer.data.formats import yes_no  # noqa: E402
from seer.data.mix import break_one_clause  # noqa: E402
from seer.eval.mini import _answers, world_image_size  # noqa: E402
from seer.models import load_model  # noqa: E402
from seer.world.instructions import load_instructions  # noqa: E402
from seer.world.render import render  # noqa: E402
from seer.world.scene import sample_scene  # noqa: E402

KINDS = ("positive", "random", "near miss")


def questions(n: int, seed: int) -> list[tuple[str, str, object, str]]:
    """(image kind, question, scene, true answer) for n held-out concept questions."""
    instructions = load_instructions()
    train = instructions.split("train")
    rng = random.Random(f"concept-probe/{seed}")
    rows = []
    for k in range(n):
        ins, kind = rng.choice(train), KINDS[k % 3]
        while True:
            elaborated = ins.apply(sample_scene(rng))
            if kind == "positive":
                scene = elaborated
                break
            scene = sample_scene(rng) if kind == "random" else break_one_clause(ins, elaborated, rng)
            if scene is not None and ins.satisfaction(scene) < 1:
                break
        adjective = instructions.families[ins.families[0]].adjective
        question = rng.choice(T.CONCEPT_QUESTIONS).format(adjective=adjective, instruction=ins.text)
        rows.append((kind, question, scene, T.YES if kind == "positive" else T.NO))
    return rows


def probe(model_dir: str, rows, batch_size: int = 32) -> list[str]:
    model = load_model(None, model_dir)
    size = world_image_size(model)
    images = [[render(scene, size)] for _, _, scene, _ in rows]
    straight = _answers(model, [q for _, q, _, _ in rows], images, batch_size)
    reasoned = [yes_no(a) for a in _answers(model, [f"{q} {T.THINK_FIRST}" for _, q, _, _ in rows],
                                             images, batch_size)]
    cells = []
    for answers in (straight, reasoned):
        s = scores(rows, answers)
        cells.append(f"{s['all']:.1%} ({' / '.join(f'{s[k]:.1%}' for k in KINDS)}; yes {s['says yes']:.1%})")
    return [model_dir, *cells]


def scores(rows, answers: list[str | None]) -> dict[str, float]:
    """Accuracy of `answers` over all rows and per image kind, and how often they say yes."""
    right = [a == truth for (_, _, _, truth), a in zip(rows, answers, strict=True)]
    out = {"all": float(np.mean(right)), "says yes": float(np.mean([a == T.YES for a in answers]))}
    for kind in KINDS:
        out[kind] = float(np.mean([r for (k, *_), r in zip(rows, right, strict=True) if k == kind]))
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--n", type=int, default=400)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rows = questions(args.n, args.seed)
    print(f"machine: {machine()}")
    print(f"settings: {args.n} held-out concept questions, seed {args.seed}, greedy answers")
    header = ["model", "straight: all (positives / random / near misses; says yes)",
              "with reasoning: the same"]
    print(table(header, [probe(m, rows) for m in args.models]))


if __name__ == "__main__":
    main()
