"""Reprompting baselines that do not use the model: what each writes for (prompt, instruction).

- plain: the prompt alone (no reprompting, the instruction dropped);
- baseline: "prompt, instruction" (the paper's Concat);
- rule_based: a keyword rewriter, as a prompt engineer would script it without knowing
  what an instruction means: every word of the instruction that names a literal world
  value ("sun", "snow", "red", "pixelated", ...) is turned into its canonical descriptor
  phrase and appended to the prompt; every other word is dropped. It handles "let the sun
  shine on it" and fails on "make it look like night", which is the point;
- oracle: the VIE elaboration (an upper bound: what a perfect reprompter writes).
"""

from __future__ import annotations

from seer.data import templates as T
from seer.world.descriptors import GLOBAL_PHRASES
from seer.world.scene import BACKGROUNDS, OBJECT_COLORS

# Word -> phrase for literal values a keyword rule can spot. Variants ("snowy", "rainy")
# are the obvious ones a rule writer adds.
_VALUE_WORDS = {
    "sun": ("sky", "sun"),
    "sunny": ("sky", "sun"),
    "moon": ("sky", "moon"),
    "rain": ("weather", "rain"),
    "rainy": ("weather", "rain"),
    "snow": ("weather", "snow"),
    "snowy": ("weather", "snow"),
    "stars": ("decoration", "stars"),
    "confetti": ("decoration", "confetti"),
    "hearts": ("decoration", "hearts"),
    "outline": ("style", "outline"),
    "outlined": ("style", "outline"),
    "pixelated": ("style", "pixelated"),
    "pixel": ("style", "pixelated"),
    "pixels": ("style", "pixelated"),
}


def rule_based(prompt: str, instruction: str) -> str:
    words = instruction.lower().replace(",", " ").split()
    phrases: list[str] = []
    for word in words:
        if word in _VALUE_WORDS:
            field, value = _VALUE_WORDS[word]
            phrase = GLOBAL_PHRASES[field][value][0]
            if phrase not in phrases:
                phrases.append(phrase)
    background = next((w for w in words if w in BACKGROUNDS and w not in OBJECT_COLORS), None)
    text = prompt
    if background and "background" in words:
        text = _replace_background(text, background)
    return ", ".join([text, *phrases]) if phrases else text


def _replace_background(text: str, background: str) -> str:
    import re

    return re.sub(r"on an? \w+ background", f"on a {background} background", text)


def texts_for(method: str, samples: list[dict]) -> list[str]:
    if method == "plain":
        return [s["prompt"] for s in samples]
    if method == "baseline":
        return [T.baseline_text(s["prompt"], s["instruction"]) for s in samples]
    if method == "rule_based":
        return [rule_based(s["prompt"], s["instruction"]) for s in samples]
    if method == "oracle":
        return [s["elaboration"] for s in samples]
    raise ValueError(f"unknown baseline '{method}' (expected plain, baseline, rule_based or oracle)")
