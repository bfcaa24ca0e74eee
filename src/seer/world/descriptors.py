"""Literal descriptors: scene <-> text, both directions.

`describe` writes the canonical form ("a large red circle on the left, on a blue
background, with a moon") or one of the paraphrase templates. `parse` reads any of them
back; it is keyword-based, so word order inside an object phrase does not matter, and
every word must be known: an unknown word, colour or shape fails with an error naming it.
"""

from __future__ import annotations

import random
import re

from seer.world.scene import (
    BACKGROUNDS,
    GLOBAL_DEFAULTS,
    OBJECT_COLORS,
    POSITIONS,
    SHAPES,
    SIZES,
    Obj,
    Scene,
    SceneError,
)


class DescriptorError(ValueError):
    """Text that is not a literal descriptor of the shapes world."""


# ---------------------------------------------------------------- scene -> text

_POSITION_PHRASES = {
    "center": "in the center",
    "left": "on the left",
    "right": "on the right",
    "top": "at the top",
    "bottom": "at the bottom",
}

# Phrases for global attributes: index 0 is canonical, the rest are paraphrases.
GLOBAL_PHRASES: dict[str, dict[str, list[str]]] = {
    "sky": {
        "sun": ["with a sun", "under a shining sun", "with the sun in the sky"],
        "moon": ["with a moon", "under a moon", "with the moon in the sky"],
    },
    "weather": {
        "rain": ["with rain", "in the rain", "with rain falling"],
        "snow": ["with snow", "in the snow", "with snowflakes falling"],
    },
    "decoration": {
        "stars": ["with stars", "surrounded by stars", "with stars scattered around"],
        "confetti": ["with confetti", "covered in confetti", "with confetti scattered around"],
        "hearts": ["with hearts", "surrounded by hearts", "with hearts scattered around"],
    },
    "style": {
        "outline": ["in an outline style", "drawn as outlines", "in outline"],
        "pixelated": ["in a pixelated style", "as pixel art", "drawn in pixels"],
    },
}
_BACKGROUND_TEMPLATES = [
    "{objects}, on a {bg} background",
    "{objects}, against a {bg} background",
    "a {bg} background with {objects}",
]
_OBJECT_TEMPLATES = [
    "a {size} {color} {shape} {where}",
    "{where}, a {size} {color} {shape}",
]


def position_phrase(position: str) -> str:
    if position in _POSITION_PHRASES:
        return _POSITION_PHRASES[position]
    return f"at the {position}"


def _join(parts: list[str]) -> str:
    if len(parts) == 1:
        return parts[0]
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def describe_objects(objects: tuple[Obj, ...], rng: random.Random | None = None) -> str:
    phrases = []
    for o in objects:
        template = _OBJECT_TEMPLATES[0] if rng is None else rng.choice(_OBJECT_TEMPLATES)
        phrases.append(template.format(size=o.size, color=o.color, shape=o.shape,
                                       where=position_phrase(o.position)))
    return _join(phrases)


def describe(scene: Scene, rng: random.Random | None = None) -> str:
    """Canonical descriptor, or a random paraphrase when `rng` is given."""
    template = _BACKGROUND_TEMPLATES[0] if rng is None else rng.choice(_BACKGROUND_TEMPLATES)
    text = template.format(objects=describe_objects(scene.objects, rng), bg=scene.background)
    for field, phrases in GLOBAL_PHRASES.items():
        value = getattr(scene, field)
        if value != GLOBAL_DEFAULTS[field]:
            options = phrases[value]
            text += ", " + (options[0] if rng is None else rng.choice(options))
    return text


# ---------------------------------------------------------------- text -> scene

_GLOBAL_WORDS = {
    "sun": ("sky", "sun"), "moon": ("sky", "moon"),
    "rain": ("weather", "rain"), "raining": ("weather", "rain"),
    "snow": ("weather", "snow"), "snowing": ("weather", "snow"),
    "snowflakes": ("weather", "snow"),
    "stars": ("decoration", "stars"), "confetti": ("decoration", "confetti"),
    "hearts": ("decoration", "hearts"),
    "outline": ("style", "outline"), "outlines": ("style", "outline"),
    "outlined": ("style", "outline"),
    "pixelated": ("style", "pixelated"), "pixel": ("style", "pixelated"),
    "pixels": ("style", "pixelated"),
}
_POSITION_WORDS = {"top", "bottom", "left", "right", "center", "middle"}
_FILLER = {
    "a", "an", "one", "the", "on", "at", "in", "of", "with", "and", "is", "are", "under",
    "against", "shining", "sky", "style", "drawn", "as", "art", "covered", "surrounded",
    "by", "falling", "scattered", "around", "there", "it", "its", "background",
}
# Words a user may plausibly try; named in the error so the fix is obvious.
_OTHER_COLORS = {"teal", "cyan", "magenta", "violet", "gold", "silver", "beige", "maroon",
                 "olive", "turquoise", "grey", "indigo", "lime", "crimson"}
_OTHER_SHAPES = {"star", "heart", "oval", "ellipse", "rectangle", "hexagon", "pentagon",
                 "diamond", "rhombus", "octagon", "circles", "squares", "triangles",
                 "crosses", "plus", "line", "arrow"}
_WORD = re.compile(r"[a-z]+")


def parse(text: str) -> Scene:
    """Read a literal descriptor back into a Scene; DescriptorError names what is wrong."""
    if not text or not text.strip():
        raise DescriptorError("empty descriptor: expected e.g. "
                              "'a large red circle on the left, on a blue background'")
    lowered = text.lower()
    for ch in lowered:
        if not (ch.isalpha() or ch.isspace() or ch in ",;:.'-"):
            raise DescriptorError(f"unexpected character {ch!r} in descriptor {text!r}")
    tokens = _WORD.findall(lowered.replace("-", " "))
    objects: list[dict[str, str]] = []
    background: str | None = None
    globals_: dict[str, str] = {}
    current: dict[str, str] | None = None
    pending_where: list[str] = []  # position words seen before their object ("on the left, a ...")

    def start_object() -> dict[str, str]:
        nonlocal current, pending_where
        current = {}
        objects.append(current)
        if pending_where:
            current["position"] = _position(pending_where, text)
            pending_where = []
        return current

    i = 0
    while i < len(tokens):
        word = tokens[i]
        nxt = tokens[i + 1] if i + 1 < len(tokens) else None
        if word in OBJECT_COLORS or word in BACKGROUNDS:
            if nxt == "background" or (i > 0 and tokens[i - 1] == "background"):
                _set_once(globals_, "background", word, text)
                background = word
            elif word not in OBJECT_COLORS:
                raise DescriptorError(f"'{word}' is a background colour, not an object colour "
                                      f"(objects: {', '.join(OBJECT_COLORS)}) in {text!r}")
            else:
                obj = current if current is not None and "color" not in current else start_object()
                obj["color"] = word
        elif word in SIZES:
            obj = current if current is not None and "size" not in current else start_object()
            obj["size"] = word
        elif word in SHAPES:
            obj = current if current is not None and "shape" not in current else start_object()
            obj["shape"] = word
        elif word in _POSITION_WORDS:
            run = [word]
            while i + 1 < len(tokens) and tokens[i + 1] in _POSITION_WORDS:
                i += 1
                run.append(tokens[i])
            if current is not None and "shape" in current and "position" not in current:
                current["position"] = _position(run, text)
                current = None  # a trailing position ends the object's phrase
            else:
                pending_where = run
                current = None
        elif word in _GLOBAL_WORDS:
            field, value = _GLOBAL_WORDS[word]
            _set_once(globals_, field, value, text)
        elif word in _FILLER:
            pass
        elif word in _OTHER_COLORS:
            raise DescriptorError(f"unknown color '{word}' in {text!r} "
                                  f"(known: {', '.join(OBJECT_COLORS + ('white', 'gray', 'black', 'navy'))})")
        elif word in _OTHER_SHAPES:
            raise DescriptorError(f"unknown shape '{word}' in {text!r} (known: {', '.join(SHAPES)})")
        else:
            raise DescriptorError(f"unknown word '{word}' in descriptor {text!r}")
        i += 1

    if pending_where:
        raise DescriptorError(f"position '{' '.join(pending_where)}' belongs to no object in {text!r}")
    if not objects:
        raise DescriptorError(f"no object (size, colour and shape) in {text!r}")
    if background is None:
        raise DescriptorError(f"no background colour ('on a <colour> background') in {text!r}")
    built = []
    for obj in objects:
        missing = [k for k in ("size", "color", "shape", "position") if k not in obj]
        if missing:
            desc = " ".join(obj[k] for k in ("size", "color", "shape") if k in obj)
            raise DescriptorError(f"object '{desc}' has no {' or '.join(missing)} in {text!r}")
        built.append(Obj(obj["shape"], obj["color"], obj["size"], obj["position"]))
    globals_.pop("background")
    scene = Scene(tuple(built), background, **globals_)
    try:
        return scene.validate()
    except SceneError as err:
        raise DescriptorError(f"{err} in {text!r}") from None


def _set_once(store: dict[str, str], field: str, value: str, text: str) -> None:
    if field in store and store[field] != value:
        raise DescriptorError(f"two values for {field}: '{store[field]}' and '{value}' in {text!r}")
    store[field] = value


def _position(words: list[str], text: str) -> str:
    vertical = [w for w in words if w in ("top", "bottom")]
    horizontal = [w for w in words if w in ("left", "right")]
    center = [w for w in words if w in ("center", "middle")]
    if len(vertical) > 1 or len(horizontal) > 1 or (center and (vertical or horizontal)):
        raise DescriptorError(f"unclear position '{' '.join(words)}' in {text!r}")
    if center:
        return "center"
    name = " ".join(vertical + horizontal)
    assert name in POSITIONS
    return name
