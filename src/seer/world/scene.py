"""Scenes of the shapes world: the vocabulary, the scene record, and random sampling.

A scene is a background colour, one to three objects on a 3x3 grid of positions, and
global attributes (sky mark, weather, decoration, drawing style) that abstract
instructions can change. Everything is a plain string so scenes serialise to JSON.
"""

from __future__ import annotations

import dataclasses
import random
from typing import Any

# Named colours and their RGB values. Object colours and background colours are
# disjoint enough that the analyzer can tell an object from the sky it sits on.
COLORS: dict[str, tuple[int, int, int]] = {
    "red": (215, 38, 38),
    "orange": (245, 135, 20),
    "yellow": (240, 215, 30),
    "green": (40, 160, 60),
    "blue": (40, 85, 215),
    "purple": (135, 55, 185),
    "pink": (240, 120, 185),
    "brown": (125, 75, 35),
    "white": (248, 248, 248),
    "gray": (140, 140, 140),
    "black": (12, 12, 16),
    "navy": (22, 30, 85),
}
# Colour of rain streaks only; no object or background may use it.
RAIN_RGB = (150, 200, 240)

OBJECT_COLORS = ("red", "orange", "yellow", "green", "blue", "purple", "pink", "brown")
BACKGROUNDS = ("white", "gray", "blue", "green", "black", "navy")
DARK_BACKGROUNDS = ("black", "navy")
SHAPES = ("circle", "square", "triangle", "cross")
SIZES = ("small", "large")
POSITIONS = (
    "top left", "top", "top right",
    "left", "center", "right",
    "bottom left", "bottom", "bottom right",
)
SKIES = ("none", "sun", "moon")
WEATHERS = ("clear", "rain", "snow")
DECORATIONS = ("none", "stars", "confetti", "hearts")
STYLES = ("plain", "outline", "pixelated")

# Which scene field each global value belongs to (values are unique across fields).
GLOBAL_FIELDS = {"sky": SKIES, "weather": WEATHERS, "decoration": DECORATIONS, "style": STYLES}
GLOBAL_DEFAULTS = {"sky": "none", "weather": "clear", "decoration": "none", "style": "plain"}
MAX_OBJECTS = 3


class SceneError(ValueError):
    """A scene that breaks the world's rules (unknown value, clash, too many objects)."""


@dataclasses.dataclass(frozen=True, order=True)
class Obj:
    shape: str
    color: str
    size: str
    position: str

    def attributes(self) -> dict[str, str]:
        return dataclasses.asdict(self)


@dataclasses.dataclass(frozen=True)
class Scene:
    objects: tuple[Obj, ...]
    background: str
    sky: str = "none"
    weather: str = "clear"
    decoration: str = "none"
    style: str = "plain"

    def __post_init__(self) -> None:
        # Objects are kept in grid order so equal scenes compare equal.
        ordered = tuple(sorted(self.objects, key=lambda o: POSITIONS.index(o.position)
                               if o.position in POSITIONS else -1))
        object.__setattr__(self, "objects", ordered)

    def replace(self, **changes: Any) -> Scene:
        return dataclasses.replace(self, **changes)

    def globals(self) -> dict[str, str]:
        return {name: getattr(self, name) for name in GLOBAL_FIELDS}

    def to_dict(self) -> dict[str, Any]:
        return {
            "objects": [o.attributes() for o in self.objects],
            "background": self.background,
            **self.globals(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Scene:
        objects = tuple(Obj(**o) for o in data["objects"])
        return cls(objects=objects, background=data["background"],
                   **{k: data.get(k, GLOBAL_DEFAULTS[k]) for k in GLOBAL_FIELDS})

    def validate(self) -> Scene:
        """Raise SceneError naming the first field that breaks the world's rules."""
        if not 1 <= len(self.objects) <= MAX_OBJECTS:
            raise SceneError(f"a scene has 1-{MAX_OBJECTS} objects, got {len(self.objects)}")
        _check("background", self.background, BACKGROUNDS)
        for name, allowed in GLOBAL_FIELDS.items():
            _check(name, getattr(self, name), allowed)
        seen: set[str] = set()
        for obj in self.objects:
            _check("shape", obj.shape, SHAPES)
            _check("color", obj.color, OBJECT_COLORS)
            _check("size", obj.size, SIZES)
            _check("position", obj.position, POSITIONS)
            if obj.position in seen:
                raise SceneError(f"two objects at position '{obj.position}'")
            seen.add(obj.position)
            if obj.color == self.background:
                raise SceneError(f"a {obj.color} object on a {obj.color} background is invisible")
        if self.background == "white" and (self.weather == "snow" or self.sky == "moon"):
            raise SceneError("white snow or a white moon is invisible on a white background")
        return self


def _check(field: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise SceneError(f"unknown {field} '{value}' (expected one of: {', '.join(allowed)})")


def sample_scene(rng: random.Random, plain: bool = False, n_objects: int | None = None) -> Scene:
    """A uniformly random valid scene; `plain` leaves every global at its default."""
    background = rng.choice(BACKGROUNDS)
    n = n_objects if n_objects is not None else rng.randint(1, MAX_OBJECTS)
    positions = rng.sample(POSITIONS, n)
    colors = [c for c in OBJECT_COLORS if c != background]
    objects = tuple(
        Obj(rng.choice(SHAPES), rng.choice(colors), rng.choice(SIZES), p) for p in positions
    )
    if plain:
        return Scene(objects, background).validate()
    while True:
        scene = Scene(objects, background, sky=rng.choice(SKIES), weather=rng.choice(WEATHERS),
                      decoration=rng.choice(DECORATIONS), style=rng.choice(STYLES))
        try:
            return scene.validate()
        except SceneError:
            continue
