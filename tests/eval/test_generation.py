"""Rendering each method's texts: one pass, shared texts drawn once, order kept."""

from __future__ import annotations

import pytest
from PIL import Image

from seer.eval.generation import render_methods, render_texts


class Recorder:
    """Draws a 1x1 image whose colour encodes (text, seed); records each call's size."""

    def __init__(self):
        self.calls: list[list[tuple[str, int]]] = []

    def generate_images(self, texts, *, seed, **_):
        self.calls.append(list(zip(texts, seed, strict=True)))
        return [Image.new("RGB", (1, 1), (len(t), s % 256, 0)) for t, s in zip(texts, seed, strict=True)]


def test_render_texts_draws_each_text_and_seed_once_in_batches():
    model = Recorder()
    texts = ["a", "bb", "a", "a", "ccc"]
    seeds = [1, 2, 1, 3, 1]
    images = render_texts(model, texts, seeds, batch_size=2)
    assert [len(c) for c in model.calls] == [2, 2]  # 4 distinct (text, seed) pairs
    assert [im.getpixel((0, 0))[:2] for im in images] == [(1, 1), (2, 2), (1, 1), (1, 3), (3, 1)]


def test_render_methods_keeps_each_methods_images_in_sample_order():
    model = Recorder()
    samples = [{"id": "s0", "prompt": "p0"}, {"id": "s1", "prompt": "p1"}]
    methods = {"baseline": ["x", "yy"], "policy": ["x", "zzz"]}
    images = render_methods(model, samples, methods, batch_size=128)
    assert len(model.calls) == 1 and len(model.calls[0]) == 3  # "x" of sample 0 is shared
    assert [im.getpixel((0, 0))[0] for im in images["baseline"]] == [1, 2]
    assert [im.getpixel((0, 0))[0] for im in images["policy"]] == [1, 3]
    assert images["baseline"][0].getpixel((0, 0)) == images["policy"][0].getpixel((0, 0))


def test_render_methods_names_a_method_with_the_wrong_count():
    with pytest.raises(ValueError, match="method policy: 1 texts for 2 samples"):
        render_methods(Recorder(), [{"id": "a"}, {"id": "b"}], {"policy": ["x"]})
