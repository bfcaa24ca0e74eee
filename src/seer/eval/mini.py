"""Figures of a pretrained mini model, scored with ground truth from the analyzer.

- generation: images from held-out literal descriptors, per-attribute accuracy and exact
  scenes;
- understanding: attribute questions and concept questions, answered greedily (concept
  questions also asked for reasoning first);
- knowledge: asked in words what a training instruction means, the answer names its
  visual effect (the family's meaning, word for word);
- the gap: instruction satisfaction of images generated from the baseline text (prompt +
  instruction) vs from the oracle elaboration.
Held-out means drawn with a seed no training run uses (`EVAL_SALT`); scenes are too many
for a random one to have been seen.
"""

from __future__ import annotations

import random
from collections import defaultdict

import numpy as np

from seer.data import templates as T
from seer.data.formats import yes_no
from seer.data.mix import attribute_question, concept_scene
from seer.models.interface import UnifiedModel
from seer.world.analyzer import analyze_scene
from seer.world.descriptors import describe
from seer.world.geometry import DEFAULT_SIZE
from seer.world.instructions import load_instructions
from seer.world.render import render
from seer.world.scene import GLOBAL_FIELDS, sample_scene
from seer.world.scores import object_agreement

EVAL_SALT = "heldout-eval"
OBJECT_ATTRS = ("shape", "color", "size", "position")


def world_image_size(model: UnifiedModel) -> int:
    """The side a model's images are drawn at: the mini model's own (its cells must align with
    its codes, docs/model.md), else the world's default. Understanding questions show scenes
    rendered at this size, since a resized render loses one-pixel strokes."""
    config = getattr(model, "config", None)
    return int(getattr(config, "image_size", DEFAULT_SIZE))


def _rng(seed: int, what: str) -> random.Random:
    return random.Random(f"{EVAL_SALT}/{seed}/{what}")


def _batches(items: list, size: int):
    for k in range(0, len(items), size):
        yield items[k:k + size]


def scene_agreement(target, seen) -> tuple[int, int]:
    """(attributes right, attributes asked) of an analyzed scene against its target."""
    right = sum(getattr(target, f) == getattr(seen, f) for f in ("background", *GLOBAL_FIELDS))
    right += object_agreement(target.objects, seen.objects, OBJECT_ATTRS)
    # An extra object the prompt did not ask for costs one attribute.
    right -= max(0, len(seen.objects) - len(target.objects))
    return max(0, right), 1 + len(GLOBAL_FIELDS) + len(OBJECT_ATTRS) * len(target.objects)


def generation(model: UnifiedModel, n: int = 200, seed: int = 0, batch_size: int = 32,
               guidance_scale: float | None = None) -> dict[str, float]:
    rng = _rng(seed, "generation")
    scenes = [sample_scene(rng) for _ in range(n)]
    right = asked = exact = 0
    for k, batch in enumerate(_batches(scenes, batch_size)):
        images = model.generate_images([describe(s) for s in batch], guidance_scale=guidance_scale,
                                       seed=seed * 1000 + k)
        for scene, image in zip(batch, images, strict=True):
            seen = analyze_scene(image)
            r, a = scene_agreement(scene, seen)
            right, asked, exact = right + r, asked + a, exact + (seen == scene)
    return {"attribute_accuracy": right / asked, "exact_scene": exact / n}


def _answers(model: UnifiedModel, questions: list[str], images, batch_size: int) -> list[str]:
    out = []
    for k in range(0, len(questions), batch_size):
        samples = model.generate_text(questions[k:k + batch_size],
                                      images[k:k + batch_size] if images is not None else None,
                                      max_new_tokens=48, top_k=1)
        out += samples.texts
    return [a.strip() for a in out]


def understanding(model: UnifiedModel, n: int = 200, seed: int = 0, batch_size: int = 32,
                  by_kind: bool = False) -> dict:
    """Attribute and concept question accuracy; `by_kind` adds the attribute accuracy per
    question kind (its first two words: "what shape", "is there", ...) under
    "attribute_by_kind", which says *what* the model cannot read."""
    rng = _rng(seed, "understanding")
    size = world_image_size(model)
    attr = [(s, *attribute_question(s, rng)) for s in (sample_scene(rng) for _ in range(n))]
    answers = _answers(model, [q for _, q, _ in attr], [[render(s, size)] for s, _, _ in attr], batch_size)
    per_kind: dict[str, list[bool]] = defaultdict(list)
    for (_, q, truth), got in zip(attr, answers, strict=True):
        per_kind[q.split()[0] + " " + q.split()[1]].append(got == truth)
    attribute_acc = float(np.mean([got == t for (_, _, t), got in zip(attr, answers, strict=True)]))

    instructions = load_instructions()
    train = instructions.split("train")
    concept = []
    for _ in range(n):
        ins = rng.choice(train)
        positive = rng.random() < 0.5
        scene = concept_scene(ins, positive, rng)
        template = rng.choice(T.CONCEPT_QUESTIONS)
        adjective = instructions.families[ins.families[0]].adjective
        concept.append((scene, template.format(adjective=adjective, instruction=ins.text),
                        T.YES if positive else T.NO))
    images = [[render(s, size)] for s, _, _ in concept]
    answers = _answers(model, [q for _, q, _ in concept], images, batch_size)
    concept_acc = float(np.mean([got == t for (_, _, t), got in zip(concept, answers, strict=True)]))
    # The same questions asked for reasoning first (the evaluator's form): the answer is
    # read from the <answer> tags after the model's own reading of the image.
    reasoned = _answers(model, [f"{q} {T.THINK_FIRST}" for _, q, _ in concept], images, batch_size)
    reasoned_acc = float(np.mean([yes_no(got) == t
                                  for (_, _, t), got in zip(concept, reasoned, strict=True)]))
    out: dict = {"attribute_questions": attribute_acc, "concept_questions": concept_acc,
                 "reasoned_concept_questions": reasoned_acc}
    if by_kind:
        out["attribute_by_kind"] = {k: float(np.mean(v)) for k, v in sorted(per_kind.items())}
    return out


def knowledge(model: UnifiedModel, batch_size: int = 32) -> dict[str, float]:
    """Every training instruction, asked in the 'what does it mean to ...' form."""
    instructions = load_instructions()
    train = instructions.split("train")
    questions = [T.KNOWLEDGE_QUESTIONS[1].format(instruction=ins.text) for ins in train]
    answers = _answers(model, questions, None, batch_size)
    truth = [instructions.families[ins.families[0]].meaning for ins in train]
    return {"knowledge": float(np.mean([a == t for a, t in zip(answers, truth, strict=True)]))}


def gap(model: UnifiedModel, per_instruction: int = 4, seed: int = 0, batch_size: int = 32,
        split: str = "train") -> dict[str, float]:
    """Instruction satisfaction of images from the baseline text vs the oracle elaboration."""
    rng = _rng(seed, "gap")
    rows = []
    for ins in load_instructions().split(split):
        for _ in range(per_instruction):
            prompt = ins.sample_prompt(rng)
            rows.append((ins, T.baseline_text(describe(prompt), ins.text), describe(ins.apply(prompt))))
    scores: dict[str, list[float]] = {"baseline": [], "oracle": []}
    for k, batch in enumerate(_batches(rows, batch_size)):
        for name, column in (("baseline", 1), ("oracle", 2)):
            images = model.generate_images([r[column] for r in batch], seed=seed * 1000 + k)
            scores[name] += [r[0].satisfaction(analyze_scene(im))
                             for r, im in zip(batch, images, strict=True)]
    return {f"{name}_satisfaction": float(np.mean(v)) for name, v in scores.items()} | {
        f"{name}_full": float(np.mean([s == 1.0 for s in v])) for name, v in scores.items()}


def figures(model: UnifiedModel, n: int = 200, seed: int = 0,
            temperatures: tuple[float, ...] | None = None) -> dict:
    """Every pretraining figure on `n` held-out items per kind (what `seer pretrain --eval`
    reports). With `temperatures`, generation is measured at each image temperature, under
    `generation_T{t}`, and the rest at the first."""
    out: dict = {}
    if temperatures:
        for t in temperatures:
            model.config.image_temperature = t
            out[f"generation_T{t}"] = generation(model, n=n, seed=seed)
        model.config.image_temperature = temperatures[0]
    else:
        out |= generation(model, n=n, seed=seed)
    out |= understanding(model, n=n, seed=seed, by_kind=True) | knowledge(model)
    return out | gap(model, per_instruction=max(1, n // 50), seed=seed)
