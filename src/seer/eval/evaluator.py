"""Evaluator accuracy on held-out image pairs: overall, per question kind, per image order.

The evaluator answers greedily in its format (reasoning, then yes/no in tags); an answer
that does not parse counts as wrong. Position bias is the gap between the accuracy with
the positive image first (label yes) and with it second (label no): an evaluator that
prefers one answer or one position shows a large gap.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
from PIL import Image
from tqdm.auto import tqdm

from seer.data.formats import DEFAULT_FORMAT, TagFormat, parse_tagged, yes_no
from seer.models.interface import UnifiedModel


def answer_items(
    model: UnifiedModel,
    questions: list[str],
    images: list[list[Image.Image]],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 24,
    fmt: TagFormat = DEFAULT_FORMAT,
    desc: str = "evaluator",
) -> list[str]:
    """Greedy completions of the evaluator for each (question, images)."""
    out: list[str] = []
    for k in tqdm(range(0, len(questions), batch_size), desc=desc, leave=False):
        samples = model.generate_text(
            questions[k : k + batch_size], images[k : k + batch_size], max_new_tokens=max_new_tokens, top_k=1
        )
        out += samples.texts
    return out


def accuracy_table(
    items: list[dict], completions: list[str], fmt: TagFormat = DEFAULT_FORMAT
) -> dict[str, float]:
    """Accuracy overall, per `kind`, per `order`, the position-bias gap, and the share of
    completions in the right format. Items need 'label', 'kind' and 'order'."""
    if len(items) != len(completions):
        raise ValueError(f"{len(items)} items but {len(completions)} completions")
    if not items:
        raise ValueError("no items to evaluate")
    right = [yes_no(c, fmt) == item["label"] for item, c in zip(items, completions, strict=True)]
    groups: dict[str, list[bool]] = defaultdict(list)
    for item, ok in zip(items, right, strict=True):
        groups[f"kind/{item['kind']}"].append(ok)
        groups[f"order/{item['order']}"].append(ok)
    table = {
        "accuracy": float(np.mean(right)),
        "n": len(items),
        "format": float(np.mean([parse_tagged(c, fmt) is not None for c in completions])),
        "says_yes": float(np.mean([yes_no(c, fmt) == "yes" for c in completions])),
    }
    table |= {f"accuracy/{k}": float(np.mean(v)) for k, v in sorted(groups.items())}
    first, second = groups.get("order/positive_first"), groups.get("order/negative_first")
    if first and second:
        table["position_bias_gap"] = abs(float(np.mean(first)) - float(np.mean(second)))
    return table


def evaluate_items(
    model: UnifiedModel,
    items: list[dict],
    open_images: Callable[[dict], list[Image.Image]],
    *,
    batch_size: int = 32,
    max_new_tokens: int = 24,
    fmt: TagFormat = DEFAULT_FORMAT,
    desc: str = "evaluator",
) -> dict[str, float]:
    completions = answer_items(
        model,
        [i["question"] for i in items],
        [open_images(i) for i in items],
        batch_size=batch_size,
        max_new_tokens=max_new_tokens,
        fmt=fmt,
        desc=desc,
    )
    return accuracy_table(items, completions, fmt)
