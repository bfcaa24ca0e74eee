"""Image tokenizer grids: how fast a 16x16 and an 8x8 code grid learn to reconstruct scenes.

    python bench/tokenizer_grid.py [--steps 1000] [--every 250] [--threads 2] [--quantize]

Fewer codes an image would make every sequence of the mini model shorter (a two-image
evaluator prompt is ~530 tokens at 256 codes an image, ~150 at 64), so the question is
whether an 8x8 grid can be learnt on this CPU at all. Each candidate is the mini model's
palette autoencoder (`seer.models.mini.vq`) with the given space-to-depth factor and
`diffusers` blocks, trained on the same 20,000 random scenes with the pretraining loss
(per-pixel cross-entropy, boundary pixels x4). Without `--quantize` the latents go to the
decoder unquantized: an upper bound on what any codebook could then reach. Prints pixel
accuracy and analyzer-exact reconstructions of 200 held-out scenes every `--every` steps.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from diffusers import VQModel

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.models.mini.vq import PaletteVQ, to_rgb, vq_config  # noqa: E402
from seer.train.pretrain import edge_weights, render_palettes, restart_dead_codes  # noqa: E402
from seer.world.analyzer import analyze_scene  # noqa: E402
from seer.world.scene import sample_scene  # noqa: E402

# name: (space-to-depth, block channels, layers per block, middle attention, codebook, lr)
CANDIDATES = {
    "16x16 (default)": (2, (32, 64), 1, False, 1024, 2e-3),
    "8x8, 4x4 s2d + 1 down": (4, (128, 128), 1, True, 8192, 1e-3),
    "8x8, 8x8 s2d": (8, (256,), 2, False, 8192, 1e-3),
}


def build(unshuffle, channels, layers, attention, codebook) -> PaletteVQ:
    config = vq_config(64, unshuffle, codebook, channels, 32)
    config.update(layers_per_block=layers, mid_block_add_attention=attention)
    return PaletteVQ(VQModel(**config), unshuffle)


def reconstruct(vq: PaletteVQ, x: torch.Tensor, quantize: bool):
    h = vq.vq.encode(vq._in(x)).latents
    commit, codes = torch.zeros(()), None
    if quantize:
        h, commit, (_, _, codes) = vq.vq.quantize(h)
    return vq._out(vq.vq.decode(h, force_not_quantize=True).sample), commit, codes


def run(name: str, args, data: torch.Tensor, held: list, held_x: torch.Tensor) -> list[list]:
    unshuffle, channels, layers, attention, codebook, lr = CANDIDATES[name]
    torch.manual_seed(0)
    vq = build(unshuffle, channels, layers, attention, codebook)
    optimizer = torch.optim.AdamW(vq.parameters(), lr=lr)
    usage = torch.zeros(codebook)
    rows, t0 = [], time.perf_counter()
    for step in range(1, args.steps + 1):
        x = data[torch.randint(len(data), (32,))]
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits, commit, codes = reconstruct(vq, x, args.quantize)
        pixel = F.cross_entropy(logits.float(), x, reduction="none")
        weights = edge_weights(x, 4.0)
        loss = (pixel * weights).sum() / weights.sum() + commit.float()
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if codes is not None:
            usage += torch.bincount(codes.reshape(-1), minlength=codebook)
            if step % 100 == 0:
                restart_dead_codes(vq, x, usage)
                usage.zero_()
        if step % args.every == 0:
            with torch.no_grad():
                rec = reconstruct(vq, held_x, args.quantize)[0].argmax(1)
            exact = sum(analyze_scene(to_rgb(r)) == s for r, s in zip(rec, held, strict=True)) / len(held)
            pixels = (rec == held_x).float().mean()
            rows.append([name, step, f"{time.perf_counter() - t0:.0f}", f"{pixels:.2%}", f"{exact:.1%}"])
            print(table(["grid", "step", "seconds", "pixels right", "exact scenes"], rows[-1:]), flush=True)
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--steps", type=int, default=1000)
    ap.add_argument("--every", type=int, default=250)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--quantize", action="store_true", help="train real VQ models (default: no quantizer)")
    ap.add_argument("--only", choices=list(CANDIDATES), action="append", help="run only these grids")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    rng = random.Random("bench/tokenizer")
    data = render_palettes([sample_scene(rng) for _ in range(20000)], 64)
    held = [sample_scene(rng) for _ in range(200)]
    held_x = render_palettes(held, 64)
    print(f"machine: {machine()}\nsettings: {args.steps} steps of 32 scenes, "
          f"{'quantized' if args.quantize else 'unquantized latents'}, 200 held-out scenes\n")
    rows = [row for name in (args.only or CANDIDATES) for row in run(name, args, data, held, held_x)]
    print()
    print(table(["grid", "step", "seconds", "pixels right", "exact scenes"], rows))


if __name__ == "__main__":
    main()
