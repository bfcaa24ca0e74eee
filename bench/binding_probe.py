"""Can a fresh mini transformer learn to read the object in a named cell?

    python bench/binding_probe.py [--variants vq,cnn,vq+region] [--steps 400] [--objects any]

The packaged model reads every global attribute (background, sky, weather, style: 100%)
but not the object in a named cell ("what shape is at the top left ?"), and draws objects
in the wrong cells (docs/benchmarks.md, runs e and h). This probe isolates that binding:
a fresh transformer of the packaged size (the packaged tokenizer and vocabulary) is trained
only on "what shape is at X ?" / "what color is the object at X ?" questions (batch 32,
AdamW, cosine schedule after 50 warm-up steps, bf16 autocast) and scored on 128 held-out
questions (every answer token right under teacher forcing). Variants, joined with `+`:

- image input: `vq` (the packaged tokenizer's codes, as pretraining sees them), `majority`
  (each 4x4 patch's most frequent palette colour: a perfectly local code), or `cnn` (a
  Janus-style decoupled understanding encoder: a small CNN over the palette one-hot,
  trained with the transformer, giving an 8x8 grid of features);
- `qfirst`: the question comes before the image, so image tokens can see it;
- `region`: each image token also gets the (tied) text embedding of its grid cell's words,
  a prior that the cell named in the question and the image tokens it covers share a vector.

`--kinds` picks other questions by their opening words (`what color is the background`:
a global attribute, the sanity check that the set-up learns at all).
"""

from __future__ import annotations

import argparse
import collections
import json
import random
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn
from transformers import get_cosine_schedule_with_warmup

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.data.mix import Mix, attribute_question, vocabulary_corpus  # noqa: E402
from seer.models import load_model  # noqa: E402
from seer.models.mini.model import MiniUMM  # noqa: E402
from seer.models.mini.vq import N_COLORS  # noqa: E402
from seer.train.pretrain import per_example_loss, render_palettes  # noqa: E402
from seer.world.scene import POSITIONS, sample_scene  # noqa: E402

BINDING_KINDS = ("what shape", "what color is the object")


class Probe(nn.Module):
    """A fresh mini transformer plus the variant's image input."""

    def __init__(self, base: MiniUMM, variant: set[str]):
        super().__init__()
        self.model = MiniUMM.create(vocabulary_corpus(Mix(0).instructions), base.config, seed=0, vq=base.vq)
        self.variant = variant
        hidden = base.config.hidden_size
        self.side = 8 if "cnn" in variant else base.config.tokens_per_side
        if "cnn" in variant:
            self.encoder = nn.Sequential(
                nn.Conv2d(N_COLORS, 64, 3, padding=1), nn.GELU(), nn.Conv2d(64, 128, 4, 2, 1), nn.GELU(),
                nn.Conv2d(128, 256, 4, 2, 1), nn.GELU(), nn.Conv2d(256, 256, 2, 2), nn.GELU(),
                nn.Conv2d(256, hidden, 1))
            self.positions = nn.Parameter(torch.randn(self.side**2, hidden) * 0.02)
        # Each image token's grid cell (0-8), from the centre of the pixels it covers.
        centre = [(2 * k + 1) * 3 // (2 * self.side) for k in range(self.side)]
        self.register_buffer("cell", torch.tensor([centre[i // self.side] * 3 + centre[i % self.side]
                                                   for i in range(self.side**2)]), persistent=False)
        self.cell_words = [self.model.text_ids(p) for p in POSITIONS]

    def image_embeds(self, palettes: torch.Tensor) -> torch.Tensor:
        """(B, side*side, hidden) embeddings of the images' tokens."""
        m = self.model
        if "cnn" in self.variant:
            onehot = F.one_hot(palettes.long(), N_COLORS).permute(0, 3, 1, 2).float()
            feats = self.encoder(onehot).flatten(2).transpose(1, 2) + self.positions
        else:
            if "majority" in self.variant:
                b, h, w = palettes.shape
                k = m.config.patch_size
                onehot = F.one_hot(palettes.long(), N_COLORS)
                patches = onehot.view(b, h // k, k, w // k, k, N_COLORS).sum((2, 4))
                codes = patches.argmax(-1).view(b, -1)
            else:
                codes = m.vq.encode(palettes)
            ids = torch.cat([torch.full((len(codes), 1), m.boi_id), codes + m.code_offset], 1)
            feats = m.embed(ids)[:, 1:]
        if "region" in self.variant:
            table_ = m.lm.get_input_embeddings().weight
            region = torch.stack([table_[words].mean(0) for words in self.cell_words])
            feats = feats + region[self.cell]
        return feats

    def batch(self, items) -> tuple[torch.Tensor, torch.Tensor]:
        """Input embeddings and labels (the answer and <eos> only) of (scene, question, answer)s."""
        m = self.model
        feats = self.image_embeds(render_palettes([s for s, _, _ in items], m.config.image_size))
        rows, labels, starts = [], [], []
        for _, question, answer in items:
            q = m.text_ids(question)
            head = [m.bos_id, m.user_id] + (q if "qfirst" in self.variant else []) + [m.boi_id]
            starts.append(len(head))
            head += [m.code_offset] * self.side**2 + [m.eoi_id]
            head += ([] if "qfirst" in self.variant else q) + [m.assistant_id]
            tail = m.text_ids(answer) + [m.eos_id]
            rows.append(head + tail)
            labels.append([-100] * len(head) + tail)
        width = max(map(len, rows))
        ids = torch.full((len(rows), width), m.pad_id)
        lab = torch.full((len(rows), width), -100)
        for i, (r, y) in enumerate(zip(rows, labels, strict=True)):
            ids[i, :len(r)], lab[i, :len(y)] = torch.tensor(r), torch.tensor(y)
        embeds = m.lm.get_input_embeddings()(ids).clone()
        for i, start in enumerate(starts):
            embeds[i, start:start + self.side**2] = feats[i]
        return embeds, lab


def questions(rng: random.Random, objects: str, kinds: tuple[str, ...]):
    while True:
        scene = sample_scene(rng, n_objects=None if objects == "any" else int(objects))
        question, answer = attribute_question(scene, rng)
        if question.startswith(kinds):
            return scene, question, answer


def run(base: MiniUMM, variant: set[str], args) -> dict:
    torch.manual_seed(0)
    probe = Probe(base, variant)
    # The tokenizer stays frozen, as in pretraining; MiniUMM is not a module, so list its part.
    params = probe.model.trainable_parameters() + list(probe.parameters())
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01, betas=(0.9, 0.95))
    schedule = get_cosine_schedule_with_warmup(opt, 50, args.steps)
    held_out_rng = random.Random("binding-probe/held-out")
    held_out = [questions(held_out_rng, args.objects, args.kinds) for _ in range(128)]
    held_out_kinds = [q.split()[1] for _, q, _ in held_out]  # "shape", "color", ...
    kinds = sorted(set(held_out_kinds))

    def evaluate() -> dict:
        probe.eval()
        with torch.no_grad():
            embeds, labels = probe.batch(held_out)
            pred = probe.model.lm(inputs_embeds=embeds).logits[:, :-1].argmax(-1)
        probe.train()
        y = labels[:, 1:]
        right = ((pred == y) | (y == -100)).all(1).tolist()
        return {k: sum(r for r, kind in zip(right, held_out_kinds, strict=True) if kind == k)
                / held_out_kinds.count(k) for k in kinds}

    start, curve = time.time(), []
    for step in range(args.steps):
        rng = random.Random(f"binding-probe/train/{step}")
        embeds, labels = probe.batch([questions(rng, args.objects, args.kinds) for _ in range(32)])
        with torch.autocast("cpu", dtype=torch.bfloat16):
            logits = probe.model.lm(inputs_embeds=embeds).logits
        loss = per_example_loss(logits, labels).mean()
        if not torch.isfinite(loss):
            name = "+".join(sorted(variant))
            raise FloatingPointError(f"variant {name}: loss {loss.item()} at step {step}")
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        schedule.step()
        if (step + 1) % args.every == 0 or step + 1 == args.steps:
            point = {"step": step + 1, "loss": round(loss.item(), 3), **evaluate()}
            curve.append(point)
            print(json.dumps({"variant": "+".join(sorted(variant)), **point}), file=sys.stderr, flush=True)
    # A constant answer's score: what a model that ignores the image gets.
    answers = collections.Counter(zip(held_out_kinds, (a for _, _, a in held_out), strict=True))
    constant = {k: max(n for (kind, _), n in answers.items() if kind == k) / held_out_kinds.count(k)
                for k in kinds}
    return {"curve": curve, "s_per_step": (time.time() - start) / args.steps, "constant": constant}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--variants", default="vq,majority,cnn,vq+qfirst,vq+region,cnn+qfirst")
    parser.add_argument("--steps", type=int, default=400)
    parser.add_argument("--every", type=int, default=100)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--objects", default="any", help="objects per scene: 1, 2, 3 or any")
    parser.add_argument("--kinds", default="|".join(BINDING_KINDS),
                        help="questions kept, by their opening words, separated by |")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    args.kinds = tuple(args.kinds.split("|"))
    torch.set_num_threads(args.threads)
    base = load_model("mini")
    known = {"vq", "majority", "cnn", "qfirst", "region"}
    results = {}
    for name in args.variants.split(","):
        variant = set(name.split("+"))
        if not variant <= known or len(variant & {"vq", "majority", "cnn"}) != 1:
            parser.error(f"--variants: {name!r} needs exactly one of vq, majority, cnn, "
                         f"plus any of qfirst, region")
        results[name] = run(base, variant, args)
    print(f"machine: {machine()}")
    print(f"settings: steps {args.steps}, lr {args.lr}, batch 32, objects {args.objects}, "
          f"kinds {'|'.join(args.kinds)}, 128 held-out questions")
    kinds = [k for k in results[next(iter(results))]["curve"][-1] if k not in ("step", "loss")]
    rows = [[name, p["step"], p["loss"], *(f"{p[k]:.0%}" for k in kinds), f"{r['s_per_step']:.2f}"]
            for name, r in results.items() for p in r["curve"]]
    constant = next(iter(results.values()))["constant"]
    rows.append(["best constant answer", "-", "-", *(f"{constant[k]:.0%}" for k in kinds), "-"])
    print(table(["variant", "step", "loss", *kinds, "s/step"], rows))


if __name__ == "__main__":
    main()
