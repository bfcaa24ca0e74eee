"""How answers look and how they are read back: the tagged format of the evaluator and
of the reprompting policy (reasoning in <think> </think>, then the answer or the reprompt
in <answer> </answer>; tags configurable), and its parsers. Pure functions on strings.
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


@dataclasses.dataclass(frozen=True)
class ParsedReprompt:
    """The policy's output: its reasoning and its reprompt, or why it could not be read."""

    reasoning: str
    reprompt: str
    error: str | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


def parse_reprompt(text: str, fmt: TagFormat = DEFAULT_FORMAT) -> ParsedReprompt:
    """(reasoning, reprompt) of a policy completion, or a failure that says what is wrong."""
    tagged = parse_tagged(text, fmt)
    if tagged is not None:
        if not tagged.answer:
            return ParsedReprompt(tagged.reasoning, "", "the reprompt is empty")
        return ParsedReprompt(tagged.reasoning, tagged.answer)
    for tag in fmt.tags():
        count = text.count(tag)
        if count != 1:
            return ParsedReprompt(
                "", "", f"{'no' if count == 0 else count} '{tag}' tag{'s' if count else ''}"
            )
    return ParsedReprompt("", "", "tags out of order or text outside them")
