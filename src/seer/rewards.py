"""Rewards: small pure functions over completions, composable by the RL stages.

- `format_reward`: 1 when the whole completion is `<think> ... </think> <answer> ... </answer>`
  and nothing else (the authors' format reward), else 0;
- `accuracy_reward`: 1 when the extracted Yes/No equals the label, case-insensitive; a
  completion with no answer, two answers or anything else in the answer scores 0;
- `endogenous_reward` (RLMT) lives with the stage that renders images; it reads P(Yes).

The tags are configurable (`TagFormat`) so a backend or a user can ask for another format.
"""

from __future__ import annotations

import torch

from seer.data.formats import DEFAULT_FORMAT, TagFormat, parse_tagged, yes_no

__all__ = [
    "TagFormat",
    "accuracy_reward",
    "format_reward",
    "order_averaged",
    "parse_tagged",
    "pearson",
    "yes_no",
]


def format_reward(completions: list[str], fmt: TagFormat = DEFAULT_FORMAT) -> list[float]:
    return [float(parse_tagged(c, fmt) is not None) for c in completions]


def accuracy_reward(
    completions: list[str], labels: list[str], fmt: TagFormat = DEFAULT_FORMAT
) -> list[float]:
    if len(completions) != len(labels):
        raise ValueError(f"{len(completions)} completions but {len(labels)} labels")
    return [
        float(yes_no(c, fmt) == label.strip().lower()) for c, label in zip(completions, labels, strict=True)
    ]


# ---------------------------------------------------------------- reprompting policy


def order_averaged(p_policy_first: torch.Tensor, p_policy_second: torch.Tensor) -> torch.Tensor:
    """The endogenous reward with position bias cancelled: P(Yes) that the policy image
    matches better when shown first, and P(No) when shown second, averaged."""
    return (p_policy_first + (1.0 - p_policy_second)) / 2


def pearson(x: torch.Tensor, y: torch.Tensor) -> float:
    """Correlation of two reward signals (the reward-hacking watch); 0 when one is constant."""
    x, y = x.double() - x.double().mean(), y.double() - y.double().mean()
    denom = float(x.norm() * y.norm())
    return float((x * y).sum()) / denom if denom > 0 else 0.0
