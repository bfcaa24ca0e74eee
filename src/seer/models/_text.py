"""Token-sequence plumbing every backend shares: left padding, cutting sampled rows at the
end of text, and right-aligned completion log-probs."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from transformers.cache_utils import DynamicLayer

from seer.models.interface import TextSamples


def left_pad(rows: list[list[int]], pad_id: int, device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Rows of ids, left-padded to one width: (ids, attention mask) on `device`."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, width - len(r):] = torch.tensor(r, dtype=torch.long)
        mask[i, width - len(r):] = 1
    return ids.to(device), mask.to(device)


def samples_at_eos(tokens: torch.Tensor, logps: torch.Tensor, eos_id: int,
                   decode: Callable[[torch.Tensor], str]) -> TextSamples:
    """Sampled B x T ids and their log-probs, each row cut after its first end of text."""
    texts, token_ids, logprobs, truncated = [], [], [], []
    for i in range(tokens.shape[0]):
        row = tokens[i]
        ends = (row == eos_id).nonzero()
        length = int(ends[0]) + 1 if len(ends) else len(row)
        token_ids.append(row[:length])
        logprobs.append(logps[i, :length])
        truncated.append(not len(ends))
        texts.append(decode(row[:length]))
    return TextSamples(texts, token_ids, logprobs, truncated)


def completion_logps(logits: torch.Tensor, ids: torch.Tensor, completions: list[torch.Tensor],
                     temperature: float) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probs of the completions that end each row of `ids` (B x width, right-aligned:
    row i's tokens are its last len(c_i) positions) from the logits of the last width + 1
    positions, at `temperature`; and the mask of real completion tokens."""
    width = max(len(c) for c in completions)
    logits = logits[:, :-1].float() / temperature  # position t predicts token t + 1
    targets = ids[:, -width:]
    mask = torch.zeros_like(targets, dtype=torch.bool)
    for i, c in enumerate(completions):
        if len(c):
            mask[i, width - len(c):] = True
    safe = targets.masked_fill(~mask, 0)  # prompt ids under the mask may be placeholders (< 0)
    logp = F.log_softmax(logits, dim=-1).gather(2, safe[..., None]).squeeze(2)
    return logp * mask, mask


def shared_heads(heads: list[list[int]]) -> tuple[list[list[int]], torch.Tensor]:
    """The distinct rows of `heads` (in first-seen order) and, per row, the index of its
    distinct row: a GRPO group repeats one prompt G times, so its prefix is run once."""
    first: dict[tuple[int, ...], int] = {}
    index = [first.setdefault(tuple(h), len(first)) for h in heads]
    return [list(h) for h in first], torch.tensor(index, dtype=torch.long)


def right_pad(rows: list[torch.Tensor], pad_id: int,
              device: torch.device) -> tuple[torch.Tensor, torch.Tensor]:
    """Completions, left-aligned and right-padded to one width: (ids, attention mask)."""
    width = max(len(r) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, r in enumerate(rows):
        ids[i, : len(r)] = torch.as_tensor(r, dtype=torch.long)
        mask[i, : len(r)] = 1
    return ids.to(device), mask.to(device)


def right_align(values: torch.Tensor, lengths: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-aligned B x width values moved to the end of each row (the layout of
    `completion_logps`); and the mask of real positions."""
    width = values.shape[1]
    lengths_t = torch.tensor(lengths, device=values.device)[:, None]
    cols = torch.arange(width, device=values.device)[None, :]
    shift = width - lengths_t
    mask = cols >= shift
    source = (cols - shift).clamp(min=0)
    return values.gather(1, source) * mask, mask


class ReservedLayer(DynamicLayer):
    """A KV-cache layer with room reserved for the tokens still to come: each new token is
    written in place, where the stock layer copies the whole cache (`torch.cat`) at every
    step, which was 40% of the time to draw an image's 256 codes. Decoding only (no
    gradient flows through in-place writes)."""

    def __init__(self, keys: torch.Tensor, values: torch.Tensor, room: int):
        super().__init__()
        batch, heads, length, dim = keys.shape
        self._keys = keys.new_empty(batch, heads, length + room, dim)
        self._values = values.new_empty(batch, heads, length + room, values.shape[-1])
        self._keys[:, :, :length], self._values[:, :, :length] = keys, values
        self.length, self.device, self.is_initialized = length, keys.device, True
        self.keys, self.values = self._keys[:, :, :length], self._values[:, :, :length]

    def update(self, key_states: torch.Tensor, value_states: torch.Tensor, *args, **kwargs):
        end = self.length + key_states.shape[-2]
        if end > self._keys.shape[-2]:  # out of room: carry on as the stock layer does
            self._keys = torch.cat([self.keys, key_states], dim=-2)
            self._values = torch.cat([self.values, value_states], dim=-2)
        else:
            self._keys[:, :, self.length:end] = key_states
            self._values[:, :, self.length:end] = value_states
        self.length = end
        self.keys, self.values = self._keys[:, :, :end], self._values[:, :, :end]
        return self.keys, self.values


def reserve(cache, room: int):
    """Give every layer of a prefilled `DynamicCache` room for `room` more tokens."""
    cache.layers = [ReservedLayer(layer.keys, layer.values, room) for layer in cache.layers]
    return cache
