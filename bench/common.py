"""Shared helpers for the benchmarks: machine description and table printing."""

from __future__ import annotations

import os
import platform


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass
    import torch

    return (f"{cpu}; {os.cpu_count()} cores; Python {platform.python_version()}; "
            f"torch {torch.__version__}, {torch.get_num_threads()} threads")


def table(headers: list[str], rows: list[list]) -> str:
    """A GitHub-flavoured markdown table."""
    cells = [[str(c) for c in row] for row in rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    line = lambda r: "| " + " | ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)) + " |"  # noqa: E731
    return "\n".join([line(headers), "|" + "|".join("-" * (w + 2) for w in widths) + "|",
                      *(line(r) for r in cells)])


def supervised_yes_no_step(model, optimizer, params, prompts: list[str], pictures: list, labels: list[str],
                           step: int, prefix: str = "") -> float:
    """One supervised step on yes/no questions; returns the loss.

    Each question goes in twice, with "yes" and with "no" as the completion (one shared
    prefill), and the two answers' log-probs compete in a softmax, as P(yes) reads them."""
    import torch
    import torch.nn.functional as F

    model.train()
    answers = [torch.tensor([model.yes_id]), torch.tensor([model.no_id])]
    logp, mask = model.completion_logprobs([p for p in prompts for _ in range(2)], answers * len(prompts),
                                           [x for x in pictures for _ in range(2)], prefix=prefix)
    logits = (logp * mask).sum(1).view(-1, 2)
    loss = F.cross_entropy(logits, torch.tensor([0 if label == "yes" else 1 for label in labels]))
    if not torch.isfinite(loss):
        raise FloatingPointError(f"step {step}: the loss is {loss.item()}")
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(params, 1.0)
    optimizer.step()
    return loss.item()
