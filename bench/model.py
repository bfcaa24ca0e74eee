"""Mini model throughput: matmul peak, pretraining tokens/s and MFU, batched image generation.

    python bench/model.py [--batch 32] [--steps 5] [--render-batches 1 32 64 128]

Throughput does not depend on the weights, so a freshly initialised model of the default
size stands in for the trained one. Prints markdown tables (pasted into docs/benchmarks.md).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.data.mix import Mix, vocabulary_corpus  # noqa: E402
from seer.models.mini.model import MiniConfig, MiniUMM  # noqa: E402
from seer.train.pretrain import batch_tensors, per_example_loss  # noqa: E402
from seer.world.descriptors import describe  # noqa: E402
from seer.world.scene import sample_scene  # noqa: E402


def matmul_peak(dtype: torch.dtype, n: int = 2048, repeats: int = 10) -> float:
    a, b = torch.randn(n, n, dtype=dtype), torch.randn(n, n, dtype=dtype)
    for _ in range(3):
        a @ b
    t0 = time.perf_counter()
    for _ in range(repeats):
        a @ b
    return 2 * n**3 * repeats / (time.perf_counter() - t0)


def training_throughput(model: MiniUMM, batch: int, steps: int, bf16: bool) -> tuple[float, float]:
    """(tokens/s, model FLOP/s) of pretraining steps on the real mix."""
    mix = Mix(0)
    optimizer = torch.optim.AdamW(model.trainable_parameters(), lr=1e-4)
    n_params = sum(p.numel() for n, p in model.lm.named_parameters() if "embed" not in n)
    tokens = 0
    elapsed = 0.0
    for step in range(steps + 1):
        examples = [mix.example(i) for i in range(step * batch, (step + 1) * batch)]
        ids, mask, labels = batch_tensors(model, examples)
        t0 = time.perf_counter()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model.lm(inputs_embeds=model.embed(ids), attention_mask=mask).logits
        per_example_loss(logits, labels).mean().backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step:  # the first step warms up
            elapsed += time.perf_counter() - t0
            tokens += int(mask.sum())
    return tokens / elapsed, 6 * n_params * tokens / elapsed


def generation_throughput(model: MiniUMM, sizes: list[int]) -> dict[int, float]:
    """Images/s drawing images in KV-cached batches of each size (a batch of 1: one at a
    time); at least 4 images per size."""
    rng = random.Random(0)
    texts = [describe(sample_scene(rng)) for _ in range(max(max(sizes), 4))]
    model.generate_image_ids(texts[:2], seed=0)  # warm-up
    rates = {}
    for size in sizes:
        calls = max(1, 4 // size)
        t0 = time.perf_counter()
        for k in range(calls):
            model.generate_image_ids(texts[k * size:(k + 1) * size], seed=k * size)
        rates[size] = calls * size / (time.perf_counter() - t0)
    return rates


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--render-batches", type=int, nargs="+", default=[1, 32, 64, 128],
                    help="image batch sizes to time (the first is the ratios' base)")
    args = ap.parse_args()
    config = MiniConfig()
    print(f"machine: {machine()}")
    print(f"settings: default MiniConfig (hidden {config.hidden_size}, {config.num_layers} layers, "
          f"{config.image_tokens} tokens an image), batch {args.batch}, {args.steps} timed steps\n")
    peaks = {"float32": matmul_peak(torch.float32), "bfloat16": matmul_peak(torch.bfloat16)}
    model = MiniUMM.create(vocabulary_corpus(), config, seed=0)
    rows = []
    for name, bf16 in (("float32", False), ("bfloat16 autocast", True)):
        tok_s, flops = training_throughput(model, args.batch, args.steps, bf16)
        peak = peaks["bfloat16" if bf16 else "float32"]
        rows.append([name, f"{tok_s:.0f}", f"{flops / 1e9:.0f}", f"{peak / 1e9:.0f}", f"{flops / peak:.0%}"])
    print("## Pretraining throughput (model FLOPs = 6 x non-embedding params x tokens)\n")
    print(table(["precision", "tokens/s", "model GFLOP/s", "matmul peak GFLOP/s", "MFU"], rows))
    model.eval()
    rates = generation_throughput(model, args.render_batches)
    base = args.render_batches[0]
    print("\n## Image generation (KV cache, CFG)\n")
    print(table(["images a call", "images/s", "ms an image", f"ratio to {base}"], [
        [str(size), f"{rate:.2f}", f"{1000 / rate:.0f}", f"{rate / rates[base]:.1f}x"]
        for size, rate in rates.items()
    ]))

if __name__ == "__main__":
    main()
