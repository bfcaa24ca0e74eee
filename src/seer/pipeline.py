"""Endogenous reprompting at inference: the model reads a prompt and an instruction, writes
its reasoning and a reprompt, and generates from the reprompt; the baseline image (from
"prompt, instruction") is rendered with the same seed beside it."""

from __future__ import annotations

import dataclasses
from pathlib import Path

from PIL import Image

from seer.data import templates as T
from seer.io import atomic_save_image, atomic_write_json
from seer.models.interface import UnifiedModel
from seer.rollout import reprompt_texts


@dataclasses.dataclass
class Result:
    prompt: str
    instruction: str | None
    seed: int
    baseline: str  # the text the plain path renders
    reasoning: str | None = None
    reprompt: str | None = None
    error: str | None = None  # why the policy's output could not be read (then it falls back)
    baseline_image: Image.Image | None = None
    reprompted_image: Image.Image | None = None

    def to_json(self) -> dict:
        keys = ("prompt", "instruction", "seed", "baseline", "reasoning", "reprompt", "error")
        return {k: getattr(self, k) for k in keys}


def run(
    model: UnifiedModel,
    prompts: list[str],
    instructions: list[str | None],
    seeds: list[int],
    *,
    reprompt: bool = True,
    guidance_scale: float | None = None,
    max_new_tokens: int = 48,
) -> list[Result]:
    """Baseline images always; reprompts and reprompted images unless `reprompt` is off."""
    baselines = [T.baseline_text(p, i) if i else p for p, i in zip(prompts, instructions, strict=True)]
    results = [Result(p, i, s, b) for p, i, s, b in zip(prompts, instructions, seeds, baselines, strict=True)]
    images = model.generate_images(baselines, guidance_scale=guidance_scale, seed=seeds)
    for r, image in zip(results, images, strict=True):
        r.baseline_image = image
    if not reprompt:
        return results
    parsed = reprompt_texts(
        model, prompts, [i or T.NO_INSTRUCTION for i in instructions], max_new_tokens=max_new_tokens
    )
    texts = []
    for r, p in zip(results, parsed, strict=True):
        r.reasoning, r.reprompt, r.error = p.reasoning, p.reprompt, p.error
        texts.append(p.reprompt if p.ok else r.baseline)
    for r, image in zip(
        results, model.generate_images(texts, guidance_scale=guidance_scale, seed=seeds), strict=True
    ):
        r.reprompted_image = image
    return results


def side_by_side(result: Result, scale: int = 4) -> Image.Image:
    """The baseline and the reprompted image, labelled with the texts they came from."""
    from seer.world.render import captioned_grid

    images = [result.baseline_image]
    captions = [f"baseline: {result.baseline}"]
    if result.reprompted_image is not None:
        images.append(result.reprompted_image)
        captions.append(f"reprompted: {result.reprompt if result.error is None else result.baseline}")
    return captioned_grid(images, captions, cols=len(images), scale=scale)


def write_dir(result: Result, out_dir: str | Path, scale: int = 4) -> None:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    atomic_save_image(result.baseline_image, out_dir / "baseline.png")
    if result.reprompted_image is not None:
        atomic_save_image(result.reprompted_image, out_dir / "reprompted.png")
        atomic_save_image(side_by_side(result, scale), out_dir / "side_by_side.png")
    atomic_write_json(out_dir / "result.json", result.to_json())
