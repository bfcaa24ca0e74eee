"""A short generation-only probe: does a fresh mini transformer learn to draw on a tokenizer?

    python bench/generation_probe.py VQ_DIR --steps 600 [--scenes full|one-object] [--local-norm]
        [--grounding-layer L [--grounding-weight W]] [--out DIR]

VQ_DIR is a tokenizer folder (`seer pretrain` writes one at OUT/vq; `packaged` for the
packaged weights' tokenizer). A fresh transformer of the default size learns literal
descriptor -> image only (10% empty prompts, half the descriptors paraphrased; batch 32,
lr 1.5e-3, 50 warmup steps, cosine), the same for every tokenizer, so the training loss
and the held-out figures compare tokenizers at equal steps in minutes instead of a full
pretraining run. Held-out: 64 scenes, drawn at image temperature 1.0 and 0.3 and read by
the analyzer, next to the tokenizer's own reconstructions of them (the ceiling).
`--grounding-layer` adds `seer pretrain`'s grounding loss (docs/model.md) at that layer.
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np
import torch
from diffusers import VQModel
from transformers import get_cosine_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.data.mix import Example, vocabulary_corpus  # noqa: E402
from seer.eval.mini import scene_agreement  # noqa: E402
from seer.models import packaged_mini_weights  # noqa: E402
from seer.models.mini.model import MiniConfig, MiniUMM  # noqa: E402
from seer.models.mini.vq import PaletteVQ, to_rgb  # noqa: E402
from seer.train.pretrain import (  # noqa: E402
    GroundingHeads,
    _autocast,
    batch_tensors,
    grounding_sites,
    per_example_loss,
    render_palettes,
)
from seer.world.analyzer import analyze_scene  # noqa: E402
from seer.world.descriptors import describe  # noqa: E402
from seer.world.scene import sample_scene  # noqa: E402


def load_vq(path: str) -> tuple[PaletteVQ, MiniConfig]:
    if path == "packaged":
        model = MiniUMM.from_pretrained(packaged_mini_weights())
        return model.vq, model.config
    # A tokenizer folder written by `seer pretrain --set model.vq_local_norm=...` at the
    # default size: its group norms were swapped iff the saved config says so.
    local_norm = "--local-norm" in sys.argv
    config = MiniConfig(vq_local_norm=local_norm)
    return PaletteVQ(VQModel.from_pretrained(path), config.vq_unshuffle, config.vq_local,
                     config.vq_local_norm), config


def score(scenes, images) -> tuple[float, float]:
    right = asked = exact = 0
    for scene, image in zip(scenes, images, strict=True):
        seen = analyze_scene(np.asarray(image))
        r, a = scene_agreement(scene, seen)
        right, asked, exact = right + r, asked + a, exact + (seen == scene)
    return right / asked, exact / len(scenes)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("vq")
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--scenes", choices=("full", "one-object"), default="full")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--out", default=None, help="save the trained model here")
    ap.add_argument("--local-norm", action="store_true", help="the tokenizer was trained with vq_local_norm")
    ap.add_argument("--grounding-layer", type=int, default=0,
                    help="add a loss that reads each code's cell's object from this layer's hidden state")
    ap.add_argument("--grounding-weight", type=float, default=1.0)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    vq, config = load_vq(args.vq)
    model = MiniUMM.create(vocabulary_corpus(), config, seed=0, vq=vq)
    heads = GroundingHeads(config.hidden_size)
    params = model.trainable_parameters() + (list(heads.parameters()) if args.grounding_layer else [])
    optimizer = torch.optim.AdamW(params, lr=1.5e-3, weight_decay=0.01, betas=(0.9, 0.95))
    scheduler = get_cosine_schedule_with_warmup(optimizer, 50, args.steps)
    one = args.scenes == "one-object"

    def scene(rng):
        return sample_scene(rng, plain=True, n_objects=1) if one else sample_scene(rng)

    def example(rng):
        s = scene(rng)
        text = "" if rng.random() < 0.1 else describe(s, rng if rng.random() < 0.5 else None)
        return Example("generate", text, image=s)

    held = [scene(random.Random(f"held{i}")) for i in range(64)]
    losses, grounds, t0 = [], [], time.perf_counter()
    for step in range(args.steps):
        model.train()
        batch = [example(random.Random(f"tr{step}/{i}")) for i in range(32)]
        ids, _, labels = batch_tensors(model, batch)
        with _autocast(True):
            out = model.lm(inputs_embeds=model.embed(ids), output_hidden_states=bool(args.grounding_layer))
        lm_loss = per_example_loss(out.logits, labels).mean()
        ground = torch.zeros(())
        if args.grounding_layer:
            rows, positions, targets = grounding_sites(model, batch, ids)
            ground = heads.loss(out.hidden_states[args.grounding_layer][rows, positions], targets)
        optimizer.zero_grad()
        (lm_loss + args.grounding_weight * ground).backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        scheduler.step()
        grounds.append(ground.item())
        losses.append(lm_loss.item())
        if (step + 1) % 50 == 0:
            print(f"step {step + 1}: loss {np.mean(losses[-50:]):.3f} grounding {np.mean(grounds[-50:]):.3f} "
                  f"({time.perf_counter() - t0:.0f} s)",
                  flush=True)
    model.lm.eval()
    ceiling = score(held, list(to_rgb(model.vq.decode(model.vq.encode(render_palettes(held, 64))))))
    rows = [["tokenizer reconstruction", f"{ceiling[0]:.1%}", f"{ceiling[1]:.1%}"]]
    for t in (1.0, 0.3):
        model.config.image_temperature = t
        got = score(held, model.generate_images([describe(s) for s in held], seed=0))
        rows.append([f"generated, temperature {t}", f"{got[0]:.1%}", f"{got[1]:.1%}"])
    print(f"machine: {machine()}")
    print(f"settings: tokenizer {args.vq}, {args.scenes} scenes, {args.steps} steps; "
          f"final loss (mean of the last 50 steps) {np.mean(losses[-50:]):.3f}")
    print(table(["64 held-out scenes", "attributes right", "exact"], rows))
    if args.out:
        model.save_pretrained(args.out)


if __name__ == "__main__":
    main()
