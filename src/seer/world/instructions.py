"""Abstract instructions: loaded from instructions.yaml, checked, applied, and scored.

An instruction is a text plus a rule: a list of clauses over scene attributes. The rule
gives both the ground-truth check (`satisfaction`: the fraction of clauses a scene meets)
and the oracle elaboration (`apply`: the smallest change of a scene that meets them all).
"""

from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import random
from pathlib import Path
from typing import Any

import yaml

from seer.world.descriptors import describe
from seer.world.scene import (
    BACKGROUNDS,
    GLOBAL_FIELDS,
    MAX_OBJECTS,
    OBJECT_COLORS,
    POSITIONS,
    SIZES,
    Scene,
    sample_scene,
)

SCENE_FIELDS: dict[str, tuple[str, ...]] = {"background": BACKGROUNDS, **GLOBAL_FIELDS}
OBJECT_FIELDS: dict[str, tuple[str, ...]] = {"object_color": OBJECT_COLORS, "object_size": SIZES}
DIFFICULTIES = ("simple", "hard")


class InstructionError(ValueError):
    """A malformed instruction data file or an unknown instruction."""


@dataclasses.dataclass(frozen=True)
class Clause:
    """One condition of a rule. `allowed` lists accepted values, preferred first."""

    field: str
    allowed: tuple[str, ...] = ()
    minimum: int = 0  # only for field == "min_objects"

    def met(self, scene: Scene) -> bool:
        if self.field == "min_objects":
            return len(scene.objects) >= self.minimum
        if self.field in OBJECT_FIELDS:
            attr = self.field.removeprefix("object_")
            # An image with no object shows no warm (or large...) object: not met.
            return bool(scene.objects) and all(getattr(o, attr) in self.allowed for o in scene.objects)
        return getattr(scene, self.field) in self.allowed


@dataclasses.dataclass(frozen=True)
class Instruction:
    text: str
    families: tuple[str, ...]
    rule: tuple[Clause, ...]
    difficulty: str
    split: str  # "train" | "heldout" | "composition"

    @property
    def in_distribution(self) -> bool:
        return self.split == "train"

    def satisfaction(self, scene: Scene) -> float:
        return sum(c.met(scene) for c in self.rule) / len(self.rule)

    def clauses_met(self, scene: Scene) -> dict[str, bool]:
        return {c.field: c.met(scene) for c in self.rule}

    def apply(self, scene: Scene) -> Scene:
        return apply_rule(self.rule, scene)

    def sample_prompt(self, rng: random.Random, max_tries: int = 1000) -> Scene:
        """A random plain scene that does not already satisfy this instruction fully.

        Object-level families (warm, enlarge, crowded, ...) are met by chance by some
        plain scenes; those make no useful VIE sample, so they are drawn again."""
        for _ in range(max_tries):
            scene = sample_scene(rng, plain=True)
            if self.satisfaction(scene) < 1.0:
                return scene
        raise InstructionError(f"no plain scene fails {self.text!r} in {max_tries} draws")

    def elaborate(self, scene: Scene) -> tuple[Scene, str]:
        """The oracle elaboration: the changed scene and its literal descriptor."""
        elaborated = self.apply(scene)
        return elaborated, describe(elaborated)


@dataclasses.dataclass(frozen=True)
class Family:
    name: str
    difficulty: str
    adjective: str
    meaning: str
    train: tuple[str, ...]
    heldout: tuple[str, ...]
    rule: tuple[Clause, ...]


@dataclasses.dataclass(frozen=True)
class InstructionSet:
    families: dict[str, Family]
    instructions: tuple[Instruction, ...]

    def by_text(self, text: str) -> Instruction:
        key = _normalise(text)
        for ins in self.instructions:
            if _normalise(ins.text) == key:
                return ins
        raise InstructionError(f"unknown instruction {text!r}; see `seer world instructions` "
                               "for the list")

    def split(self, split: str | None = None, difficulty: str | None = None) -> list[Instruction]:
        """`split`: train, heldout, composition, or ood (heldout + composition)."""
        out = []
        for ins in self.instructions:
            if split == "ood" and ins.in_distribution:
                continue
            if split not in (None, "ood") and ins.split != split:
                continue
            if difficulty is not None and ins.difficulty != difficulty:
                continue
            out.append(ins)
        return out


def _normalise(text: str) -> str:
    return " ".join(text.lower().replace(",", " ").split())


# ---------------------------------------------------------------- loading

def default_path() -> Path:
    return Path(str(importlib.resources.files("seer.world") / "instructions.yaml"))


@functools.lru_cache(maxsize=4)
def load_instructions(path: str | Path | None = None) -> InstructionSet:
    """Parse and check the data file; InstructionError names the file and the bad entry."""
    path = Path(path) if path is not None else default_path()
    try:
        data = yaml.safe_load(path.read_text())
    except (OSError, yaml.YAMLError) as err:
        raise InstructionError(f"{path}: cannot read instruction file: {err}".splitlines()[0]) from None
    if not isinstance(data, dict) or not isinstance(data.get("families"), dict):
        raise InstructionError(f"{path}: expected a mapping with a 'families' mapping")
    families = {name: _family(path, name, spec) for name, spec in data["families"].items()}
    instructions: list[Instruction] = []
    for fam in families.values():
        for split in ("train", "heldout"):
            for text in getattr(fam, split):
                instructions.append(Instruction(text, (fam.name,), fam.rule, fam.difficulty, split))
    templates = data.get("composition_templates") or []
    for k, pair in enumerate(data.get("compositions") or []):
        where = f"{path}: compositions[{k}]"
        if not (isinstance(pair, list) and len(pair) == 2 and all(p in families for p in pair)):
            raise InstructionError(f"{where}: expected two known family names, got {pair!r}")
        if not templates:
            raise InstructionError(f"{path}: compositions need composition_templates")
        a, b = (families[p] for p in pair)
        rule = _merge_rules(a.rule + b.rule, where)
        for template in templates:
            text = template.format(a=a.adjective, b=b.adjective)
            instructions.append(Instruction(text, (a.name, b.name), rule, "hard", "composition"))
    texts = [_normalise(i.text) for i in instructions]
    dupes = {t for t in texts if texts.count(t) > 1}
    if dupes:
        raise InstructionError(f"{path}: instruction text used twice: {sorted(dupes)[0]!r}")
    return InstructionSet(families, tuple(instructions))


def _family(path: Path, name: str, spec: Any) -> Family:
    where = f"{path}: family '{name}'"
    if not isinstance(spec, dict):
        raise InstructionError(f"{where}: expected a mapping")
    for key in ("difficulty", "adjective", "meaning", "train", "heldout", "rule"):
        if key not in spec:
            raise InstructionError(f"{where}: missing field '{key}'")
    if spec["difficulty"] not in DIFFICULTIES:
        raise InstructionError(f"{where}: difficulty must be one of {DIFFICULTIES}")
    train, heldout = spec["train"], spec["heldout"]
    if not (isinstance(train, list) and len(train) >= 3 and all(isinstance(t, str) for t in train)):
        raise InstructionError(f"{where}: 'train' needs at least 3 paraphrases (strings)")
    if not (isinstance(heldout, list) and heldout and all(isinstance(t, str) for t in heldout)):
        raise InstructionError(f"{where}: 'heldout' needs at least 1 paraphrase (string)")
    rule = spec["rule"]
    if not isinstance(rule, dict) or not rule:
        raise InstructionError(f"{where}: 'rule' must be a non-empty mapping of clauses")
    clauses = tuple(_clause(f"{where}: rule.{field}", field, body) for field, body in rule.items())
    return Family(name, spec["difficulty"], str(spec["adjective"]), str(spec["meaning"]),
                  tuple(train), tuple(heldout), _merge_rules(clauses, where))


def _clause(where: str, field: str, body: Any) -> Clause:
    if field == "min_objects":
        if not isinstance(body, int) or not 1 <= body <= MAX_OBJECTS:
            raise InstructionError(f"{where}: expected an integer 1-{MAX_OBJECTS}")
        return Clause(field, minimum=body)
    domain = SCENE_FIELDS.get(field) or OBJECT_FIELDS.get(field)
    if domain is None:
        known = ", ".join([*SCENE_FIELDS, *OBJECT_FIELDS, "min_objects"])
        raise InstructionError(f"{where}: unknown field (expected one of: {known})")
    if not isinstance(body, dict) or not ({"in"} == body.keys() or {"not_in", "else"} == body.keys()):
        raise InstructionError(f"{where}: expected {{in: [...]}} or {{not_in: [...], else: value}}")
    values = body.get("in") or body.get("not_in")
    if not isinstance(values, list) or not values:
        raise InstructionError(f"{where}: expected a non-empty list of values")
    for v in [*values, *([body["else"]] if "else" in body else [])]:
        if v not in domain:
            raise InstructionError(f"{where}: unknown value '{v}' (expected one of: {', '.join(domain)})")
    if "in" in body:
        return Clause(field, tuple(values))
    if body["else"] in values:
        raise InstructionError(f"{where}: 'else' value '{body['else']}' is itself forbidden")
    rest = tuple(v for v in domain if v not in values and v != body["else"])
    return Clause(field, (body["else"], *rest))


def _merge_rules(clauses: tuple[Clause, ...], where: str) -> tuple[Clause, ...]:
    """One clause per field: allowed sets intersect, the first clause's preference wins."""
    merged: dict[str, Clause] = {}
    for c in clauses:
        if c.field not in merged:
            merged[c.field] = c
            continue
        old = merged[c.field]
        if c.field == "min_objects":
            merged[c.field] = Clause(c.field, minimum=max(old.minimum, c.minimum))
            continue
        both = tuple(v for v in old.allowed if v in c.allowed)
        if not both:
            raise InstructionError(f"{where}: clauses on '{c.field}' contradict each other")
        merged[c.field] = Clause(c.field, both)
    return tuple(merged.values())


# ---------------------------------------------------------------- the oracle

def apply_rule(rule: tuple[Clause, ...], scene: Scene) -> Scene:
    """Smallest deterministic change of `scene` that meets every clause of `rule`."""
    changes: dict[str, Any] = {}
    for c in rule:
        if c.field in SCENE_FIELDS and not c.met(scene):
            changes[c.field] = c.allowed[0]
    scene = scene.replace(**changes)
    colors = next((c.allowed for c in rule if c.field == "object_color"), None)
    sizes = next((c.allowed for c in rule if c.field == "object_size"), None)
    minimum = next((c.minimum for c in rule if c.field == "min_objects"), 0)

    objects = list(scene.objects)
    if len(objects) < minimum:
        free = [p for p in POSITIONS if p not in {o.position for o in objects}]
        first = objects[0]
        objects += [dataclasses.replace(first, position=p) for p in free[:minimum - len(objects)]]
    fixed = []
    for k, o in enumerate(objects):
        palette = colors or OBJECT_COLORS
        color = o.color
        if color not in palette or color == scene.background:
            usable = [c for c in palette if c != scene.background]
            color = usable[k % len(usable)]
        size = o.size if sizes is None or o.size in sizes else sizes[0]
        fixed.append(dataclasses.replace(o, color=color, size=size))
    return scene.replace(objects=tuple(fixed)).validate()
