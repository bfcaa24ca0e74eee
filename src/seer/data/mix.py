"""The pretraining mix of the mini model: what it learns before SEER, and what it must not.

The mix is chosen so the cognitive gap is real, as in a real UMM (docs/model.md):

- generate   literal descriptor -> image. Only literal descriptors ever condition
             generation; abstract instruction words never do. 10% of prompts are dropped
             (empty text) for classifier-free guidance.
- attribute  image -> answer to a question about what is drawn, including "describe the
             picture" (a caption in descriptor words).
- concept    image -> yes/no: "does it look nocturnal ?", "does the picture fit : make it
             look like night ?", so understanding knows every training instruction;
             some ask for reasoning first and answer in the evaluator's tags.
  A quarter of understanding questions show two images and ask about one of them ("in the
  second image , ..."), as a real UMM reads several images; none compares them.
- knowledge  text -> text: what an instruction means, in plain words that are *not* the
             descriptor templates ("a night scene has a dark sky and a moon").
- restate    text -> text in the reprompt format: the prompt said again in canonical
             words. With an instruction (half the examples), the reasoning is what the
             instruction means (the knowledge above) and the reprompt is *lazy*: the
             prompt, then the instruction repeated as written, as a raw UMM's reprompt is
             (the paper's "laziness"). Never an elaboration of an instruction.

No question compares two images, and only training paraphrases of instructions are used:
held-out paraphrases and compositions stay unseen. Every example is a pure function of
(seed, index), so a resumed run sees exactly the data an uninterrupted one would.
"""

from __future__ import annotations

import dataclasses
import random
from collections.abc import Iterator

from seer.data import templates as T
from seer.world.descriptors import GLOBAL_PHRASES, describe, position_phrase
from seer.world.instructions import Instruction, InstructionSet, load_instructions
from seer.world.scene import (
    BACKGROUNDS,
    GLOBAL_DEFAULTS,
    GLOBAL_FIELDS,
    OBJECT_COLORS,
    POSITIONS,
    SHAPES,
    SIZES,
    Scene,
    SceneError,
    sample_scene,
)

KINDS = ("generate", "attribute", "concept", "knowledge", "restate")
DEFAULT_WEIGHTS = {"generate": 0.45, "attribute": 0.3, "concept": 0.15, "knowledge": 0.05, "restate": 0.05}
UNCONDITIONAL_RATE = 0.1
TWO_IMAGE_RATE = 0.25  # understanding questions shown with a second image, about one of them
THINK_RATE = 0.3  # concept questions that ask for reasoning first, answered in tags
RESTATE_INSTRUCTION_RATE = 0.5  # restatements that carry an instruction, repeated lazily


@dataclasses.dataclass(frozen=True)
class Example:
    """One pretraining example: a user turn (text and images) and what the model answers."""

    kind: str
    prompt: str
    images: tuple[Scene, ...] = ()
    answer: str = ""  # text answer (understanding, knowledge, restate)
    image: Scene | None = None  # image answer (generate)


class Mix:
    """Draws examples of each kind from the world, deterministically from a seed."""

    def __init__(self, seed: int = 0, weights: dict[str, float] | None = None,
                 instructions: InstructionSet | None = None):
        self.seed = seed
        self.weights = dict(weights or DEFAULT_WEIGHTS)
        unknown = set(self.weights) - set(KINDS)
        if unknown:
            raise ValueError(f"unknown example kind '{sorted(unknown)[0]}' "
                             f"(expected one of: {', '.join(KINDS)})")
        if any(w < 0 for w in self.weights.values()) or sum(self.weights.values()) <= 0:
            raise ValueError(f"mix weights must be >= 0 with a positive sum, got {self.weights}")
        self.instructions = instructions or load_instructions()
        self.train = self.instructions.split("train")

    def rng(self, index: int, salt: str = "") -> random.Random:
        return random.Random(f"{self.seed}/{salt}/{index}")

    def kind_of(self, index: int) -> str:
        rng = self.rng(index, "kind")
        kinds = list(self.weights)
        return rng.choices(kinds, weights=[self.weights[k] for k in kinds])[0]

    def example(self, index: int, kind: str | None = None) -> Example:
        kind = kind or self.kind_of(index)
        rng = self.rng(index, kind)
        return getattr(self, f"_{kind}")(rng)

    def stream(self, kind: str, start: int = 0) -> Iterator[Example]:
        """Examples of one kind, indices start, start+1, ..."""
        index = start
        while True:
            yield self.example(index, kind)
            index += 1

    # ------------------------------------------------------------ kinds

    def _generate(self, rng: random.Random) -> Example:
        scene = sample_scene(rng)
        if rng.random() < UNCONDITIONAL_RATE:
            return Example("generate", "", image=scene)
        text = describe(scene, rng if rng.random() < 0.5 else None)
        return Example("generate", text, image=scene)

    def _attribute(self, rng: random.Random) -> Example:
        scene = sample_scene(rng)
        question, answer = attribute_question(scene, rng)
        images, which = with_second_image(scene, rng)
        return Example("attribute", T.in_image(which, question) if which else question, images, answer)

    def _concept(self, rng: random.Random) -> Example:
        ins = rng.choice(self.train)
        family = self.instructions.families[ins.families[0]]
        positive = rng.random() < 0.5
        scene = concept_scene(ins, positive, rng)
        template = rng.choice(T.CONCEPT_QUESTIONS)
        question = template.format(adjective=family.adjective, instruction=ins.text)
        images, which = with_second_image(scene, rng)
        if which:
            question = T.in_image(which, question)
        answer = T.YES if positive else T.NO
        if rng.random() < THINK_RATE:
            question = f"{question} {T.THINK_FIRST}"
            answer = T.tagged(T.fit_reasoning(positive, which), answer)
        return Example("concept", question, images, answer)

    def _knowledge(self, rng: random.Random) -> Example:
        ins = rng.choice(self.train)
        family = self.instructions.families[ins.families[0]]
        template = rng.choice(T.KNOWLEDGE_QUESTIONS)
        question = template.format(adjective=family.adjective, instruction=ins.text)
        return Example("knowledge", question, answer=family.meaning)

    def _restate(self, rng: random.Random) -> Example:
        scene = sample_scene(rng, plain=rng.random() < 0.5)
        prompt = describe(scene, rng)
        if rng.random() < RESTATE_INSTRUCTION_RATE:
            ins = rng.choice(self.train)
            meaning = " and ".join(self.instructions.families[f].meaning for f in ins.families)
            answer = T.tagged(meaning, T.baseline_text(describe(scene), ins.text))
            return Example("restate", T.reprompt_question(prompt, ins.text), answer=answer)
        question = T.reprompt_question(prompt, None)
        return Example("restate", question, answer=T.tagged(T.RESTATE_REASONING, describe(scene)))


# ---------------------------------------------------------------- question helpers

def attribute_question(scene: Scene, rng: random.Random) -> tuple[str, str]:
    """A random question about what the scene shows, and its true answer."""
    Q = T.ATTRIBUTE_QUESTIONS
    key = rng.choice(list(Q))
    taken = {o.position: o for o in scene.objects}
    if key == "background":
        return Q[key], scene.background
    if key == "count":
        return Q[key], T.NUMBER_WORDS[len(scene.objects)]
    if key in ("sky", "decoration"):
        value = getattr(scene, key)
        answer = T.NOTHING if value == "none" else (f"a {value}" if key == "sky" else value)
        return Q[key], answer
    if key in ("weather", "style"):
        return Q[key], getattr(scene, key)
    if key in ("shape_at", "color_at", "size_at"):
        # Ask about an occupied cell most of the time, an empty one sometimes.
        position = (rng.choice(scene.objects).position if rng.random() < 0.8 else rng.choice(POSITIONS))
        obj = taken.get(position)
        attr = {"shape_at": "shape", "color_at": "color", "size_at": "size"}[key]
        return Q[key].format(where=position_phrase(position)), getattr(obj, attr) if obj else T.NOTHING
    if key == "has":
        if rng.random() < 0.5:
            obj = rng.choice(scene.objects)
            color, shape = obj.color, obj.shape
        else:
            color, shape = rng.choice(OBJECT_COLORS), rng.choice(SHAPES)
        present = any(o.color == color and o.shape == shape for o in scene.objects)
        return Q[key].format(color=color, shape=shape), T.YES if present else T.NO
    return Q["describe"], describe(scene)


def with_second_image(scene: Scene, rng: random.Random) -> tuple[tuple[Scene, ...], str | None]:
    """Sometimes pair `scene` with a random other one; returns the images and which of the
    two the question is about (None: a single image)."""
    if rng.random() >= TWO_IMAGE_RATE:
        return (scene,), None
    other = sample_scene(rng)
    if rng.random() < 0.5:
        return (scene, other), T.IMAGE_NAMES[0]
    return (other, scene), T.IMAGE_NAMES[1]


def concept_scene(ins: Instruction, positive: bool, rng: random.Random) -> Scene:
    """A scene that satisfies `ins` fully (positive) or not; negatives are half random
    scenes, half near misses (the oracle elaboration with one clause broken)."""
    while True:
        elaborated = ins.apply(sample_scene(rng))
        if positive:
            return elaborated
        if rng.random() < 0.5:
            scene = sample_scene(rng)
        else:
            scene = break_one_clause(ins, elaborated, rng)
        if scene is not None and ins.satisfaction(scene) < 1.0:
            return scene


def break_one_clause(ins: Instruction, scene: Scene, rng: random.Random) -> Scene | None:
    """`scene` with one of `ins`'s clauses made false, or None if no valid way was found."""
    clause = rng.choice(ins.rule)
    for _ in range(20):
        if clause.field == "min_objects":
            keep = rng.randint(1, clause.minimum - 1)
            changed = scene.replace(objects=tuple(rng.sample(scene.objects, keep)))
        elif clause.field in ("object_color", "object_size"):
            attr = clause.field.removeprefix("object_")
            domain = OBJECT_COLORS if attr == "color" else SIZES
            wrong = [v for v in domain if v not in clause.allowed]
            k = rng.randrange(len(scene.objects))
            objects = list(scene.objects)
            objects[k] = dataclasses.replace(objects[k], **{attr: rng.choice(wrong)})
            changed = scene.replace(objects=tuple(objects))
        else:
            domain = BACKGROUNDS if clause.field == "background" else GLOBAL_FIELDS[clause.field]
            wrong = [v for v in domain if v not in clause.allowed]
            changed = scene.replace(**{clause.field: rng.choice(wrong)})
        try:
            return changed.validate()
        except SceneError:
            continue
    return None


def vocabulary_corpus(instructions: InstructionSet | None = None) -> list[str]:
    """Every text the world and the templates can produce, for building the tokenizer.

    Held-out instruction texts are included so they can be read at test time; they
    never appear in training examples."""
    instructions = instructions or load_instructions()
    texts = [*BACKGROUNDS, *OBJECT_COLORS, *SHAPES, *SIZES, *T.NUMBER_WORDS, T.YES, T.NO, T.NOTHING]
    texts += [position_phrase(p) for p in POSITIONS]
    texts += [p for phrases in GLOBAL_PHRASES.values() for options in phrases.values() for p in options]
    texts += [v for values in GLOBAL_FIELDS.values() for v in values if v not in GLOBAL_DEFAULTS.values()]
    texts += list(T.ATTRIBUTE_QUESTIONS.values()) + list(T.CONCEPT_QUESTIONS) + list(T.KNOWLEDGE_QUESTIONS)
    texts += [T.REPROMPT, T.RESTATE_REASONING, "plain clear a the sky sun moon", T.IN_IMAGE, T.THINK_FIRST,
              T.FITS, T.DOES_NOT_FIT, *T.IMAGE_NAMES, *T.PAIR_QUESTIONS.values()]
    rng = random.Random(0)
    texts += [describe(sample_scene(rng), rng) for _ in range(2000)]
    for fam in instructions.families.values():
        texts += [fam.adjective, fam.meaning]
    texts += [ins.text for ins in instructions.instructions]
    return texts
