"""The mini model's committed weights: they load offline from the package by default and
still meet the pretraining figures (issue: mini model) on a small held-out sample.

The samples are small so the test stays under a minute on one core; the full figures, on
300 held-out items each, are in docs/benchmarks.md. Thresholds are the issue's figures."""

from __future__ import annotations

import pytest

from seer.eval import mini as ev
from seer.models import load_model, packaged_mini_weights
from seer.models.mini.model import MiniUMM

pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def model() -> MiniUMM:
    return load_model().eval()


def test_packaged_weights_are_small_and_load_by_default(model):
    size = sum(f.stat().st_size for f in packaged_mini_weights().rglob("*") if f.is_file())
    assert size <= 25 * 2**20, f"packaged weights are {size / 2**20:.1f} MB (limit 25 MB)"
    assert isinstance(model, MiniUMM) and model.config.image_tokens == 256


def test_generation_from_literal_descriptors(model):
    figures = ev.generation(model, n=32)
    assert figures["attribute_accuracy"] >= 0.95, figures
    assert figures["exact_scene"] >= 0.85, figures


def test_understanding_and_knowledge(model):
    figures = ev.understanding(model, n=64) | ev.knowledge(model)
    assert figures["attribute_questions"] >= 0.97, figures
    assert figures["concept_questions"] >= 0.95, figures
    assert figures["knowledge"] >= 0.90, figures


def test_the_cognitive_gap_is_built_in(model):
    figures = ev.gap(model, per_instruction=2)
    assert figures["baseline_satisfaction"] <= 0.30, figures
    assert figures["oracle_satisfaction"] >= 0.85, figures
