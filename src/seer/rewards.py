"""Rewards: small pure functions over completions, composable by the RL stages.

- `format_reward`: 1 when the whole completion is `<think> ... </think> <answer> ... </answer>`
  and nothing else (the authors' format reward), else 0;
- `accuracy_reward`: 1 when the extracted Yes/No equals the label, case-insensitive; a
  completion with no answer, two answers or anything else in the answer scores 0;
- `endogenous_reward` (RLMT) lives with the stage that renders images; it reads P(Yes).

The tags are configurable (`TagFormat`) so a backend or a user can ask for another format.
"""

from __future__ import annotations

import dataclasses
import re

from seer.data import templates as T


@dataclasses.dataclass(frozen=True)
class TagFormat:
    think_open: str = T.THINK_OPEN
    think_close: str = T.THINK_CLOSE
    answer_open: str = T.ANSWER_OPEN
    answer_close: str = T.ANSWER_CLOSE

    def pattern(self) -> re.Pattern:
        e = re.escape
        return re.compile(
            rf"\s*{e(self.think_open)}(?P<reasoning>.*?){e(self.think_close)}\s*"
            rf"{e(self.answer_open)}(?P<answer>.*?){e(self.answer_close)}\s*",
            re.DOTALL,
        )

    def tags(self) -> tuple[str, ...]:
        return (self.think_open, self.think_close, self.answer_open, self.answer_close)


DEFAULT_FORMAT = TagFormat()


@dataclasses.dataclass(frozen=True)
class Tagged:
    reasoning: str
    answer: str


def parse_tagged(text: str, fmt: TagFormat = DEFAULT_FORMAT) -> Tagged | None:
    """(reasoning, answer) of a well-formed completion; None when the structure is broken:
    a missing or repeated tag, text outside the tags, or tags in the wrong order."""
    match = fmt.pattern().fullmatch(text)
    if match is None:
        return None
    reasoning, answer = match["reasoning"], match["answer"]
    # Non-greedy groups could swallow a second tag pair; a well-formed output has one each.
    if any(tag in reasoning or tag in answer for tag in fmt.tags()):
        return None
    return Tagged(reasoning.strip(), answer.strip())


def yes_no(text: str, fmt: TagFormat = DEFAULT_FORMAT) -> str | None:
    """'yes' or 'no' when the completion is well formed and its answer is exactly one of
    them (case and a final full stop ignored); None otherwise."""
    tagged = parse_tagged(text, fmt)
    if tagged is None:
        return None
    answer = tagged.answer.lower().rstrip(" .")
    return answer if answer in (T.YES, T.NO) else None


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
