"""Scenes: the record, its rules (Scene.validate) and random sampling."""

from __future__ import annotations

import json
import random

import pytest

from seer.world.scene import (
    BACKGROUNDS,
    GLOBAL_DEFAULTS,
    GLOBAL_FIELDS,
    MAX_OBJECTS,
    OBJECT_COLORS,
    POSITIONS,
    Obj,
    Scene,
    SceneError,
    sample_scene,
)

RED_LEFT = Obj("circle", "red", "large", "left")
BLUE_TOP = Obj("cross", "blue", "small", "top")


def test_objects_are_kept_in_grid_order_so_equal_scenes_compare_equal():
    a = Scene((RED_LEFT, BLUE_TOP), "gray")
    b = Scene((BLUE_TOP, RED_LEFT), "gray")
    assert a == b
    assert a.objects == (BLUE_TOP, RED_LEFT)  # "top" comes before "left" on the grid


def test_dict_round_trip_through_json():
    scene = Scene((RED_LEFT, BLUE_TOP), "navy", sky="moon", weather="snow",
                  decoration="confetti", style="pixelated").validate()
    data = json.loads(json.dumps(scene.to_dict()))
    assert Scene.from_dict(data) == scene


def test_from_dict_fills_missing_globals_with_defaults():
    scene = Scene.from_dict({"objects": [RED_LEFT.attributes()], "background": "gray"})
    assert scene.globals() == GLOBAL_DEFAULTS


def test_validate_returns_the_scene_when_valid():
    scene = Scene((RED_LEFT,), "gray", sky="sun")
    assert scene.validate() is scene


@pytest.mark.parametrize(("scene", "named"), [
    (Scene((RED_LEFT,), "purple"), "background 'purple'"),
    (Scene((RED_LEFT,), "gray", sky="rainbow"), "sky 'rainbow'"),
    (Scene((RED_LEFT,), "gray", weather="fog"), "weather 'fog'"),
    (Scene((RED_LEFT,), "gray", decoration="balloons"), "decoration 'balloons'"),
    (Scene((RED_LEFT,), "gray", style="watercolor"), "style 'watercolor'"),
    (Scene((Obj("hexagon", "red", "large", "left"),), "gray"), "shape 'hexagon'"),
    (Scene((Obj("circle", "teal", "large", "left"),), "gray"), "color 'teal'"),
    (Scene((Obj("circle", "white", "large", "left"),), "gray"), "color 'white'"),
    (Scene((Obj("circle", "red", "huge", "left"),), "gray"), "size 'huge'"),
    (Scene((Obj("circle", "red", "large", "middle left"),), "gray"), "position 'middle left'"),
])
def test_validate_names_the_unknown_field_and_value(scene, named):
    with pytest.raises(SceneError, match="unknown") as err:
        scene.validate()
    assert named in str(err.value)
    assert "\n" not in str(err.value)


def test_validate_refuses_two_objects_in_one_cell():
    scene = Scene((RED_LEFT, Obj("square", "blue", "small", "left")), "gray")
    with pytest.raises(SceneError, match="two objects at position 'left'"):
        scene.validate()


@pytest.mark.parametrize("color", ["blue", "green"])
def test_validate_refuses_an_object_coloured_like_the_background(color):
    scene = Scene((Obj("circle", color, "large", "center"),), color)
    with pytest.raises(SceneError, match=f"{color} object on a {color} background"):
        scene.validate()


@pytest.mark.parametrize(("sky", "weather"), [("moon", "clear"), ("none", "snow"), ("moon", "snow")])
def test_validate_refuses_white_marks_on_white(sky, weather):
    with pytest.raises(SceneError, match="white background"):
        Scene((RED_LEFT,), "white", sky=sky, weather=weather).validate()
    # The same marks on any other background are fine.
    Scene((RED_LEFT,), "gray", sky=sky, weather=weather).validate()


def test_white_background_allows_sun_and_rain():
    Scene((RED_LEFT,), "white", sky="sun", weather="rain").validate()


@pytest.mark.parametrize("n", [0, MAX_OBJECTS + 1])
def test_validate_refuses_too_few_or_too_many_objects(n):
    objects = tuple(Obj("circle", "red", "small", p) for p in POSITIONS[:n])
    with pytest.raises(SceneError, match=f"1-{MAX_OBJECTS} objects, got {n}"):
        Scene(objects, "gray").validate()


def test_sample_scene_is_valid_and_deterministic():
    first = [sample_scene(random.Random(7)) for _ in range(3)]
    assert first[0] == first[1] == first[2]
    rng = random.Random(1)
    for _ in range(300):
        sample_scene(rng).validate()


def test_sample_scene_covers_the_vocabulary(rng):
    scenes = [sample_scene(rng) for _ in range(600)]
    assert {s.background for s in scenes} == set(BACKGROUNDS)
    assert {len(s.objects) for s in scenes} == set(range(1, MAX_OBJECTS + 1))
    assert {o.color for s in scenes for o in s.objects} == set(OBJECT_COLORS)
    assert {o.position for s in scenes for o in s.objects} == set(POSITIONS)
    for name, values in GLOBAL_FIELDS.items():
        assert {getattr(s, name) for s in scenes} == set(values), name


def test_plain_scenes_have_default_globals(rng):
    for _ in range(100):
        assert sample_scene(rng, plain=True).globals() == GLOBAL_DEFAULTS


@pytest.mark.parametrize("n", [1, 2, 3])
def test_sample_scene_honours_n_objects(rng, n):
    for _ in range(20):
        assert len(sample_scene(rng, n_objects=n).objects) == n
