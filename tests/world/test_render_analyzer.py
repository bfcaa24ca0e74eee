"""Renderer and analyzer: scene -> image -> scene, exact on clean renders and tolerant of
the noise and shifts measured in docs/benchmarks.md."""

from __future__ import annotations

import random

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image

from seer.world import geometry as g
from seer.world.analyzer import analyze, analyze_scene
from seer.world.geometry import DEFAULT_SIZE
from seer.world.render import render, render_array
from seer.world.scene import (
    BACKGROUNDS,
    COLORS,
    DECORATIONS,
    RAIN_RGB,
    SHAPES,
    SIZES,
    SKIES,
    STYLES,
    WEATHERS,
    Obj,
    Scene,
    sample_scene,
)

scenes = st.randoms(use_true_random=False).map(sample_scene)

N_PERTURBED = 30


def _scenes(n: int, seed: int = 0) -> list[Scene]:
    rng = random.Random(seed)
    return [sample_scene(rng) for _ in range(n)]


@settings(max_examples=80, deadline=None)
@given(scenes)
def test_render_then_analyze_recovers_the_scene(scene):
    assert analyze(render_array(scene)).scene == scene


def test_render_is_deterministic_rgb_of_the_default_size():
    scene = _scenes(1, seed=3)[0]
    image = render(scene)
    assert image.mode == "RGB" and image.size == (DEFAULT_SIZE, DEFAULT_SIZE) == (64, 64)
    assert np.array_equal(np.asarray(image), render_array(scene))
    assert np.array_equal(render_array(scene), render_array(scene))
    assert render_array(scene, 96).shape == (96, 96, 3)


def test_render_uses_only_palette_colours():
    """No anti-aliasing: every pixel is a named colour or rain."""
    palette = {tuple(c) for c in (*COLORS.values(), RAIN_RGB)}
    for scene in _scenes(20, seed=4):
        pixels = {tuple(p) for p in render_array(scene).reshape(-1, 3)}
        assert pixels <= palette


def test_different_scenes_render_differently():
    base = Scene((Obj("circle", "red", "large", "center"),), "gray")
    variants = [base.replace(objects=(Obj(shape, "red", "large", "center"),)) for shape in SHAPES]
    variants += [base.replace(sky="sun"), base.replace(weather="rain"), base.replace(style="outline"),
                 base.replace(decoration="hearts"), base.replace(background="blue")]
    images = {render_array(s).tobytes() for s in [base, *variants]}
    assert len(images) == len(variants)  # base equals the circle variant


@pytest.mark.parametrize("style", STYLES)
@pytest.mark.parametrize("size", SIZES)
@pytest.mark.parametrize("shape", SHAPES)
def test_every_shape_size_and_style_is_read_back(shape, size, style):
    scene = Scene((Obj(shape, "purple", size, "center"), Obj(shape, "yellow", size, "bottom left")),
                  "white", style=style)
    assert analyze(render(scene)).scene == scene


@pytest.mark.parametrize(("field", "value"), [
    *[("sky", v) for v in SKIES], *[("weather", v) for v in WEATHERS],
    *[("decoration", v) for v in DECORATIONS],
])
@pytest.mark.parametrize("background", ["gray", "navy"])
def test_every_global_value_is_read_back(field, value, background):
    scene = Scene((Obj("square", "orange", "small", "top left"), Obj("cross", "green", "large", "right"),
                   Obj("triangle", "pink", "large", "bottom")), background).replace(**{field: value})
    assert analyze(render_array(scene)).scene == scene


def test_outline_and_pixelated_remove_object_pixels():
    plain = Scene((Obj("square", "red", "large", "center"),), "gray")
    red = np.array(COLORS["red"])

    def red_pixels(scene):
        return int((render_array(scene) == red).all(-1).sum())

    assert red_pixels(plain.replace(style="outline")) < red_pixels(plain.replace(style="pixelated")) \
        < red_pixels(plain)


@pytest.mark.parametrize("sigma", [5, 8])
def test_gaussian_noise_is_tolerated(sigma):
    noise = np.random.default_rng(sigma)
    for scene in _scenes(N_PERTURBED, seed=sigma):
        image = render_array(scene).astype(np.float64)
        noisy = np.clip(image + noise.normal(0, sigma, image.shape), 0, 255).astype(np.uint8)
        assert analyze(noisy).scene == scene


@pytest.mark.parametrize("shift", [(1, 1), (2, 2), (-2, 1), (0, -2)])
def test_small_shifts_are_tolerated(shift):
    for scene in _scenes(N_PERTURBED, seed=10 + sum(shift)):
        shifted = np.roll(render_array(scene), shift, axis=(0, 1))
        assert analyze(shifted).scene == scene


@pytest.mark.parametrize("shape", SHAPES)
def test_a_one_pixel_break_in_an_outline_stroke_is_bridged(shape):
    scene = Scene((Obj(shape, "red", "large", "center"), Obj(shape, "blue", "small", "top left")),
                  "gray", style="outline")
    image = render_array(scene)
    for color in ("red", "blue"):
        ys, xs = np.nonzero((image == np.array(COLORS[color])).all(-1))
        top = ys.min()
        image[top, xs[ys == top][len(xs[ys == top]) // 2]] = COLORS["gray"]  # cut the top stroke
    assert analyze(image).scene == scene


@pytest.mark.parametrize(("mark", "color"), [("speck", "white"), ("speck", "red"), ("star", "yellow"),
                                             ("heart", "pink")])
def test_two_stray_marks_change_nothing_but_three_make_a_global(mark, color):
    """docs/world.md: global attributes need at least three marks."""
    scene = Scene((Obj("circle", "green", "large", "center"),), "navy")
    image = render_array(scene)
    d = g.speck(DEFAULT_SIZE) if mark == "speck" else g.small_mark(DEFAULT_SIZE)
    corners = [(2, 2), (DEFAULT_SIZE - d - 2, DEFAULT_SIZE - d - 2), (2, DEFAULT_SIZE - d - 2)]
    for x0, y0 in corners[:2]:
        g.paste(image, g.solid_mask(mark, d), x0, y0, np.array(COLORS[color], dtype=np.uint8))
    assert analyze(image).scene == scene
    # One more mark is enough to read a global attribute.
    x0, y0 = corners[2]
    g.paste(image, g.solid_mask(mark, d), x0, y0, np.array(COLORS[color], dtype=np.uint8))
    assert analyze(image).scene != scene


@pytest.mark.parametrize("background", BACKGROUNDS)
def test_blank_image_has_no_objects(background):
    blank = np.empty((DEFAULT_SIZE, DEFAULT_SIZE, 3), dtype=np.uint8)
    blank[:] = COLORS[background]
    analysis = analyze(blank)
    assert analysis.scene == Scene((), background)
    assert analysis.components == []
    assert set(analysis.counts.values()) == {0}


def test_analyze_accepts_pil_images_of_any_mode():
    scene = _scenes(1, seed=5)[0]
    image = render(scene)
    assert analyze_scene(image) == scene
    assert analyze_scene(image.convert("RGBA")) == scene


def test_analyze_refuses_a_non_rgb_array():
    with pytest.raises(ValueError, match="H x W x 3"):
        analyze(np.zeros((64, 64), dtype=np.uint8))


def test_analysis_counts_the_marks():
    scene = Scene((Obj("circle", "red", "large", "center"),), "navy", sky="moon", weather="snow",
                  decoration="stars")
    analysis = analyze(render_array(scene))
    assert analysis.counts["moon"] == 1 and analysis.counts["sun"] == 0
    assert analysis.counts["flake"] >= 3 and analysis.counts["star"] >= 3
    assert analysis.counts["streak"] == analysis.counts["heart"] == analysis.counts["confetti"] == 0
    objects = [c for c in analysis.components if c.kind == "object"]
    assert [(c.shape, c.color, c.size, c.style) for c in objects] == [("circle", "red", "large", "plain")]


def test_image_from_png_file_round_trips(tmp_path):
    scene = _scenes(1, seed=6)[0]
    path = tmp_path / "scene.png"
    render(scene).save(path)
    with Image.open(path) as image:
        assert analyze_scene(image) == scene
