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

from seer.data import templates as T
from seer.data.formats import ParsedReprompt, parse_reprompt
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

    def select(self, rows: list[int]) -> Rollout:
        """The completions `rows` (whole groups, to keep groups contiguous)."""
        s = self.samples
        fields = (s.texts, s.token_ids, s.logprobs, s.truncated)
        return Rollout([self.prompts[i] for i in rows], TextSamples(*([f[i] for i in rows] for f in fields)))


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

    def get(self, texts: list[str], seeds: list[int], desc: str | None = None) -> list[Image.Image]:
        """One image per (text, seed); `desc` shows a progress bar over the batches."""
        from tqdm.auto import tqdm

        keys = list(zip(texts, seeds, strict=True))
        missing = list(dict.fromkeys(k for k in keys if k not in self._images))
        # One render per distinct key; an image depends on its text and seed only.
        starts = range(0, len(missing), self.batch_size)
        for k in tqdm(starts, desc=desc, leave=False) if desc else starts:
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


# ---------------------------------------------------------------- reprompting and judging


def reprompt_texts(
    model: UnifiedModel,
    prompts: list[str],
    instructions: list[str],
    *,
    max_new_tokens: int = 48,
    batch_size: int = 32,
    temperature: float = 1.0,
    top_k: int | None = 1,
    generator: torch.Generator | None = None,
) -> list[ParsedReprompt]:
    """The policy's reasoning and reprompt for each (prompt, instruction); greedy by default."""
    questions = [T.reprompt_question(p, i) for p, i in zip(prompts, instructions, strict=True)]
    out: list[ParsedReprompt] = []
    for k in range(0, len(questions), batch_size):
        samples = model.generate_text(
            questions[k : k + batch_size],
            max_new_tokens=max_new_tokens,
            temperature=temperature,
            top_k=top_k,
            generator=generator,
        )
        out += [parse_reprompt(t) for t in samples.texts]
    return out


def judge_p_yes(
    evaluator: UnifiedModel,
    questions: list[str],
    image_pairs: list[list[Image.Image]],
    *,
    max_reasoning_tokens: int = 16,
    batch_size: int = 32,
) -> torch.Tensor:
    """The evaluator's P(Yes) for each question about its two images, read where its own
    answer goes: it writes its reasoning greedily, then P(Yes) is read after
    '<think> reasoning </think> <answer>' (normalised over yes and no)."""
    out = []
    for k in range(0, len(questions), batch_size):
        read = evaluator.reasoned_p_yes(
            questions[k : k + batch_size],
            image_pairs[k : k + batch_size],
            reasoning_prefix=T.THINK_OPEN,
            answer_prefix=_answer_prefix,
            max_new_tokens=max_reasoning_tokens,
            stop=T.ANSWER_OPEN,
        )
        out.append(read.p_yes.float().cpu())
    return torch.cat(out) if out else torch.zeros(0)


def _answer_prefix(thought: str) -> str:
    """What precedes the evaluator's answer: its own reasoning, in tags."""
    return f"{T.THINK_OPEN} {_reasoning(thought)} {T.THINK_CLOSE} {T.ANSWER_OPEN}"


def _reasoning(text: str) -> str:
    """The reasoning part of a completion that started after '<think>' (cut at '</think>')."""
    head = text.split(T.THINK_CLOSE)[0]
    for tag in (T.THINK_OPEN, T.ANSWER_OPEN, T.ANSWER_CLOSE):
        head = head.split(tag)[0]
    return " ".join(head.split())


def sample_seed(seed: int, sample: dict) -> int:
    """The image seed of a VIE sample: every image rendered for it (baseline, reprompted,
    oracle, any method) uses this seed, so images differ only by their text."""
    return hash_seed(seed, *(ord(c) for c in sample["id"]))


def sample_reprompts(model: UnifiedModel, samples: list[dict], *, max_new_tokens: int,
                     batch_size: int = 32, **sampling: Any) -> tuple[list[str], list[ParsedReprompt]]:
    """The model's reprompt of each VIE sample (greedy unless `sampling` passes
    `reprompt_texts` a temperature, top_k and generator), and what it wrote; an unreadable
    output falls back to the sample's baseline text (what the generator gets without one)."""
    parsed = reprompt_texts(model, [s["prompt"] for s in samples], [s["instruction"] for s in samples],
                            max_new_tokens=max_new_tokens, batch_size=batch_size, **sampling)
    texts = [p.reprompt if p.ok else s["baseline"] for p, s in zip(parsed, samples, strict=True)]
    return texts, parsed


def hash_seed(*parts: int) -> int:
    """A 63-bit seed from integers, stable across runs and platforms."""
    value = 0x9E3779B97F4A7C15
    for part in parts:
        value = (value * 0x100000001B3 ^ (part + 0x632BE59BD9B4E019)) & 0x7FFFFFFFFFFFFFFF
    return value
