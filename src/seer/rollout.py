"""Rollouts: G sampled completions per prompt, and images rendered from texts, batched.

What a group shares is computed once: the prompt's images are encoded with the prompt,
and `ImageCache` renders each distinct (text, seed) once, so the reference image of an
RLMT prompt costs one render per prompt, not one per completion.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import torch
from PIL import Image

from seer.models.interface import TextSamples, UnifiedModel


@dataclasses.dataclass
class Prompt:
    """One RL prompt: user text, its images (0-2) and whatever the reward needs."""

    text: str
    images: list[Image.Image] = dataclasses.field(default_factory=list)
    data: dict[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass
class Rollout:
    prompts: list[Prompt]  # one per completion: each prompt repeated G times, groups contiguous
    samples: TextSamples

    @property
    def completions(self) -> list[str]:
        return self.samples.texts


def sample_groups(
    model: UnifiedModel,
    prompts: list[Prompt],
    num_generations: int,
    *,
    max_new_tokens: int,
    temperature: float = 1.0,
    top_k: int | None = None,
    generator: torch.Generator | None = None,
    prefix: str = "",
    batch_size: int = 64,
) -> Rollout:
    """`num_generations` completions of every prompt, rows grouped by prompt."""
    rows = [p for p in prompts for _ in range(num_generations)]
    texts, ids, logps, truncated = [], [], [], []
    for k in range(0, len(rows), batch_size):
        chunk = rows[k : k + batch_size]
        images = [p.images for p in chunk] if any(p.images for p in chunk) else None
        out = model.generate_text(
            [p.text for p in chunk],
            images,
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            generator=generator,
            prefix=prefix,
        )
        texts += out.texts
        ids += out.token_ids
        logps += out.logprobs
        truncated += out.truncated
    return Rollout(rows, TextSamples(texts, ids, logps, truncated))


class ImageCache:
    """Images rendered from text, each distinct (text, seed) once; counts real renders."""

    def __init__(self, model: UnifiedModel, guidance_scale: float | None = None, batch_size: int = 32):
        self.model, self.guidance_scale, self.batch_size = model, guidance_scale, batch_size
        self._images: dict[tuple[str, int], Image.Image] = {}
        self.renders = 0

    def get(self, texts: list[str], seeds: list[int]) -> list[Image.Image]:
        keys = list(zip(texts, seeds, strict=True))
        missing = list(dict.fromkeys(k for k in keys if k not in self._images))
        # One render per distinct key; an image depends on its text and seed only.
        for k in range(0, len(missing), self.batch_size):
            chunk = missing[k : k + self.batch_size]
            for key, image in zip(chunk, self._render(chunk), strict=True):
                self._images[key] = image
        return [self._images[k] for k in keys]

    def _render(self, keys: list[tuple[str, int]]) -> list[Image.Image]:
        self.renders += len(keys)
        return self.model.generate_images(
            [t for t, _ in keys], guidance_scale=self.guidance_scale, seed=[s for _, s in keys]
        )

    def clear(self) -> None:
        self._images.clear()
