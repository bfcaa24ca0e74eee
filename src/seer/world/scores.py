"""Ground-truth scores of an image against a prompt and an instruction.

- prompt fidelity: fraction of the prompt's stated attributes found in the image (each
  object's shape, colour, size and position; the background; any non-default global).
  Objects are matched to the prompt's objects by the assignment that agrees most. When an
  instruction is given, attributes its rule governs are left out: "make it warm" must be
  allowed to recolour the objects without counting as a loss of fidelity.
- instruction satisfaction: fraction of the instruction's clauses the image meets.
- exact match: the image shows exactly the target scene (the prompt, or the prompt's
  oracle elaboration when an instruction is given).
"""

from __future__ import annotations

import itertools
from typing import Any

import numpy as np
from PIL import Image

from seer.world.analyzer import analyze
from seer.world.descriptors import describe, parse
from seer.world.instructions import Instruction
from seer.world.scene import GLOBAL_DEFAULTS, GLOBAL_FIELDS, Scene

_OBJECT_ATTRS = ("shape", "color", "size", "position")


def _governed(instruction: Instruction | None) -> set[str]:
    if instruction is None:
        return set()
    fields = {c.field for c in instruction.rule}
    governed = {f for f in fields if f == "background" or f in GLOBAL_FIELDS}
    governed |= {f.removeprefix("object_") for f in fields if f.startswith("object_")}
    return governed


def prompt_fidelity(prompt: Scene, observed: Scene, instruction: Instruction | None = None) -> float:
    skip = _governed(instruction)
    obj_attrs = [a for a in _OBJECT_ATTRS if a not in skip]
    scene_attrs = [f for f in ("background", *GLOBAL_FIELDS)
                   if f not in skip and (f == "background" or getattr(prompt, f) != GLOBAL_DEFAULTS[f])]
    total = len(scene_attrs) + len(obj_attrs) * len(prompt.objects)
    if total == 0:
        return 1.0
    hits = sum(getattr(prompt, f) == getattr(observed, f) for f in scene_attrs)
    hits += object_agreement(prompt.objects, observed.objects, obj_attrs)
    return hits / total


def object_agreement(wanted, found, attrs) -> int:
    """Most attribute agreements over all pairings of wanted and found objects."""
    if not wanted or not found or not attrs:
        return 0
    found = list(found)
    best = 0
    k = min(len(wanted), len(found))
    for chosen in itertools.permutations(range(len(found)), k):
        for subset in itertools.combinations(range(len(wanted)), k):
            score = sum(getattr(wanted[i], a) == getattr(found[j], a)
                        for i, j in zip(subset, chosen, strict=True) for a in attrs)
            best = max(best, score)
    return best


def instruction_satisfaction(instruction: Instruction, observed: Scene) -> float:
    return instruction.satisfaction(observed)


def exact_match(target: Scene, observed: Scene) -> bool:
    return target == observed


def score_image(image: Image.Image | np.ndarray, text: str,
                instruction: Instruction | None = None) -> dict[str, Any]:
    """All scores of one image against a literal prompt (and optionally an instruction)."""
    prompt = parse(text)
    observed = analyze(image).scene
    target = instruction.apply(prompt) if instruction is not None else prompt
    result: dict[str, Any] = {
        "prompt_fidelity": prompt_fidelity(prompt, observed, instruction),
        "exact_match": exact_match(target, observed),
        "observed": describe(observed) if observed.objects else None,
        "target": describe(target),
    }
    if instruction is not None:
        result["instruction"] = instruction.text
        result["instruction_satisfaction"] = instruction_satisfaction(instruction, observed)
        result["clauses_met"] = instruction.clauses_met(observed)
    return result
