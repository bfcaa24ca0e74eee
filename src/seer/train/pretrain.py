"""`seer pretrain`: train the mini unified model from scratch, reproducibly from a seed.

Two phases, each resumable from its last checkpoint:
1. the image tokenizer (a `diffusers` VQModel over palette maps) on rendered world scenes,
   per-pixel cross-entropy, with dead codes restarted from encoder outputs;
2. the unified transformer (a `transformers` Llama) on the pretraining mix
   (`seer.data.mix`): every example weighs the same, whatever its length, so a one-word
   answer counts as much as a 225-code image.
Outputs, under `out/`: `vq/` and `checkpoint/` (resumable state), `model/` (the final
model in Hugging Face layout), `config.json` (the resolved config), `log.jsonl` and
TensorBoard events.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from diffusers import VQModel
from tqdm.auto import tqdm
from transformers import get_cosine_schedule_with_warmup

from seer.config import ConfigError
from seer.data.mix import DEFAULT_WEIGHTS, Example, Mix, vocabulary_corpus
from seer.io import atomic_write_json
from seer.models.mini.model import MiniConfig, MiniUMM, new_vq
from seer.models.mini.vq import PaletteVQ, to_palette
from seer.train.checkpoint import check_finite, load_state, restore, save_checkpoint
from seer.world.geometry import grid_cells
from seer.world.render import render_array
from seer.world.scene import OBJECT_COLORS, SHAPES, SIZES, Scene, sample_scene

RESTART_EVERY = 100  # steps between dead-code restarts of the tokenizer
TRIM_EVERY = 20  # steps between returns of free heap memory to the system


@dataclasses.dataclass
class PretrainConfig:
    out: str = "runs/pretrain"
    seed: int = 0
    model: MiniConfig = dataclasses.field(default_factory=MiniConfig)
    # Start from this trained mini model (its vocabulary, image tokenizer and weights) instead
    # of from scratch: phase 1 is skipped and `model` is ignored, except that
    # `model.image_positions` adds (zero) image position embeddings to a model without them.
    init: str | None = None
    # Phase 1: image tokenizer.
    vq_steps: int = 3500
    vq_batch_size: int = 32
    vq_lr: float = 2e-3
    vq_scenes: int = 20000
    # Pixels on a colour boundary weigh this much more in the tokenizer loss: a 1 px
    # outline ring is a sliver of the image but decides how the analyzer reads the style.
    vq_edge_weight: float = 4.0
    # The first steps train a plain autoencoder (no quantizer); then the codebook starts from
    # encodings of the most frequent patches (a local tokenizer) or of random patches. A
    # codebook trained from random vectors at once collapsed onto a handful of codes.
    vq_autoencoder_steps: int = 500
    # Phase 2: unified transformer.
    steps: int = 3000
    batch_size: int = 32
    lr: float = 1.5e-3
    warmup_steps: int = 200
    weight_decay: float = 0.01
    mix: dict[str, float] = dataclasses.field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    checkpoint_every: int = 200
    log_every: int = 20
    bf16: bool = True
    # Grounding: an auxiliary, training-only loss. Small linear heads read this layer's hidden
    # state (0 = off) at image codes and must name the shape, colour and size of the object
    # in the code's grid cell: at each position that predicts a generated image's code, and
    # at the last code of each cell of an understanding image. It supervises densely the
    # text-to-cell binding that the language-model loss teaches only slowly
    # (docs/benchmarks.md). The heads are dropped from the saved model.
    grounding_layer: int = 3
    grounding_weight: float = 1.0
    # torch.compile the transformer's forward (dynamic shapes: one graph for every batch
    # width). 1.3-1.8x faster steps on the CPU after a minute of compiling, so worth it for
    # real runs and not for short ones (tests).
    compile: bool = False


def _autocast(enabled: bool):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled)


def render_palettes(scenes, size: int) -> torch.Tensor:
    return to_palette(np.stack([render_array(s, size) for s in scenes]))


# ---------------------------------------------------------------- phase 1: tokenizer

def train_vq(cfg: PretrainConfig, out: Path, resume: bool, log) -> PaletteVQ:
    mc = cfg.model
    ckpt = out / "vq"
    torch.manual_seed(cfg.seed)  # the tokenizer's initial weights and its batches
    resuming = resume and (ckpt / "state.pt").exists()
    if resuming:
        vq = PaletteVQ(VQModel.from_pretrained(ckpt), mc.vq_unshuffle, mc.vq_local, mc.vq_local_norm)
    else:
        vq = new_vq(mc)
    optimizer = torch.optim.AdamW(vq.parameters(), lr=cfg.vq_lr)
    start = 0
    usage = torch.zeros(mc.codebook_size)  # code use since the last dead-code restart
    if resuming:
        state = load_state(ckpt)
        start = restore(state, optimizer)
        usage = state["extra"].get("usage", usage)
    # Cosine decay to zero: the last, small steps settle the thin strokes. The schedule is
    # a function of the step, so a resumed run rebuilds it from `start`.
    for group in optimizer.param_groups:
        group["initial_lr"] = cfg.vq_lr
    scheduler = get_cosine_schedule_with_warmup(optimizer, 0, cfg.vq_steps, last_epoch=start - 1)
    if start >= cfg.vq_steps:
        return vq
    # At most half the steps without the quantizer, so short (test) runs still quantize.
    autoencoder_steps = min(cfg.vq_autoencoder_steps, cfg.vq_steps // 2)
    rng = random.Random(f"{cfg.seed}/vq")
    data = render_palettes([sample_scene(rng) for _ in range(cfg.vq_scenes)], mc.image_size)
    dead = 0
    vq.train()
    bar = tqdm(range(start, cfg.vq_steps), desc="pretrain: image tokenizer", initial=start,
               total=cfg.vq_steps)
    for step in bar:
        x = data[torch.randint(len(data), (cfg.vq_batch_size,))]
        if step == autoencoder_steps:
            start_codebook(vq, data, usage)
        quantize = step >= autoencoder_steps
        with _autocast(cfg.bf16):
            logits, commit, codes = vq(x, quantize=quantize)
        pixel_loss = F.cross_entropy(logits.float(), x, reduction="none")
        weights = edge_weights(x, cfg.vq_edge_weight)
        loss = (pixel_loss * weights).sum() / weights.sum() + commit.float()
        check_finite("tokenizer loss", loss, step)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        check_finite("tokenizer gradient norm", torch.nn.utils.clip_grad_norm_(vq.parameters(), 1e9), step)
        optimizer.step()
        scheduler.step()
        if quantize:
            usage += torch.bincount(codes.reshape(-1), minlength=mc.codebook_size)
        if quantize and (step + 1) % RESTART_EVERY == 0:
            patch_errors = F.avg_pool2d(pixel_loss.detach()[:, None], mc.patch_size).flatten()
            dead = restart_dead_codes(vq, x, usage, patch_errors)
            usage.zero_()
        if (step + 1) % cfg.log_every == 0:
            log({"phase": "vq", "step": step + 1, "loss": loss.item(), "dead_codes": dead})
            bar.set_postfix(loss=f"{loss.item():.4f}", dead=dead)
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.vq_steps:
            save_checkpoint(ckpt, vq.vq.save_pretrained, step=step + 1, optimizer=optimizer,
                            extra={"usage": usage})
    vq.eval()
    return vq


def edge_weights(x: torch.Tensor, edge_weight: float) -> torch.Tensor:
    """B x H x W loss weights: `edge_weight` where a pixel differs from a 4-neighbour, else 1."""
    edge = torch.zeros_like(x, dtype=torch.bool)
    vertical = x[:, 1:] != x[:, :-1]
    horizontal = x[:, :, 1:] != x[:, :, :-1]
    edge[:, 1:] |= vertical
    edge[:, :-1] |= vertical
    edge[:, :, 1:] |= horizontal
    edge[:, :, :-1] |= horizontal
    return 1.0 + (edge_weight - 1.0) * edge.float()


@torch.no_grad()
def start_codebook(vq: PaletteVQ, data: torch.Tensor, usage: torch.Tensor) -> None:
    """The codebook at the end of the autoencoder steps (see `vq_autoencoder_steps`)."""
    sample = data[:2000]
    if vq.local:
        vq.init_codebook(sample)
    else:
        restart_dead_codes(vq, sample[:64], torch.zeros_like(usage))
    usage.zero_()


@torch.no_grad()
def restart_dead_codes(vq: PaletteVQ, batch: torch.Tensor, usage: torch.Tensor,
                       patch_errors: torch.Tensor | None = None) -> int:
    """Codes no token chose since the last restart move onto encoder outputs of the batch,
    drawn in proportion to each patch's reconstruction error when given: spare codes go to
    the patches drawn worst (rare colour pairs, thin strokes), not to yet another copy of a
    plain background, which most patches are."""
    dead = (usage == 0).nonzero().squeeze(1)
    if len(dead):
        h = vq.vq.encode(vq._in(batch)).latents.permute(0, 2, 3, 1).reshape(-1, vq.vq.config.vq_embed_dim)
        if patch_errors is not None and int((patch_errors > 0).sum()) >= len(dead):
            chosen = torch.multinomial(patch_errors.float(), len(dead), replacement=False)
        else:
            chosen = torch.randint(len(h), (len(dead),))
        vq.vq.quantize.embedding.weight.data[dead] = h[chosen]
    return len(dead)


@torch.no_grad()
def tokenizer_figures(vq: PaletteVQ, size: int, n: int = 300, seed: int = 0) -> dict[str, float]:
    """Reconstructions of held-out scenes: pixels right, and scenes the analyzer reads exactly."""
    from seer.models.mini.vq import to_rgb
    from seer.world.analyzer import analyze_scene

    rng = random.Random(f"heldout-eval/{seed}/tokenizer")
    scenes = [sample_scene(rng) for _ in range(n)]
    x = render_palettes(scenes, size)
    rec = vq.decode(vq.encode(x))
    exact = sum(analyze_scene(to_rgb(r)) == s for r, s in zip(rec, scenes, strict=True))
    return {"pixel_accuracy": float((rec == x).float().mean()), "exact_scene": exact / n}


# ---------------------------------------------------------------- phase 2: transformer

def example_ids(model: MiniUMM, ex: Example, codes: dict[int, torch.Tensor]) -> tuple[list[int], list[int]]:
    """Token ids of one example and its labels (-100 where nothing is learnt: the user turn)."""
    images = [codes[id(s)] for s in ex.images]
    head = model.user_turn(ex.prompt, images)
    if ex.image is not None:
        tail = [model.boi_id, *codes[id(ex.image)].tolist(), model.eoi_id]
    else:
        tail = model.text_ids(ex.answer) + [model.eos_id]
    return head + tail, [-100] * len(head) + tail


def batch_tensors(model: MiniUMM, examples: list[Example]):
    scenes = {id(s): s for ex in examples for s in (*ex.images, *([ex.image] if ex.image else []))}
    keys = list(scenes)
    encoded = model.vq.encode(render_palettes([scenes[k] for k in keys], model.config.image_size))
    codes = dict(zip(keys, encoded + model.code_offset, strict=True))
    rows = [example_ids(model, ex, codes) for ex in examples]
    # Widths rounded up to a multiple of 32: fewer distinct tensor shapes for the allocator
    # (right padding after causal attention changes no real token's output).
    width = -(-max(len(ids) for ids, _ in rows) // 32) * 32
    ids = torch.full((len(rows), width), model.pad_id)
    labels = torch.full((len(rows), width), -100)
    for i, (r, lab) in enumerate(rows):
        ids[i, :len(r)] = torch.tensor(r)
        labels[i, :len(lab)] = torch.tensor(lab)
    return ids, (ids != model.pad_id).long(), labels


def length_groups(examples: list[Example]) -> list[list[int]]:
    """Split a batch in at most two groups by image count, so short rows are not padded to
    the length of two-image rows (which would nearly double the cost of a step)."""
    counts = [len(ex.images) + (ex.image is not None) for ex in examples]
    groups = [[i for i, c in enumerate(counts) if c < 2], [i for i, c in enumerate(counts) if c >= 2]]
    return [g for g in groups if g]


GROUNDED_FIELDS = (("shape", SHAPES), ("color", OBJECT_COLORS), ("size", SIZES))


class GroundingHeads(torch.nn.Module):
    """Per field, a linear readout of a hidden state: 0 = no object, else 1 + the value's index."""

    def __init__(self, hidden_size: int):
        super().__init__()
        self.heads = torch.nn.ModuleList(torch.nn.Linear(hidden_size, len(values) + 1)
                                         for _, values in GROUNDED_FIELDS)

    def loss(self, hidden: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        """Mean cross-entropy over sites and fields; hidden (N, H), targets (N, fields)."""
        return sum(F.cross_entropy(head(hidden.float()), targets[:, k])
                   for k, head in enumerate(self.heads)) / len(self.heads)


def cell_objects(scene: Scene) -> dict[str, torch.Tensor]:
    """Grounding targets of each grid position: (fields,) with 0 where the cell is empty."""
    return {o.position: torch.tensor([1 + values.index(getattr(o, name)) for name, values in GROUNDED_FIELDS])
            for o in scene.objects}


@functools.lru_cache
def _cell_layout(side: int) -> tuple[list[str], dict[str, int]]:
    """Each code's grid position, and the last code of each position (computed once a size)."""
    cells = grid_cells(side)
    return cells, {c: max(j for j, d in enumerate(cells) if d == c) for c in set(cells)}


def grounding_sites(model: MiniUMM, examples: list[Example], ids: torch.Tensor):
    """(rows, positions, targets) of the grounding loss in a batch built by `batch_tensors`.

    A generated image is grounded at every position that predicts one of its codes (what
    must be drawn there); an understanding image at the last code of each grid cell, the
    first place a causal model has seen the whole cell. A generated image with an empty
    prompt (the unconditional rows of guidance) has nothing to ground."""
    cells, last_code = _cell_layout(model.config.tokens_per_side)
    empty = torch.zeros(len(GROUNDED_FIELDS), dtype=torch.long)
    rows, positions, targets = [], [], []
    for i, ex in enumerate(examples):
        starts = (ids[i] == model.boi_id).nonzero().flatten().tolist()
        for b, scene in zip(starts, ex.images, strict=False):
            objects = cell_objects(scene)
            for c, j in last_code.items():
                rows.append(i)
                positions.append(b + 1 + j)
                targets.append(objects.get(c, empty))
        if ex.image is not None and ex.prompt.strip():
            objects = cell_objects(ex.image)
            b = starts[len(ex.images)]
            for j, c in enumerate(cells):
                rows.append(i)
                positions.append(b + j)
                targets.append(objects.get(c, empty))
    if not rows:
        return None
    return torch.tensor(rows), torch.tensor(positions), torch.stack(targets)


def per_example_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Mean cross-entropy over each example's labelled tokens (B,)."""
    logits, labels = logits[:, :-1].float(), labels[:, 1:]
    tokens = F.cross_entropy(logits.transpose(1, 2), labels.clamp(min=0), reduction="none")
    mask = (labels != -100).float()
    return (tokens * mask).sum(1) / mask.sum(1).clamp(min=1)


def train_lm(cfg: PretrainConfig, vq: PaletteVQ, out: Path, resume: bool, log,
             init: MiniUMM | None = None) -> MiniUMM:
    ckpt = out / "checkpoint"
    mix = Mix(cfg.seed, cfg.mix)
    torch.manual_seed(cfg.seed)
    resuming = resume and (ckpt / "state.pt").exists()
    if resuming:
        model = MiniUMM.from_pretrained(ckpt)
        model.vq = vq  # phase 1's tokenizer is the one of record
    elif init is not None:
        model = init
    else:
        model = MiniUMM.create(vocabulary_corpus(mix.instructions), cfg.model, seed=cfg.seed, vq=vq)
    state = load_state(ckpt) if resuming else None
    grounding = None
    if cfg.grounding_layer:
        if cfg.grounding_layer > model.config.num_layers:
            raise ConfigError(f"grounding_layer {cfg.grounding_layer}: the model has "
                              f"{model.config.num_layers} layers")
        grounding = GroundingHeads(model.config.hidden_size)
        if state is not None:
            grounding.load_state_dict(state["extra"]["grounding"])
    params = model.trainable_parameters() + (list(grounding.parameters()) if grounding else [])
    optimizer = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, betas=(0.9, 0.95))
    scheduler = get_cosine_schedule_with_warmup(optimizer, cfg.warmup_steps, cfg.steps)
    start = restore(state, optimizer, scheduler) if state is not None else 0
    model.train()
    n_params = sum(p.numel() for n, p in model.lm.named_parameters() if "embed" not in n)
    # The compiled module shares the model's parameters; saving goes through `model` as ever.
    forward = torch.compile(model.lm, dynamic=True) if cfg.compile else model.lm
    bar = tqdm(range(start, cfg.steps), desc="pretrain: unified transformer", initial=start, total=cfg.steps)
    tokens_seen, t0 = 0, time.perf_counter()
    for step in bar:
        first = step * cfg.batch_size
        examples = [mix.example(i) for i in range(first, first + cfg.batch_size)]
        losses = torch.zeros(len(examples))
        grounding_loss = torch.zeros(())
        optimizer.zero_grad(set_to_none=True)
        # Rows of very different lengths (one image or two) go in separate passes, each
        # padded to its own longest row; gradients add up to the whole batch's mean loss.
        for rows in length_groups(examples):
            ids, mask, labels = batch_tensors(model, [examples[i] for i in rows])
            # Rows are right-padded and attention is causal, so no real token ever sees a
            # pad: no attention mask is needed, which keeps the fast causal kernel.
            with _autocast(cfg.bf16):
                output = forward(inputs_embeds=model.embed(ids), output_hidden_states=grounding is not None)
            group_losses = per_example_loss(output.logits, labels)
            check_finite("loss", group_losses.sum(), step)
            total = group_losses.sum() / len(examples)
            sites = grounding_sites(model, [examples[i] for i in rows], ids) if grounding else None
            if sites is not None:
                at_rows, at_positions, targets = sites
                hidden = output.hidden_states[cfg.grounding_layer][at_rows, at_positions]
                part = grounding.loss(hidden, targets) * len(rows) / len(examples)
                check_finite("grounding loss", part, step)
                total = total + cfg.grounding_weight * part
                grounding_loss += part.detach()
            total.backward()
            losses[rows] = group_losses.detach()
            tokens_seen += int(mask.sum())
        loss = losses.mean()
        # bf16 can overflow a gradient while the loss stays finite: check before stepping.
        check_finite("gradient norm", torch.nn.utils.clip_grad_norm_(params, 1.0), step)
        optimizer.step()
        scheduler.step()
        if (step + 1) % TRIM_EVERY == 0:
            release_free_memory()
        if (step + 1) % cfg.log_every == 0:
            elapsed = time.perf_counter() - t0
            record: dict[str, Any] = {"phase": "lm", "step": step + 1, "loss": loss.item(),
                                      "lr": scheduler.get_last_lr()[0], "tokens_per_s": tokens_seen / elapsed,
                                      "model_tflops": 6 * n_params * tokens_seen / elapsed / 1e12}
            for kind in mix.weights:
                chosen = [k for k, ex in enumerate(examples) if ex.kind == kind]
                if chosen:
                    record[f"loss/{kind}"] = losses[chosen].mean().item()
            if grounding is not None:
                record["loss/grounding"] = grounding_loss.item()
            log(record)
            bar.set_postfix(loss=f"{loss.item():.3f}", tok_s=f"{record['tokens_per_s']:.0f}")
        if (step + 1) % cfg.checkpoint_every == 0 or step + 1 == cfg.steps:
            save_checkpoint(ckpt, model.save_pretrained, step=step + 1, optimizer=optimizer,
                            scheduler=scheduler,
                            extra={"grounding": grounding.state_dict()} if grounding else None)
    model.eval()
    return model


# ---------------------------------------------------------------- entry point

# Keys a resumed run may change: how long it runs and how it reports, not what it learns.
RESUMABLE_CHANGES = {"out", "steps", "vq_steps", "checkpoint_every", "log_every", "compile"}
# Keys only the transformer phase reads: free to change until that phase writes its first
# checkpoint, so one run can train the tokenizer and the next choose the transformer's recipe.
TRANSFORMER_KEYS = {"batch_size", "lr", "warmup_steps", "weight_decay", "mix", "bf16", "grounding_layer",
                    "grounding_weight"}


def validate(cfg: PretrainConfig) -> None:
    mc = cfg.model
    if cfg.vq_edge_weight < 1:
        raise ConfigError(f"vq_edge_weight must be at least 1, got {cfg.vq_edge_weight}")
    for key in ("vq_steps", "vq_batch_size", "vq_scenes", "steps", "batch_size", "checkpoint_every",
                "log_every"):
        if getattr(cfg, key) < (0 if key in ("vq_steps", "steps") else 1):
            raise ConfigError(f"{key} must be positive, got {getattr(cfg, key)}")
    if cfg.grounding_layer < 0:
        raise ConfigError(f"grounding_layer must be 0 (off) or a layer number, got {cfg.grounding_layer}")
    if cfg.grounding_weight < 0:
        raise ConfigError(f"grounding_weight must be >= 0, got {cfg.grounding_weight}")
    if mc.vq_local and len(mc.vq_channels) != 1:
        raise ConfigError(f"model.vq_channels {mc.vq_channels}: a local tokenizer (model.vq_local) "
                          "has one block, e.g. [128]")
    if mc.image_size % mc.patch_size:
        raise ConfigError(f"model.image_size {mc.image_size} must be a multiple of {mc.patch_size} "
                          "(vq_unshuffle, x 2^(len(vq_channels) - 1) unless vq_local)")
    if mc.hidden_size % mc.num_heads:
        raise ConfigError(f"model.hidden_size {mc.hidden_size} must be a multiple of model.num_heads")
    if any(c % 32 for c in mc.vq_channels):
        raise ConfigError(f"model.vq_channels {mc.vq_channels} must be multiples of 32 (group norm)")


def check_resumable(cfg: PretrainConfig, out: Path) -> None:
    """A resumed run must learn what the first run learnt: same seed, model, data, optimizer."""
    saved_file = out / "config.json"
    if not saved_file.exists():
        return
    saved, now = json.loads(saved_file.read_text()), json.loads(json.dumps(dataclasses.asdict(cfg)))
    free = RESUMABLE_CHANGES | (set() if (out / "checkpoint" / "state.pt").exists() else TRANSFORMER_KEYS)
    for key in sorted(set(saved) | set(now)):
        if key not in free and saved.get(key) != now.get(key):
            raise ConfigError(f"{saved_file}: --resume with a different '{key}' "
                              f"({saved.get(key)!r} before, {now.get(key)!r} now)")


def release_free_memory() -> None:
    """Hand the allocator's free heap pages back to the system (glibc `malloc_trim`).

    Tensors of ever-changing shapes fragment glibc's heap, which then grows by about 1 GB
    every 100 steps though most of it is free; trimming now and then keeps it flat.
    (Pinning the mmap threshold instead also stops the growth, but page-faults every
    activation afresh each step and halves the speed.) A no-op off glibc."""
    import ctypes
    import ctypes.util

    name = ctypes.util.find_library("c")
    try:
        ctypes.CDLL(name).malloc_trim(0)
    except (OSError, AttributeError, TypeError):
        pass


def pretrain(cfg: PretrainConfig, resume: bool = False) -> Path:
    """Run both phases; returns the folder of the final model."""
    validate(cfg)
    out = Path(cfg.out)
    if resume:
        check_resumable(cfg, out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "config.json", dataclasses.asdict(cfg))
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(out / "tensorboard"))
    log_file = (out / "log.jsonl").open("a")

    def log(record: dict[str, Any]) -> None:
        log_file.write(json.dumps(record) + "\n")
        log_file.flush()
        step = record["step"]
        for key, value in record.items():
            if isinstance(value, float) and math.isfinite(value):
                writer.add_scalar(f"{record['phase']}/{key}", value, step)

    try:
        init = None
        if cfg.init:
            # Positions on (if asked) for a model saved without them: they start at zero.
            init = MiniUMM.from_pretrained(cfg.init, **({"image_positions": True}
                                                        if cfg.model.image_positions else {}))
            vq = init.vq
        else:
            vq = train_vq(cfg, out, resume, log)
        figures = tokenizer_figures(vq, (init.config if init else cfg.model).image_size)
        log({"phase": "vq_eval", "step": 0 if init else cfg.vq_steps, **figures})
        tqdm.write(f"image tokenizer on held-out scenes: {figures}")
        model = train_lm(cfg, vq, out, resume, log, init)
        model.save_pretrained(out / "model")
    finally:
        log_file.close()
        writer.close()
    return out / "model"
