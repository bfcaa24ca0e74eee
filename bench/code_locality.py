"""How local the mini model's image codes are, and what that costs the transformer.

    python bench/code_locality.py MODEL [MODEL ...] [--scenes 200] [--threads 2]

MODEL is a mini model folder (`seer pretrain` output or the packaged weights: `packaged`).
For each, on the same random held-out scenes:

- *determinism*: how well a code is predicted from the pixels around it: the share of codes
  equal to the most frequent code among all codes with the same 4x4 patch (radius 0) or the
  same 12x12 neighbourhood (radius 4). A code that is a function of its neighbourhood
  scores 100%; a code that depends on the whole picture scores far less.
- *uniform regions*: distinct codes inside 20x20-pixel regions of one colour (white and
  navy backgrounds of one-object scenes) and how many of them the two colours share; a
  code that says what is drawn needs one code per colour and shares none.
- *transformer loss* per code, split into codes covering an object, other codes, and codes
  whose 12x12 neighbourhood is one colour, with the descriptor and with an empty prompt.

The tokenizer's group norm (image-wide statistics) made run e's codes a hash of the whole
picture; `vq_local_norm` replaces it (docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import random
import sys
from pathlib import Path

import torch
import torch.nn.functional as F

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.data.mix import Example  # noqa: E402
from seer.models import packaged_mini_weights  # noqa: E402
from seer.models.mini.model import MiniUMM  # noqa: E402
from seer.train.pretrain import batch_tensors, render_palettes  # noqa: E402
from seer.world.descriptors import describe  # noqa: E402
from seer.world.scene import sample_scene  # noqa: E402


def determinism(model: MiniUMM, palettes: torch.Tensor, radius: int) -> float:
    side, p = model.config.tokens_per_side, model.config.patch_size
    codes = model.vq.encode(palettes).reshape(len(palettes), side, side)
    padded = F.pad(palettes, (radius,) * 4, value=-1)
    seen: dict[bytes, collections.Counter] = collections.defaultdict(collections.Counter)
    for i in range(len(palettes)):
        for r in range(side):
            for c in range(side):
                window = padded[i, r * p:r * p + p + 2 * radius, c * p:c * p + p + 2 * radius]
                seen[window.numpy().tobytes()][int(codes[i, r, c])] += 1
    return sum(v.most_common(1)[0][1] for v in seen.values()) / codes.numel()


def uniform_codes(model: MiniUMM, background: str, n: int = 100) -> set[int]:
    rng = random.Random(f"uniform/{background}")
    scenes = []
    while len(scenes) < n:
        s = sample_scene(rng, plain=True, n_objects=1)
        if s.background == background:
            scenes.append(s)
    palettes = render_palettes(scenes, model.config.image_size)
    side, p = model.config.tokens_per_side, model.config.patch_size
    codes = model.vq.encode(palettes).reshape(n, side, side)
    padded = F.pad(palettes, (8,) * 4, value=-1)
    found = set()
    for i in range(n):
        for r in range(side):
            for c in range(side):
                if (padded[i, r * p:r * p + p + 16, c * p:c * p + p + 16] == palettes[i, 0, 0]).all():
                    found.add(int(codes[i, r, c]))
    return found


def object_patches(model: MiniUMM, scene) -> torch.Tensor:
    """Which codes cover an object (pixels that change when the objects are removed)."""
    size, p, side = model.config.image_size, model.config.patch_size, model.config.tokens_per_side
    full = render_palettes([scene, dataclasses.replace(scene, objects=())], size)
    return (full[0] != full[1]).reshape(side, p, side, p).any(3).any(1).reshape(-1)


@torch.no_grad()
def code_losses(model: MiniUMM, scenes: list, conditional: bool) -> dict[str, float]:
    examples = [Example("generate", describe(s) if conditional else "", image=s) for s in scenes]
    ids, _, labels = batch_tensors(model, examples)
    logits = model.lm(inputs_embeds=model.embed(ids)).logits[:, :-1].float()
    labels = labels[:, 1:]
    loss = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    palettes = render_palettes(scenes, model.config.image_size)
    padded = F.pad(palettes, (4,) * 4, value=-1)
    side, p = model.config.tokens_per_side, model.config.patch_size
    parts: dict[str, list[torch.Tensor]] = {"object": [], "other": [], "uniform": []}
    for i, scene in enumerate(scenes):
        where = (labels[i] != -100).nonzero().squeeze(1)[: side * side]  # the codes, not <eoi>
        per_code = loss[i, where]
        on_object = object_patches(model, scene)
        parts["object"].append(per_code[on_object])
        parts["other"].append(per_code[~on_object])
        uniform = torch.tensor([bool((padded[i, r * p:r * p + p + 8, c * p:c * p + p + 8]
                                      == palettes[i, r * p, c * p]).all())
                                for r in range(side) for c in range(side)])
        parts["uniform"].append(per_code[uniform])
    return {k: float(torch.cat(v).mean()) for k, v in parts.items()}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("models", nargs="+")
    ap.add_argument("--scenes", type=int, default=200)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random("code-locality")
    scenes = [sample_scene(rng) for _ in range(args.scenes)]
    rows, loss_rows = [], []
    for name in args.models:
        model = MiniUMM.from_pretrained(packaged_mini_weights() if name == "packaged" else name)
        model.lm.eval()
        palettes = render_palettes(scenes, model.config.image_size)
        white, navy = uniform_codes(model, "white"), uniform_codes(model, "navy")
        rows.append([name, model.config.vq_local_norm, f"{determinism(model, palettes, 0):.1%}",
                     f"{determinism(model, palettes, 4):.1%}", len(white), len(navy), len(white & navy)])
        for conditional in (True, False):
            parts = code_losses(model, scenes[:64], conditional)
            loss_rows.append([name, "descriptor" if conditional else "empty",
                              *(f"{parts[k]:.3f}" for k in ("object", "other", "uniform"))])
    print(f"machine: {machine()}")
    print(f"settings: {args.scenes} random scenes (seed 'code-locality'); losses on the first 64")
    print(table(["model", "local norm", "same code | 4x4 patch", "| 12x12 window",
                 "white codes", "navy codes", "shared"], rows))
    print()
    print(table(["model", "prompt", "loss: object codes", "other codes", "uniform 12x12"], loss_rows))


if __name__ == "__main__":
    main()
