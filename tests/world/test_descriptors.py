"""Literal descriptors: describe and parse, both directions, and parse errors."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seer.world.descriptors import (
    GLOBAL_PHRASES,
    DescriptorError,
    describe,
    parse,
    position_phrase,
)
from seer.world.scene import GLOBAL_DEFAULTS, POSITIONS, Obj, Scene, sample_scene

# Random valid scenes; hypothesis drives (and shrinks) the generator sample_scene uses.
scenes = st.randoms(use_true_random=False).map(sample_scene)
randoms = st.randoms(use_true_random=False)

BASE = "a large red circle on the left, on a blue background"


@settings(max_examples=100, deadline=None)
@given(scenes)
def test_canonical_round_trip(scene):
    assert parse(describe(scene)) == scene


@settings(max_examples=100, deadline=None)
@given(scenes, randoms)
def test_paraphrase_round_trip(scene, paraphrase_rng):
    assert parse(describe(scene, paraphrase_rng)) == scene


@settings(max_examples=100, deadline=None)
@given(scenes, randoms)
def test_word_order_inside_an_object_phrase_does_not_matter(scene, order_rng):
    """Each object's size, colour and shape words in any order, its position before or after."""
    phrases = []
    for o in scene.objects:
        words = [o.size, o.color, o.shape]
        order_rng.shuffle(words)
        where = position_phrase(o.position)
        phrase = f"a {' '.join(words)}"
        phrases.append(f"{phrase} {where}" if order_rng.random() < 0.5 else f"{where}, {phrase}")
    text = " and ".join(phrases) + f", on a {scene.background} background"
    assert parse(text) == scene.replace(**GLOBAL_DEFAULTS)


def test_canonical_form():
    scene = Scene((Obj("circle", "red", "large", "left"), Obj("cross", "blue", "small", "top right")),
                  "navy", sky="moon", weather="snow", decoration="confetti", style="pixelated")
    assert describe(scene) == (
        "a small blue cross at the top right and a large red circle on the left, on a navy "
        "background, with a moon, with snow, with confetti, in a pixelated style")


def test_every_position_has_a_phrase_that_parses_back():
    for p in POSITIONS:
        text = f"a small green square {position_phrase(p)}, on a gray background"
        assert parse(text).objects[0].position == p


def test_paraphrases_vary_and_all_parse():
    scene = Scene((Obj("triangle", "pink", "small", "bottom"), Obj("square", "brown", "large", "center")),
                  "gray", sky="sun", weather="rain", decoration="stars", style="outline")
    texts = {describe(scene, random.Random(k)) for k in range(60)}
    assert len(texts) > 10
    for t in texts:
        assert parse(t) == scene


def test_every_global_phrase_is_used_by_some_paraphrase():
    scene = Scene((Obj("circle", "red", "large", "left"),), "gray", sky="moon", weather="snow",
                  decoration="hearts", style="pixelated")
    texts = [describe(scene, random.Random(k)) for k in range(100)]
    for field, values in GLOBAL_PHRASES.items():
        for phrase in values[getattr(scene, field)]:
            assert any(phrase in t for t in texts), phrase


def test_every_global_phrase_parses_to_its_value():
    for field, values in GLOBAL_PHRASES.items():
        for value, phrases in values.items():
            for phrase in phrases:
                assert getattr(parse(f"{BASE}, {phrase}"), field) == value, phrase


@pytest.mark.parametrize("text", [
    "A LARGE RED CIRCLE ON THE LEFT, ON A BLUE BACKGROUND.",
    "a large red circle on the left; on a blue background",
    "a blue background with a large red circle on the left",
    "on the left, a large red circle, against a blue background",
    "a  large   red circle on the left,on a blue background",
])
def test_parse_tolerates_case_punctuation_and_templates(text):
    assert parse(text) == Scene((Obj("circle", "red", "large", "left"),), "blue")


def test_middle_means_center():
    assert parse("a large red circle in the middle, on a blue background").objects[0].position == "center"


def _error(text: str) -> str:
    with pytest.raises(DescriptorError) as err:
        parse(text)
    message = str(err.value)
    assert "\n" not in message, message
    return message


@pytest.mark.parametrize(("text", "expected"), [
    (f"{BASE}, with foo", "unknown word 'foo'"),
    ("a large teal circle on the left, on a blue background", "unknown color 'teal'"),
    ("a large red hexagon on the left, on a blue background", "unknown shape 'hexagon'"),
    ("", "empty descriptor"),
    ("   \n ", "empty descriptor"),
    ("a large navy circle on the left, on a blue background", "'navy' is a background colour"),
    ("a large white circle on the left, on a blue background", "'white' is a background colour"),
    ("a large red circle on the left", "no background colour"),
    ("on the left, on a blue background", "position 'left' belongs to no object"),
    ("a large red circle on the left and at the top right, on a blue background",
     "position 'top right' belongs to no object"),
    ("a large red circle, on a blue background", "'large red circle' has no position"),
    ("a red circle on the left, on a blue background", "'red circle' has no size"),
    ("a large circle on the left, on a blue background", "'large circle' has no color"),
    ("a large red, on a blue background", "'large red' has no shape or position"),
    ("on a blue background", "no object"),
    (f"{BASE}, with a sun, with a moon", "two values for sky: 'sun' and 'moon'"),
    (f"{BASE}, with rain, with snow", "two values for weather: 'rain' and 'snow'"),
    (f"{BASE}, with stars, with hearts", "two values for decoration: 'stars' and 'hearts'"),
    (f"{BASE}, in outline, as pixel art", "two values for style: 'outline' and 'pixelated'"),
    (f"{BASE}, on a gray background", "two values for background: 'blue' and 'gray'"),
    ("a large red circle at the top bottom, on a blue background", "unclear position 'top bottom'"),
    ("a large red circle at the left center, on a blue background", "unclear position 'left center'"),
    (f"{BASE}!", "unexpected character '!'"),
    ("a large red circle on the left and a small blue cross on the left, on a gray background",
     "two objects at position 'left'"),
    ("a large blue circle on the left, on a blue background", "blue object on a blue background"),
    ("a large red circle on the left, on a white background, with snow", "white background"),
    ("a large red circle on the left, on a white background, with a moon", "white background"),
    ("a small red circle at the top left, a small red circle at the top, a small red circle at the "
     "top right and a small red circle on the left, on a gray background", "1-3 objects, got 4"),
])
def test_parse_errors_are_one_line_and_name_the_problem(text, expected):
    message = _error(text)
    assert expected in message


def test_parse_error_quotes_the_text():
    assert repr(f"{BASE}, with foo") in _error(f"{BASE}, with foo")


def test_multiline_text_still_gives_a_one_line_error():
    assert "unknown word 'foo'" in _error("a large red circle on the left,\non a blue background foo")


def test_a_repeated_global_is_not_a_contradiction():
    assert parse(f"{BASE}, with a sun, under a shining sun").sky == "sun"
