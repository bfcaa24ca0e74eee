"""Ground-truth scores: prompt fidelity, instruction satisfaction, exact match, score_image."""

from __future__ import annotations

import json
import random

import numpy as np
import pytest

from seer.world.descriptors import describe
from seer.world.instructions import load_instructions
from seer.world.render import render, render_array
from seer.world.scene import COLORS, Obj, Scene
from seer.world.scores import exact_match, instruction_satisfaction, prompt_fidelity, score_image

INSTRUCTIONS = load_instructions()
RED = Obj("circle", "red", "large", "left")
BLUE = Obj("square", "blue", "small", "right")
PROMPT = Scene((RED, BLUE), "gray", sky="sun")  # 1 background + 1 global + 2 x 4 object attributes
TOTAL = 10


def test_fidelity_of_the_prompt_itself_is_one():
    assert prompt_fidelity(PROMPT, PROMPT) == 1.0


@pytest.mark.parametrize(("observed", "misses"), [
    (PROMPT.replace(objects=(RED, Obj("square", "green", "small", "right"))), 1),  # recoloured
    (PROMPT.replace(objects=(RED, Obj("square", "blue", "large", "right"))), 1),  # resized
    (PROMPT.replace(objects=(RED, Obj("cross", "blue", "small", "right"))), 1),  # reshaped
    (PROMPT.replace(objects=(RED, Obj("square", "blue", "small", "bottom"))), 1),  # moved
    (PROMPT.replace(objects=(RED,)), 4),  # lost an object
    (PROMPT.replace(background="navy"), 1),
    (PROMPT.replace(sky="none"), 1),
    (PROMPT.replace(sky="moon", weather="rain"), 1),  # globals the prompt does not state are free
    (PROMPT.replace(objects=(Obj("circle", "red", "large", "right"), Obj("square", "blue", "small", "left"))),
     2),  # swapped places: best pairing keeps shape, colour and size
    (PROMPT.replace(objects=(RED, BLUE, Obj("cross", "pink", "large", "top"))), 0),  # an extra object
])
def test_fidelity_is_the_fraction_of_stated_attributes_found(observed, misses):
    assert prompt_fidelity(PROMPT, observed) == pytest.approx((TOTAL - misses) / TOTAL)


def test_fidelity_drops_when_a_rendered_object_is_recoloured():
    recoloured = PROMPT.replace(objects=(RED, Obj("square", "purple", "small", "right")))
    score = score_image(render(recoloured), describe(PROMPT))
    assert score["prompt_fidelity"] == pytest.approx((TOTAL - 1) / TOTAL)
    assert score["exact_match"] is False


def test_fidelity_ignores_what_the_instruction_governs():
    warm = INSTRUCTIONS.by_text("make it warm")  # governs object colour
    recoloured = PROMPT.replace(objects=(RED, Obj("square", "yellow", "small", "right")))
    assert prompt_fidelity(PROMPT, recoloured) < 1.0
    assert prompt_fidelity(PROMPT, recoloured, warm) == 1.0
    # ...but still counts everything else: 2 objects x 3 attributes + background + sky.
    moved = recoloured.replace(objects=(RED, Obj("square", "yellow", "small", "bottom")))
    assert prompt_fidelity(PROMPT, moved, warm) == pytest.approx(7 / 8)

    night = INSTRUCTIONS.by_text("make it look like night")  # governs background and sky
    assert prompt_fidelity(PROMPT, PROMPT.replace(background="navy", sky="moon"), night) == 1.0
    assert prompt_fidelity(PROMPT, PROMPT.replace(background="navy", sky="moon")) == pytest.approx(8 / 10)


def test_fidelity_ignores_resizing_under_an_enlarging_instruction():
    enlarge = INSTRUCTIONS.by_text("make everything bigger")  # governs object size
    resized = PROMPT.replace(objects=(RED, Obj("square", "blue", "large", "right")))
    assert prompt_fidelity(PROMPT, resized) == pytest.approx(9 / 10)
    assert prompt_fidelity(PROMPT, resized, enlarge) == 1.0


def test_instruction_satisfaction_and_exact_match():
    night = INSTRUCTIONS.by_text("make it look like night")
    plain = Scene((RED,), "gray")
    oracle = night.apply(plain)
    assert instruction_satisfaction(night, plain) == 0.0
    assert instruction_satisfaction(night, plain.replace(sky="moon")) == 0.5
    assert instruction_satisfaction(night, oracle) == 1.0
    assert exact_match(oracle, oracle.replace())
    assert exact_match(PROMPT, Scene((BLUE, RED), "gray", sky="sun"))  # object order is irrelevant
    assert not exact_match(PROMPT, PROMPT.replace(style="outline"))


def _one_per_family():
    chosen = {}
    for ins in INSTRUCTIONS.instructions:
        chosen.setdefault(ins.families, ins)
    return list(chosen.values())


@pytest.mark.parametrize("ins", _one_per_family(), ids=lambda i: i.text)
def test_oracle_render_satisfies_and_plain_render_does_not(ins):
    prompt = ins.sample_prompt(random.Random(ins.text))
    text = describe(prompt)
    oracle, _ = ins.elaborate(prompt)

    good = score_image(render_array(oracle), text, ins)
    assert good["instruction_satisfaction"] == 1.0
    assert all(good["clauses_met"].values())
    assert good["exact_match"] is True
    assert good["observed"] == good["target"] == describe(oracle)
    assert good["prompt_fidelity"] == prompt_fidelity(prompt, oracle, ins)

    plain = score_image(render_array(prompt), text, ins)
    assert plain["instruction_satisfaction"] < 1.0
    assert not all(plain["clauses_met"].values())
    assert plain["exact_match"] is False
    assert plain["prompt_fidelity"] == 1.0


def test_score_of_the_prompts_own_render():
    score = score_image(render(PROMPT), describe(PROMPT))
    assert score == {"prompt_fidelity": 1.0, "exact_match": True, "observed": describe(PROMPT),
                     "target": describe(PROMPT)}


def test_score_image_keys_and_json():
    ins = INSTRUCTIONS.by_text("make it gloomy")
    score = score_image(render(PROMPT), describe(PROMPT), ins)
    assert set(score) == {"prompt_fidelity", "exact_match", "observed", "target", "instruction",
                          "instruction_satisfaction", "clauses_met"}
    assert score["instruction"] == "make it gloomy"
    assert set(score["clauses_met"]) == {c.field for c in ins.rule}
    assert json.loads(json.dumps(score)) == score


def test_score_of_a_blank_image():
    blank = np.empty((64, 64, 3), dtype=np.uint8)
    blank[:] = COLORS["gray"]
    score = score_image(blank, describe(PROMPT))
    assert score["observed"] is None
    assert score["exact_match"] is False
    assert score["prompt_fidelity"] == pytest.approx(1 / TOTAL)  # only the background
