"""The one model interface. Every backend (mini, janus, harmon) implements it; nothing
outside `seer.models` looks behind it.

A unified model both reads images and writes them. What the SEER stages need from it:
- `generate_text`: sample completions to user prompts (optionally with one or two images),
  with the sampled ids and their log-probs (GRPO's "old" log-probs);
- `completion_logprobs`: log-probs of given completions, with gradient (the policy loss);
- `generate_images`: text to images, batched, seeded, with classifier-free guidance;
- `p_yes`: P(Yes) of a Yes/No question about two images, read from next-token logits;
- `save_pretrained` / `from_pretrained` in Hugging Face layout;
- `trainable_parameters`, full or LoRA (through `peft`);
- `shard`: the same parameters sharded across processes with FSDP2 (`seer.models.fsdp`).

Prompts are plain user text: each backend wraps them in its own chat template, so the
stages never see a backend's special tokens.
"""

from __future__ import annotations

import abc
import contextlib
import dataclasses
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, ClassVar

import torch
from PIL import Image

if TYPE_CHECKING:
    from seer.models.fsdp import Sharded

ImageList = list[Image.Image]


@dataclasses.dataclass
class TextSamples:
    """Completions sampled for a batch of prompts (one row per prompt)."""

    texts: list[str]
    token_ids: list[torch.Tensor]  # per row: the completion's ids, end-of-text included if reached
    logprobs: list[torch.Tensor]  # per row: log-prob of each sampled id under the sampling policy
    truncated: list[bool]  # per row: stopped by max_new_tokens, not by end of text


@dataclasses.dataclass
class YesNo:
    """Next-token probabilities of the two answers, and P(Yes) normalised over both."""

    p_yes: torch.Tensor  # P(Yes) / (P(Yes) + P(No)), shape (batch,)
    raw_yes: torch.Tensor  # softmax over the whole vocabulary
    raw_no: torch.Tensor


class ModelError(ValueError):
    """A model directory or configuration that cannot be used; the message names what."""


class UnifiedModel(abc.ABC):
    """A unified multimodal model behind the interface the SEER stages use."""

    backend: ClassVar[str]
    _sharded: Sharded | None = None  # set by `shard`

    # ------------------------------------------------------------ understanding, text

    @abc.abstractmethod
    def generate_text(self, prompts: list[str], images: list[ImageList] | None = None, *,
                      max_new_tokens: int = 64, temperature: float = 1.0, top_k: int | None = None,
                      generator: torch.Generator | None = None,
                      prefix: str = "") -> TextSamples:
        """Sample one completion per prompt. `images[i]` are the images of prompt i (0-2).
        `prefix` is forced text the assistant turn starts with (e.g. "<think>")."""

    @abc.abstractmethod
    def completion_logprobs(self, prompts: list[str], completions: list[torch.Tensor],
                            images: list[ImageList] | None = None, prefix: str = "",
                            temperature: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
        """Log-probs of given completion ids, with gradient: (B x T log-probs, B x T mask),
        completions right-aligned. Same `temperature` as `generate_text` gives the same
        log-probs as sampling returned (top-k is for greedy evaluation, not for RL)."""

    @abc.abstractmethod
    def p_yes(self, questions: list[str], images: list[ImageList], prefix: str | list[str] = "") -> YesNo:
        """P(Yes) of each question about its images, from the next-token logits right after
        the assistant turn opens (and after the forced `prefix`, e.g. "<answer>"; a list
        gives each row its own, e.g. the evaluator's own reasoning then "<answer>")."""

    def reasoned_p_yes(self, questions: list[str], images: list[ImageList], *, reasoning_prefix: str,
                       answer_prefix: Callable[[str], str], max_new_tokens: int,
                       stop: str | None = None) -> YesNo:
        """P(Yes) read where the model's own answer goes: it first writes greedily after
        `reasoning_prefix` (e.g. "<think>"), then P(Yes) is read after
        `answer_prefix(what it wrote)` (e.g. "<think> reasoning </think> <answer>").
        `stop` is the text after which nothing more is needed (a backend may stop writing
        there). This default writes, then runs `p_yes`; a backend may share the two passes."""
        thoughts = self.generate_text(questions, images, max_new_tokens=max_new_tokens, top_k=1,
                                      prefix=reasoning_prefix).texts
        return self.p_yes(questions, images, prefix=[answer_prefix(t) for t in thoughts])

    # ------------------------------------------------------------ generation

    @abc.abstractmethod
    def generate_images(self, texts: list[str], *, guidance_scale: float | None = None,
                        temperature: float = 1.0, seed: int | list[int] = 0) -> ImageList:
        """One image per text. Row i draws its noise from `seed + i` (or from `seed[i]` when
        a list is given), so an image depends on its text and its seed, not on what else
        is in the batch."""

    # ------------------------------------------------------------ weights

    @abc.abstractmethod
    def save_pretrained(self, directory: str | Path) -> None:
        """Hugging Face layout (config + safetensors), loadable by `from_pretrained`.
        Once the model is sharded this is collective: every process calls it with the same
        directory; the full weights are gathered and the main process alone writes."""

    @classmethod
    @abc.abstractmethod
    def from_pretrained(cls, directory: str | Path, **options) -> UnifiedModel:
        ...

    @abc.abstractmethod
    def trainable_parameters(self) -> list[torch.nn.Parameter]:
        """Parameters the RL stages update (the language model's; LoRA's when enabled)."""

    @abc.abstractmethod
    def enable_lora(self, r: int = 8, alpha: int = 16, dropout: float = 0.0,
                    target_modules: list[str] | None = None) -> None:
        """Wrap the language model with `peft` LoRA adapters; only they stay trainable."""

    # ------------------------------------------------------------ sharding (FSDP2)

    def fsdp_units(self) -> tuple[list[torch.nn.Module], dict[str, torch.nn.Module]]:
        """What `shard` shards: the decoder layers (one FSDP unit each, in forward order)
        and the modules whose other parameters the root unit holds (by name). The backend
        runs its entry points through `seer.models.fsdp.root_call` / `gathered_call`, so
        that no parameter of the root is used outside the root's forward."""
        raise ModelError(f"the {self.backend} backend cannot be sharded (FSDP)")

    def shard(self, mesh) -> torch.nn.Module:
        """Shard the model over the processes of `mesh` (FSDP2 `fully_shard`): each decoder
        layer, then the root. Call it after `enable_lora` and before building an optimizer
        (`trainable_parameters` then returns the sharded parameters). Returns the root
        module, which holds every trainable parameter (for optimizer state dicts). From
        then on every process must make the same calls (forward passes are collective);
        gradients come out averaged over the processes."""
        from torch.distributed.tensor import DTensor

        from seer.models.fsdp import Sharded

        if self._sharded is not None:
            raise ModelError("the model is sharded already")
        layers, parts = self.fsdp_units()
        self._sharded = Sharded(layers, parts, mesh)
        # A trainable parameter left whole would never have its gradient averaged.
        whole = sum(not isinstance(p, DTensor) for p in self.trainable_parameters())
        if whole:
            raise ModelError(f"{whole} trainable parameters of the {self.backend} model were left unsharded")
        return self._sharded.root

    @property
    def is_sharded(self) -> bool:
        return self._sharded is not None

    def gathered(self) -> contextlib.AbstractContextManager:
        """Within it, a sharded model holds full weights on every process (gathered on
        entry, which every process must reach) and forward passes need no collective, so
        one process may use the model alone (e.g. the main one evaluating). Unsharded:
        nothing happens."""
        return self._sharded.gathered() if self._sharded is not None else contextlib.nullcontext()

    @abc.abstractmethod
    def train(self, mode: bool = True) -> UnifiedModel:
        ...

    def eval(self) -> UnifiedModel:
        return self.train(False)

    @property
    @abc.abstractmethod
    def device(self) -> torch.device:
        ...
