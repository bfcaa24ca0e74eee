"""Can a small learned readout tell an object's shape from the image tokens of its cell?

    python bench/shape_readout.py [MODEL] [--batches 60] [--steps 600] [--threads 1]

MODEL is a mini model folder (default: the packaged weights). The mini model reads images
only through its tokenizer's codes (early fusion), and it reads global attributes but not
the object in a cell (docs/benchmarks.md, runs e-h and the binding probe). This asks
whether the codes carry the object's shape where it stands, apart from any transformer:
on random scenes, each object's cell is cut out as a window of 6x6 codes (24x24 pixels,
the cell and a margin), and three small readouts are trained on the same objects, with
the same optimiser and steps, to name its shape (and colour):

- `codes, conv`: a learned code embedding and two 3x3 convolutions over the window (the
  codes and their arrangement);
- `codes, bag`: the mean of the window's code embeddings, then an MLP (the codes only);
- `pixels, conv`: the window's palette pixels (one-hot colours), each 4x4 patch turned into
  a learned feature, then the same two convolutions: the same 6x6 grid, read from the
  picture itself, in the same training.

Held-out accuracy is on the last 20% of objects; the best constant answer is 25% for shape
(four shapes, drawn uniformly) and 12.5% for colour.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.models import load_model  # noqa: E402
from seer.models.mini.vq import N_COLORS  # noqa: E402
from seer.train.pretrain import render_palettes  # noqa: E402
from seer.world.scene import OBJECT_COLORS, POSITIONS, SHAPES, sample_scene  # noqa: E402

WINDOW = 6  # codes per side: a grid cell is 64 / 3 px = 5.3 codes of 4 px


def windows(model, batches: int, seed: int):
    """(codes B x 6 x 6, palette pixels B x 24 x 24, shape labels, colour labels) of every
    object of `batches` x 64 random scenes, cut around its cell's centre."""
    side, patch, size = model.config.tokens_per_side, model.config.patch_size, model.config.image_size
    rng = random.Random(seed)
    codes, pixels, shapes, colors = [], [], [], []
    for _ in range(batches):
        scenes = [sample_scene(rng) for _ in range(64)]
        palettes = render_palettes(scenes, size)
        grids = model.vq.encode(palettes).view(-1, side, side)
        for scene, grid, palette in zip(scenes, grids, palettes, strict=True):
            for obj in scene.objects:
                row, col = divmod(POSITIONS.index(obj.position), 3)
                top = min(max(round((2 * row + 1) * size / 6 / patch - WINDOW / 2), 0), side - WINDOW)
                left = min(max(round((2 * col + 1) * size / 6 / patch - WINDOW / 2), 0), side - WINDOW)
                codes.append(grid[top:top + WINDOW, left:left + WINDOW])
                y, x, span = patch * top, patch * left, patch * WINDOW
                pixels.append(palette[y:y + span, x:x + span])
                shapes.append(SHAPES.index(obj.shape))
                colors.append(OBJECT_COLORS.index(obj.color))
    return (torch.stack(codes), torch.stack(pixels).long(), torch.tensor(shapes), torch.tensor(colors))


def conv_head(channels: int, classes: int) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(channels, 128, 3, padding=1), nn.GELU(), nn.Conv2d(128, 128, 3, padding=1),
                         nn.GELU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(128, classes))


class CodeConv(nn.Module):
    def __init__(self, codebook: int, classes: int):
        super().__init__()
        self.embed, self.head = nn.Embedding(codebook, 64), conv_head(64, classes)

    def forward(self, codes):
        return self.head(self.embed(codes).permute(0, 3, 1, 2))


class CodeBag(nn.Module):
    def __init__(self, codebook: int, classes: int):
        super().__init__()
        self.embed = nn.Embedding(codebook, 128)
        self.head = nn.Sequential(nn.Linear(128, 128), nn.GELU(), nn.Linear(128, classes))

    def forward(self, codes):
        return self.head(self.embed(codes).flatten(1, 2).mean(1))


class PixelConv(nn.Module):
    """Each 4x4 patch to a learned feature (a tokenizer without a codebook, trained for the
    question), then the same head as the codes: the same 6x6 grid, read from the pixels."""

    def __init__(self, classes: int):
        super().__init__()
        self.head = nn.Sequential(nn.Conv2d(N_COLORS, 64, 4, stride=4), nn.GELU(), *conv_head(64, classes))

    def forward(self, pixels):
        return self.head(F.one_hot(pixels, N_COLORS).permute(0, 3, 1, 2).float())


def held_out_accuracy(net: nn.Module, x: torch.Tensor, y: torch.Tensor, steps: int) -> float:
    torch.manual_seed(0)
    split = int(0.8 * len(y))
    opt = torch.optim.AdamW(net.parameters(), lr=2e-3)
    for _ in range(steps):
        i = torch.randint(0, split, (128,))
        loss = F.cross_entropy(net(x[i]), y[i])
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return float((net(x[split:]).argmax(1) == y[split:]).float().mean())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("model", nargs="?", default=None, help="a mini model folder (default: packaged)")
    parser.add_argument("--batches", type=int, default=60, help="batches of 64 random scenes")
    parser.add_argument("--steps", type=int, default=600, help="training steps of each readout (batch 128)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    model = load_model("mini", args.model)
    codes, pixels, shapes, colors = windows(model, args.batches, seed=0)
    codebook = model.config.codebook_size
    rows = []
    for target, labels, classes in (("shape", shapes, len(SHAPES)), ("colour", colors, len(OBJECT_COLORS))):
        for name, make, inputs in (("codes, conv", lambda k: CodeConv(codebook, k), codes),
                                   ("codes, bag", lambda k: CodeBag(codebook, k), codes),
                                   ("pixels, conv", PixelConv, pixels)):
            torch.manual_seed(0)
            start = time.perf_counter()
            accuracy = held_out_accuracy(make(classes), inputs, labels, args.steps)
            rows.append([target, name, f"{accuracy:.1%}", f"{time.perf_counter() - start:.0f}"])
            print(rows[-1], file=sys.stderr, flush=True)
    print(f"machine: {machine()}")
    print(f"settings: model {args.model or 'packaged'}, {len(shapes)} objects from {args.batches * 64} "
          f"random scenes (80% train), window {WINDOW}x{WINDOW} codes, {args.steps} steps of 128, AdamW 2e-3")
    print(table(["target", "readout", "held-out accuracy", "seconds"], rows))


if __name__ == "__main__":
    main()
