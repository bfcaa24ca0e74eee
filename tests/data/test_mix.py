"""The mini model's pretraining mix (seer.data.mix): determinism, what each kind of example
says and whether it is true, what must never be shown (held-out texts, abstract words as
generation prompts, two-image questions) and that the vocabulary covers every word."""

from __future__ import annotations

import collections
import dataclasses
import random
import re

import pytest

from seer.data import templates as T
from seer.data.mix import (
    DEFAULT_WEIGHTS,
    KINDS,
    THINK_RATE,
    TWO_IMAGE_RATE,
    UNCONDITIONAL_RATE,
    Example,
    Mix,
    break_one_clause,
    concept_scene,
    vocabulary_corpus,
)
from seer.models.mini.tokenizer import build_tokenizer, words
from seer.world.descriptors import DescriptorError, describe, parse
from seer.world.instructions import Family, Instruction, load_instructions
from seer.world.scene import Scene, SceneError, sample_scene

N = 4000  # mixed examples for the statistical and "never shown" checks
PER_KIND = 1500  # examples of one kind

# Position phrases written out by hand, independent of descriptors.position_phrase.
WHERE = {
    "at the top left": "top left", "at the top": "top", "at the top right": "top right",
    "on the left": "left", "in the center": "center", "on the right": "right",
    "at the bottom left": "bottom left", "at the bottom": "bottom", "at the bottom right": "bottom right",
}
NUMBERS = {1: "one", 2: "two", 3: "three"}


@pytest.fixture(scope="module")
def instructions():
    return load_instructions()


@pytest.fixture(scope="module")
def mix() -> Mix:
    return Mix(seed=0)


@pytest.fixture(scope="module")
def examples(mix) -> list[Example]:
    return [mix.example(i) for i in range(N)]


@pytest.fixture(scope="module")
def by_kind(mix) -> dict[str, list[Example]]:
    return {kind: [mix.example(i, kind) for i in range(PER_KIND)] for kind in KINDS}


def _family_of_question(text: str, instructions, adjective_template: str,
                        instruction_template: str) -> tuple[Family, Instruction | None]:
    """The family a concept/knowledge question is about, and the instruction it quotes."""
    for template, slot in ((adjective_template, "adjective"), (instruction_template, "instruction")):
        pattern = "^" + re.escape(template).replace(re.escape("{" + slot + "}"), "(.+)") + "$"
        match = re.match(pattern, text)
        if match is None:
            continue
        if slot == "adjective":
            fams = [f for f in instructions.families.values() if f.adjective == match[1]]
            assert len(fams) == 1, f"adjective {match[1]!r} names {len(fams)} families"
            return fams[0], None
        ins = instructions.by_text(match[1])
        assert ins.text == match[1]
        return instructions.families[ins.families[0]], ins
    raise AssertionError(f"question {text!r} fits no template")


def _satisfaction(rule, scene: Scene) -> float:
    return sum(c.met(scene) for c in rule) / len(rule)


# ---------------------------------------------------------------- determinism and weights

def test_same_seed_and_index_give_the_same_example():
    a, b = Mix(seed=7), Mix(seed=7)
    # Out of order on one side: an example depends on (seed, index) only, not on history.
    first = [a.example(i) for i in range(300)]
    second = [b.example(i) for i in reversed(range(300))][::-1]
    assert first == second
    assert a.example(123) == first[123]  # asking again changes nothing


def test_stream_is_example_of_one_kind_from_start(mix):
    stream = mix.stream("attribute", start=50)
    got = [next(stream) for _ in range(20)]
    assert got == [mix.example(50 + k, "attribute") for k in range(20)]
    assert {e.kind for e in got} == {"attribute"}


def test_different_seeds_give_different_examples():
    a, b = Mix(seed=0), Mix(seed=1)
    same = sum(a.example(i) == b.example(i) for i in range(300))
    assert same < 10  # a few unconditional generate examples could coincide by chance only rarely
    assert [a.kind_of(i) for i in range(300)] != [b.kind_of(i) for i in range(300)]


def test_kinds_follow_the_default_weights(examples):
    counts = collections.Counter(e.kind for e in examples)
    assert set(counts) == set(KINDS)
    total = sum(DEFAULT_WEIGHTS.values())
    for kind in KINDS:
        share = counts[kind] / len(examples)
        assert abs(share - DEFAULT_WEIGHTS[kind] / total) < 0.03, (kind, share)
    for e in examples:
        assert e.kind in KINDS


def test_kinds_follow_custom_weights():
    mix = Mix(seed=3, weights={"attribute": 3.0, "knowledge": 1.0})
    counts = collections.Counter(mix.example(i).kind for i in range(2000))
    assert set(counts) == {"attribute", "knowledge"}
    assert abs(counts["attribute"] / 2000 - 0.75) < 0.04


def test_unknown_kind_in_weights_names_it():
    with pytest.raises(ValueError, match="unknown example kind 'caption'"):
        Mix(weights={"generate": 1.0, "caption": 0.5})


# ---------------------------------------------------------------- generate

def test_generate_prompt_is_a_literal_descriptor_of_the_image(by_kind):
    empty = canonical = 0
    for e in by_kind["generate"]:
        assert e.images == () and e.answer == ""
        assert isinstance(e.image, Scene)
        e.image.validate()
        if e.prompt == "":
            empty += 1
            continue
        assert parse(e.prompt) == e.image, e.prompt
        canonical += e.prompt == describe(e.image)
    n = len(by_kind["generate"])
    assert abs(empty / n - UNCONDITIONAL_RATE) < 0.03
    # Both the canonical form and paraphrases are shown.
    assert 0.2 < canonical / (n - empty) < 0.8


def _is_descriptor_word(word: str) -> bool:
    """Whether `parse` accepts `word` inside an otherwise valid descriptor."""
    try:
        parse(f"a small red circle in the center, on a gray background, {word}")
    except DescriptorError as err:
        return not any(f"unknown {what} '{word}'" in str(err) for what in ("word", "color", "shape"))
    return True


def test_abstract_instruction_words_never_condition_generation(instructions, by_kind, examples):
    instruction_words = {w for ins in instructions.instructions for w in words(ins.text) if w.isalpha()}
    abstract = {w for w in instruction_words if not _is_descriptor_word(w)}
    # The probe works: concept words are abstract, world words are not.
    assert {"night", "festive", "make", "spooky", "winter"} <= abstract
    assert not {"red", "large", "stars", "sun", "background", "the"} & abstract
    prompts = [e.prompt for e in by_kind["generate"]] + [e.prompt for e in examples if e.kind == "generate"]
    for prompt in prompts:
        leaked = set(words(prompt)) & abstract
        assert not leaked, f"abstract words {sorted(leaked)} in generate prompt {prompt!r}"


# ---------------------------------------------------------------- attribute

def _true_answer(question: str, scene: Scene) -> str | None:
    """The answer to an attribute question, worked out from the scene without mix.py.
    None for "describe", which is checked by parsing the answer back."""
    at = {o.position: o for o in scene.objects}
    fixed = {
        "what color is the background ?": scene.background,
        "how many objects are there ?": NUMBERS[len(scene.objects)],
        "what is in the sky ?": {"none": "nothing", "sun": "a sun", "moon": "a moon"}[scene.sky],
        "what is the weather ?": scene.weather,
        "what decorates the picture ?": "nothing" if scene.decoration == "none" else scene.decoration,
        "what style is the picture drawn in ?": scene.style,
    }
    if question in fixed:
        return fixed[question]
    for pattern, attr in ((r"what shape is (.+) \?", "shape"), (r"what color is the object (.+) \?", "color"),
                          (r"how big is the object (.+) \?", "size")):
        if m := re.fullmatch(pattern, question):
            obj = at.get(WHERE[m[1]])
            return getattr(obj, attr) if obj else "nothing"
    if m := re.fullmatch(r"is there a (\w+) (\w+) \?", question):
        return "yes" if any(o.color == m[1] and o.shape == m[2] for o in scene.objects) else "no"
    assert question == "describe the picture .", question
    return None


def _subject(e):
    """(question without its 'in the ... image' prefix or reasoning request, the scene it
    is about, whether it asked for reasoning): checks the mix's image addressing."""
    assert e.image is None and 1 <= len(e.images) <= 2
    question = e.prompt
    think = question.endswith(" " + T.THINK_FIRST)
    question = question.removesuffix(" " + T.THINK_FIRST)
    m = re.fullmatch(r"in the (first|second) image , (.+)", question)
    if len(e.images) == 1:
        assert m is None, question
        return question, e.images[0].validate(), think
    assert m is not None, question
    return m[2], e.images[T.IMAGE_NAMES.index(m[1])].validate(), think


def test_attribute_answers_are_true(by_kind):
    asked = collections.Counter()
    answers = collections.defaultdict(set)
    two = 0
    for e in by_kind["attribute"]:
        question, scene, think = _subject(e)
        assert not think
        two += len(e.images) == 2
        expected = _true_answer(question, scene)
        key = re.sub(r" (at|on|in) the .*| a \w+ \w+ \?", "", question)
        asked[key] += 1
        answers[key].add(e.answer)
        if expected is None:
            assert parse(e.answer) == scene and e.answer == describe(scene)
        else:
            assert e.answer == expected, (e.prompt, scene)
    # Every question kind is asked, and the yes/no and "empty cell" answers both occur.
    assert len(asked) == len(T.ATTRIBUTE_QUESTIONS), asked
    assert answers["is there"] == {"yes", "no"}
    assert "nothing" in answers["what shape is"]
    assert len(answers["what shape is"]) == 5  # four shapes and "nothing"
    assert abs(two / len(by_kind["attribute"]) - TWO_IMAGE_RATE) < 0.05


# ---------------------------------------------------------------- concept

def test_concept_answer_is_yes_exactly_when_the_instruction_is_satisfied(by_kind, instructions):
    answers = collections.Counter()
    quoted: set[str] = set()
    adjectives: set[str] = set()
    thought = 0
    for e in by_kind["concept"]:
        question, scene, think = _subject(e)
        family, ins = _family_of_question(question, instructions, *T.CONCEPT_QUESTIONS)
        if ins is None:
            adjectives.add(family.adjective)
        else:
            assert ins.split == "train", ins.text
            quoted.add(ins.text)
        satisfied = _satisfaction(family.rule, scene) == 1.0
        answer = T.YES if satisfied else T.NO
        if think:
            thought += 1
            which = e.prompt.split()[2] if len(e.images) == 2 else None
            answer = T.tagged(T.fit_reasoning(satisfied, which), answer)
        assert e.answer == answer, (e.prompt, scene)
        answers[satisfied] += 1
    assert abs(answers[True] / sum(answers.values()) - 0.5) < 0.05
    assert abs(thought / len(by_kind["concept"]) - THINK_RATE) < 0.05
    # Understanding sees every training instruction and every family's adjective.
    assert quoted == {i.text for i in instructions.split("train")}
    assert adjectives == {f.adjective for f in instructions.families.values()}


def test_concept_negatives_include_near_misses(by_kind, instructions):
    """Among negatives for rules of 3+ clauses (which a random scene rarely nearly meets),
    many meet every clause but one: the broken oracle elaborations."""
    near = total = 0
    for e in by_kind["concept"]:
        question, scene, _ = _subject(e)
        family, _ = _family_of_question(question, instructions, *T.CONCEPT_QUESTIONS)
        if _satisfaction(family.rule, scene) == 1.0 or len(family.rule) < 3:
            continue
        total += 1
        near += _satisfaction(family.rule, scene) == (len(family.rule) - 1) / len(family.rule)
    assert total > 50
    assert near / total > 0.35, (near, total)


def test_concept_scene_positive_and_negative(instructions):
    rng = random.Random(5)
    for ins in instructions.split("train"):
        for _ in range(5):
            assert ins.satisfaction(concept_scene(ins, True, rng).validate()) == 1.0
            assert ins.satisfaction(concept_scene(ins, False, rng).validate()) < 1.0


def test_break_one_clause_breaks_exactly_one_clause(instructions):
    rng = random.Random(11)
    broken = failed = 0
    seen_fields = set()
    for ins in instructions.split("train"):
        for _ in range(25):
            elaborated = ins.apply(sample_scene(rng))
            assert ins.satisfaction(elaborated) == 1.0
            result = break_one_clause(ins, elaborated, rng)
            if result is None:
                failed += 1
                continue
            broken += 1
            assert result.validate() is result
            assert ins.satisfaction(result) < 1.0
            met = ins.clauses_met(result)
            unmet = [field for field, ok in met.items() if not ok]
            assert len(unmet) == 1, (ins.text, elaborated, result)
            seen_fields.add(unmet[0])
            # Nothing else changed: the scene differs from the elaboration in that field only.
            changed = {f.name for f in dataclasses.fields(Scene)
                       if getattr(result, f.name) != getattr(elaborated, f.name)}
            target = "objects" if unmet[0] in ("min_objects", "object_color", "object_size") else unmet[0]
            assert changed == {target}, (ins.text, changed)
    assert failed < 0.1 * (broken + failed)
    fields = {c.field for f in instructions.families.values() for c in f.rule}
    assert seen_fields == fields  # every kind of clause gets broken somewhere


def test_break_one_clause_returns_none_when_no_valid_break_exists(instructions):
    """Snow needs a non-white background; a white one makes snow invisible, so breaking
    that clause can never give a valid scene."""
    snow = instructions.by_text("make it snow")
    background = next(c for c in snow.rule if c.field == "background")
    only_background = dataclasses.replace(snow, rule=(background,))
    scene = only_background.apply(sample_scene(random.Random(0))).replace(weather="snow").validate()
    with pytest.raises(SceneError):
        scene.replace(background="white").validate()
    assert break_one_clause(only_background, scene, random.Random(0)) is None


# ---------------------------------------------------------------- knowledge and restate

def test_knowledge_answer_is_the_family_meaning(by_kind, instructions):
    families = set()
    for e in by_kind["knowledge"]:
        assert e.images == () and e.image is None
        family, ins = _family_of_question(e.prompt, instructions, *T.KNOWLEDGE_QUESTIONS)
        if ins is not None:
            assert ins.split == "train", ins.text
        assert e.answer == family.meaning
        families.add(family.name)
    assert families == set(instructions.families)


def test_meanings_are_not_literal_descriptors(instructions):
    for family in instructions.families.values():
        with pytest.raises(DescriptorError):
            parse(family.meaning)


def test_restate_is_the_prompt_in_canonical_words_and_repeats_an_instruction_lazily(by_kind, instructions):
    """Without an instruction the reprompt is the canonical prompt; with one, the reasoning
    is the instruction's meaning and the reprompt is the baseline text (prompt, then the
    instruction as written): never an elaboration."""
    pattern = "^" + re.escape(T.REPROMPT).replace(re.escape("{prompt}"), "(.+)").replace(
        re.escape("{instruction}"), "(.+)") + "$"
    paraphrased = with_instruction = 0
    for e in by_kind["restate"]:
        assert e.images == () and e.image is None
        m = re.match(pattern, e.prompt)
        assert m is not None, e.prompt
        prompt, instruction = m[1], m[2]
        scene = parse(prompt)
        paraphrased += prompt != describe(scene)
        if instruction == T.NO_INSTRUCTION:
            assert e.prompt == T.reprompt_question(prompt, None)
            assert e.answer == T.tagged(T.RESTATE_REASONING, describe(scene))
            continue
        with_instruction += 1
        ins = instructions.by_text(instruction)
        assert ins.split == "train" and len(ins.families) == 1, instruction
        meaning = instructions.families[ins.families[0]].meaning
        assert e.answer == T.tagged(meaning, T.baseline_text(describe(scene), instruction))
    n = len(by_kind["restate"])
    assert paraphrased > 0.5 * n
    assert 0.3 * n < with_instruction < 0.7 * n


# ---------------------------------------------------------------- what is never shown

def test_held_out_texts_never_appear(examples, by_kind, instructions):
    ood = [ins.text for ins in instructions.split("ood")]
    assert {i.split for i in instructions.split("ood")} == {"heldout", "composition"}
    shown = examples + by_kind["concept"] + by_kind["knowledge"]
    for e in shown:
        for text in ood:
            assert text not in e.prompt and text not in e.answer, (text, e.kind, e.prompt, e.answer)


def test_no_example_compares_two_images(examples, by_kind):
    """Two images appear only in questions about one of them; no comparison words."""
    compare = {"better", "match", "than"}
    for e in examples + [e for kind in KINDS for e in by_kind[kind]]:
        if e.kind in ("attribute", "concept"):
            _subject(e)
            assert not compare & set(e.prompt.split()), e.prompt
        else:
            assert e.images == ()
        assert (e.image is not None) == (e.kind == "generate")


# ---------------------------------------------------------------- vocabulary

@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(vocabulary_corpus(), 16)


def test_vocabulary_covers_every_example_word(tokenizer, examples, by_kind):
    unk = tokenizer.unk_token_id
    for e in examples + [e for kind in KINDS for e in by_kind[kind]]:
        for text in (e.prompt, e.answer):
            ids = tokenizer(text.lower(), add_special_tokens=False)["input_ids"]
            assert unk not in ids, (e.kind, text, tokenizer.convert_ids_to_tokens(ids))


def test_vocabulary_covers_every_instruction_of_every_split(tokenizer, instructions):
    unk = tokenizer.unk_token_id
    assert {i.split for i in instructions.instructions} == {"train", "heldout", "composition"}
    for ins in instructions.instructions:
        ids = tokenizer(ins.text.lower(), add_special_tokens=False)["input_ids"]
        assert unk not in ids, (ins.split, ins.text, tokenizer.convert_ids_to_tokens(ids))


def test_unknown_words_do_tokenize_to_unk(tokenizer):
    """The coverage checks above can fail: a word outside the world is unknown."""
    ids = tokenizer("make it look like a zeppelin", add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id in ids


def test_vocabulary_covers_the_evaluator_and_policy_formats(tokenizer, instructions):
    """The RL stages ask in words pretraining never shows together; every one must be known."""
    unk = tokenizer.unk_token_id
    ins = instructions.split("train")[0]
    texts = [T.pair_question(kind, ins.text) for kind in T.PAIR_QUESTIONS]
    texts += [T.tagged(T.fit_reasoning(f, w), a) for f in (True, False) for w in (None, *T.IMAGE_NAMES)
              for a in (T.YES, T.NO)]
    texts.append(T.reprompt_question("a red circle", ins.text))
    for text in texts:
        ids = tokenizer(text.lower(), add_special_tokens=False)["input_ids"]
        assert unk not in ids, (text, tokenizer.convert_ids_to_tokens(ids))
    with pytest.raises(ValueError, match="unknown question kind 'prompt'"):
        T.pair_question("prompt", ins.text)
