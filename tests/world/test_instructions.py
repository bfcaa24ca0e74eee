"""Abstract instructions: every rule and its oracle, the splits, and data-file checks."""

from __future__ import annotations

import dataclasses
import random
from pathlib import Path

import pytest
import yaml

from seer.world.analyzer import analyze
from seer.world.descriptors import parse
from seer.world.instructions import (
    SCENE_FIELDS,
    Clause,
    Instruction,
    InstructionError,
    default_path,
    load_instructions,
)
from seer.world.render import render_array
from seer.world.scene import BACKGROUNDS, GLOBAL_DEFAULTS, OBJECT_COLORS, SIZES, Obj, Scene

INSTRUCTIONS = load_instructions()
ALL = INSTRUCTIONS.instructions
PROMPTS_PER_INSTRUCTION = 3


def _prompts(ins: Instruction) -> list[Scene]:
    rng = random.Random(ins.text)  # a str seed is stable across runs
    return [ins.sample_prompt(rng) for _ in range(PROMPTS_PER_INSTRUCTION)]


# ---------------------------------------------------------------- every rule and its oracle

@pytest.mark.parametrize("ins", ALL, ids=lambda i: i.text)
def test_oracle_elaboration_satisfies_every_instruction(ins):
    for prompt in _prompts(ins):
        assert prompt.globals() == GLOBAL_DEFAULTS  # a plain scene
        assert ins.satisfaction(prompt) < 1.0, "sample_prompt must ask for a real change"
        elaborated, text = ins.elaborate(prompt)
        assert ins.satisfaction(elaborated) == 1.0
        assert all(ins.clauses_met(elaborated).values())
        assert parse(text) == elaborated
        seen = analyze(render_array(elaborated)).scene
        assert seen == elaborated
        assert ins.satisfaction(seen) == 1.0


@pytest.mark.parametrize("ins", ALL, ids=lambda i: i.text)
def test_oracle_changes_only_what_the_rule_needs(ins):
    fields = {c.field for c in ins.rule}
    for prompt in _prompts(ins):
        elaborated = ins.apply(prompt)
        assert ins.apply(elaborated) == elaborated  # nothing left to change
        assert ins.apply(prompt) == elaborated  # deterministic
        for name in SCENE_FIELDS:
            if name not in fields:
                assert getattr(elaborated, name) == getattr(prompt, name), name
        kept = {o.position: o for o in elaborated.objects}
        assert len(kept) >= len(prompt.objects)
        if "min_objects" not in fields:
            assert len(elaborated.objects) == len(prompt.objects)
        for o in prompt.objects:
            new = kept[o.position]
            assert new.shape == o.shape
            if "object_size" not in fields:
                assert new.size == o.size
            if "object_color" not in fields and o.color != elaborated.background:
                assert new.color == o.color


@pytest.mark.parametrize("ins", ALL, ids=lambda i: i.text)
def test_oracle_handles_every_background_colour_and_size(ins):
    """Exhaustive over one-object plain scenes: no clash is left unresolved."""
    for background in BACKGROUNDS:
        for color in OBJECT_COLORS:
            if color == background:
                continue
            for size in SIZES:
                prompt = Scene((Obj("circle", color, size, "center"),), background)
                assert ins.satisfaction(ins.apply(prompt)) == 1.0


def test_satisfaction_is_the_fraction_of_clauses_met():
    gloomy = INSTRUCTIONS.by_text("make it gloomy")  # background gray, rain, no sun
    scene = Scene((Obj("circle", "red", "large", "left"),), "gray", sky="sun")
    assert gloomy.satisfaction(scene) == pytest.approx(1 / 3)
    assert gloomy.clauses_met(scene) == {"background": True, "weather": False, "sky": False}
    assert gloomy.satisfaction(scene.replace(weather="rain", sky="moon")) == 1.0


def test_object_clauses_need_every_object():
    warm = INSTRUCTIONS.by_text("make it warm")
    one_cool = Scene((Obj("circle", "red", "large", "left"), Obj("cross", "blue", "small", "right")), "gray")
    assert warm.satisfaction(one_cool) == 0.0
    assert warm.apply(one_cool).objects[1].color in ("red", "orange", "yellow")


def test_crowded_adds_copies_of_the_first_object_in_free_cells():
    crowded = INSTRUCTIONS.by_text("make it crowded")
    prompt = Scene((Obj("triangle", "green", "small", "center"),), "gray")
    elaborated = crowded.apply(prompt)
    assert len(elaborated.objects) == 3
    assert {(o.shape, o.color, o.size) for o in elaborated.objects} == {("triangle", "green", "small")}
    # With two objects, one copy of the first (in grid order) goes to the first free cell.
    two = Scene((Obj("square", "blue", "large", "bottom right"), Obj("cross", "pink", "small", "top")),
                "gray")
    assert crowded.apply(two).objects == (Obj("cross", "pink", "small", "top left"), *two.objects)


def test_not_in_clause_prefers_its_else_value():
    snow = INSTRUCTIONS.families["snow"]
    background = next(c for c in snow.rule if c.field == "background")
    assert background.allowed[0] == "gray" and "white" not in background.allowed
    make_it_snow = INSTRUCTIONS.by_text("make it snow")
    prompt = Scene((Obj("circle", "red", "large", "left"),), "white")
    assert make_it_snow.apply(prompt).background == "gray"
    # A background that already complies is kept.
    assert make_it_snow.apply(prompt.replace(background="green")).background == "green"


def test_sample_prompt_gives_up_on_an_instruction_every_scene_meets():
    always = Instruction("have an object", ("any",), (Clause("min_objects", minimum=1),), "simple", "train")
    with pytest.raises(InstructionError, match="no plain scene fails 'have an object' in 5 draws"):
        always.sample_prompt(random.Random(0), max_tries=5)


# ---------------------------------------------------------------- splits

def test_splits_partition_the_instructions():
    train, heldout, composition = (INSTRUCTIONS.split(s) for s in ("train", "heldout", "composition"))
    assert train and heldout and composition
    assert len(train) + len(heldout) + len(composition) == len(ALL)
    assert set(train) | set(heldout) | set(composition) == set(ALL)
    assert INSTRUCTIONS.split("ood") == [i for i in ALL if i.split in ("heldout", "composition")]
    assert INSTRUCTIONS.split() == list(ALL)
    assert all(i.in_distribution for i in train)
    assert not any(i.in_distribution for i in INSTRUCTIONS.split("ood"))


def test_difficulty_filter():
    simple, hard = INSTRUCTIONS.split(difficulty="simple"), INSTRUCTIONS.split(difficulty="hard")
    assert simple and hard and len(simple) + len(hard) == len(ALL)
    assert all(i.difficulty == "simple" for i in simple)
    heldout_simple = [i for i in INSTRUCTIONS.split("heldout") if i.difficulty == "simple"]
    assert INSTRUCTIONS.split("ood", "simple") == heldout_simple


def test_families():
    families = INSTRUCTIONS.families
    assert len(families) >= 20
    assert {f.difficulty for f in families.values()} == {"simple", "hard"}
    for fam in families.values():
        assert len(fam.train) >= 3, fam.name
        assert len(fam.heldout) >= 1, fam.name
        assert fam.meaning.strip() and fam.adjective.strip() and fam.rule, fam.name
        texts = {i.text for i in ALL if i.families == (fam.name,)}
        assert texts == set(fam.train) | set(fam.heldout)


def test_compositions_are_hard_two_part_and_merge_both_rules():
    compositions = INSTRUCTIONS.split("composition")
    assert len(compositions) >= 3
    for ins in compositions:
        assert ins.difficulty == "hard"
        assert len(ins.families) == 2
        a, b = (INSTRUCTIONS.families[name] for name in ins.families)
        assert a.adjective in ins.text and b.adjective in ins.text
        assert {c.field for c in ins.rule} == {c.field for c in a.rule + b.rule}
        assert len({c.field for c in ins.rule}) == len(ins.rule)  # one clause per field
        for clause in ins.rule:
            for part in (a.rule, b.rule):
                own = next((c for c in part if c.field == clause.field), None)
                if own is not None and clause.field != "min_objects":
                    assert set(clause.allowed) <= set(own.allowed)


def test_instruction_texts_are_unique():
    keys = [" ".join(i.text.lower().replace(",", " ").split()) for i in ALL]
    assert len(keys) == len(set(keys))


def test_by_text_ignores_case_commas_and_spacing():
    ins = INSTRUCTIONS.by_text("make it nocturnal, yet festive")
    assert ins.split == "composition"
    assert INSTRUCTIONS.by_text("MAKE IT NOCTURNAL YET FESTIVE") is ins
    assert INSTRUCTIONS.by_text("  make it   nocturnal ,yet festive ") is ins
    assert INSTRUCTIONS.by_text("Make The Object Look Scary Yet Undeniably Cute").families == ("scary_cute",)


def test_by_text_refuses_an_unknown_instruction():
    with pytest.raises(InstructionError) as err:
        INSTRUCTIONS.by_text("make it purple-ish")
    assert "unknown instruction 'make it purple-ish'" in str(err.value)
    assert "\n" not in str(err.value)


def test_default_data_file_is_packaged():
    assert default_path().name == "instructions.yaml" and default_path().is_file()
    assert load_instructions(default_path()).instructions == ALL


# ---------------------------------------------------------------- malformed data files

def _valid() -> dict:
    def family(adjective, train, heldout, rule):
        return {"difficulty": "simple", "adjective": adjective, "meaning": f"{adjective} things",
                "train": train, "heldout": heldout, "rule": rule}

    return {
        "families": {
            "day": family("sunny", ["make it day", "add a sun", "let it shine"], ["bathe it in light"],
                          {"sky": {"in": ["sun"]}, "object_color": {"in": ["red", "orange", "yellow"]}}),
            "night": family("nocturnal", ["make it night", "add a moon", "set it at night"], ["after dark"],
                            {"sky": {"in": ["moon"]}, "background": {"in": ["navy", "black"]}}),
            "gold": family("golden", ["make it gold", "gild it", "make it shine gold"], ["midas it"],
                           {"object_color": {"in": ["yellow", "orange"]},
                            "background": {"not_in": ["white"], "else": "gray"}}),
        },
        "composition_templates": ["make it {a}, yet {b}", "{a} yet {b}"],
        "compositions": [["day", "gold"]],
    }


def _write(tmp_path: Path, data: dict | str, name: str = "instructions.yaml") -> Path:
    path = tmp_path / name
    path.write_text(data if isinstance(data, str) else yaml.safe_dump(data))
    return path


def _load_error(path: Path) -> str:
    with pytest.raises(InstructionError) as err:
        load_instructions(path)
    message = str(err.value)
    assert "\n" not in message, message
    assert str(path) in message, message
    return message


def test_valid_small_file_loads(tmp_path):
    loaded = load_instructions(_write(tmp_path, _valid()))
    assert set(loaded.families) == {"day", "night", "gold"}
    assert len(loaded.split("train")) == 9 and len(loaded.split("heldout")) == 3
    composed = loaded.by_text("sunny yet golden")
    assert composed.split == "composition" and composed.difficulty == "hard"
    # Sets intersect, the first family's preference order wins; the else value comes first.
    rule = {c.field: c.allowed for c in composed.rule}
    assert rule["object_color"] == ("orange", "yellow")
    assert rule["background"][0] == "gray" and "white" not in rule["background"]


def _mutated(change) -> dict:
    data = _valid()
    change(data)
    return data


def _set(mapping: dict, key, value) -> None:
    mapping[key] = value


@pytest.mark.parametrize(("change", "named"), [
    (lambda d: d["families"]["day"].pop("meaning"), "family 'day': missing field 'meaning'"),
    (lambda d: d["families"]["night"].pop("rule"), "family 'night': missing field 'rule'"),
    (lambda d: _set(d["families"]["day"]["rule"], "colour", {"in": ["red"]}),
     "family 'day': rule.colour: unknown field"),
    (lambda d: _set(d["families"]["night"]["rule"], "background", {"in": ["purple"]}),
     "rule.background: unknown value 'purple'"),
    (lambda d: _set(d["families"]["day"]["rule"], "object_color", {"in": ["red", "teal"]}),
     "rule.object_color: unknown value 'teal'"),
    (lambda d: _set(d["families"]["gold"]["rule"], "background", {"not_in": ["white"], "else": "white"}),
     "'else' value 'white' is itself forbidden"),
    (lambda d: _set(d["families"]["gold"]["rule"], "background", {"in": ["gray"], "else": "gray"}),
     "rule.background: expected {in: [...]}"),
    (lambda d: _set(d["families"]["day"]["rule"], "sky", {"in": []}), "rule.sky: expected a non-empty list"),
    (lambda d: _set(d["families"]["day"]["rule"], "min_objects", 4), "rule.min_objects: expected an integer"),
    (lambda d: _set(d["families"]["day"], "rule", {}), "family 'day': 'rule' must be a non-empty mapping"),
    (lambda d: _set(d["families"]["day"], "train", ["make it day", "add a sun"]),
     "family 'day': 'train' needs at least 3 paraphrases"),
    (lambda d: _set(d["families"]["day"], "heldout", []), "family 'day': 'heldout' needs at least 1"),
    (lambda d: _set(d["families"]["day"], "difficulty", "medium"), "family 'day': difficulty must be one of"),
    (lambda d: _set(d["families"], "day", "sunny"), "family 'day': expected a mapping"),
    (lambda d: _set(d, "compositions", [["day", "night"]]), "compositions[0]: clauses on 'sky' contradict"),
    (lambda d: _set(d, "compositions", [["day", "gold"], ["night", "dusk"]]),
     "compositions[1]: expected two known family names"),
    (lambda d: _set(d, "composition_templates", []), "compositions need composition_templates"),
    (lambda d: d["families"]["night"]["heldout"].append("Make it Day"),
     "instruction text used twice: 'make it day'"),
    (lambda d: _set(d, "composition_templates", ["make it {a}, yet {b}", "make it {a} yet {b}"]),
     "instruction text used twice: 'make it sunny yet golden'"),
    (lambda d: d.pop("families"), "expected a mapping with a 'families' mapping"),
], ids=lambda x: x if isinstance(x, str) else None)
def test_malformed_file_gives_one_line_naming_file_and_entry(tmp_path, change, named):
    message = _load_error(_write(tmp_path, _mutated(change)))
    assert named in message


@pytest.mark.parametrize("text", ["families: [unclosed\n", "families:\n  day: {difficulty: simple\n",
                                  "\tfoo: ["])
def test_unreadable_yaml_gives_one_line(tmp_path, text):
    assert "cannot read instruction file" in _load_error(_write(tmp_path, text))


def test_missing_file_gives_one_line(tmp_path):
    assert "cannot read instruction file" in _load_error(tmp_path / "nope.yaml")


def test_top_level_not_a_mapping(tmp_path):
    assert "expected a mapping" in _load_error(_write(tmp_path, "- a\n- b\n"))


def test_loading_is_cached_per_path(tmp_path):
    path = _write(tmp_path, _valid())
    assert load_instructions(path) is load_instructions(path)


def test_instruction_is_hashable_and_frozen():
    ins = ALL[0]
    assert ins in set(ALL)
    with pytest.raises(dataclasses.FrozenInstanceError):
        ins.text = "x"  # type: ignore[misc]


def test_object_clauses_are_not_met_by_an_image_with_no_object():
    # A blank generation must not count as "warm" or "bigger".
    empty = Scene((), "gray")
    for text in ("make it warm", "make everything bigger"):
        assert INSTRUCTIONS.by_text(text).satisfaction(empty) == 0.0
