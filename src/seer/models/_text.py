"""Token-sequence plumbing every backend shares: left padding, cutting sampled rows at the
end of text, and right-aligned completion log-probs."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

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
