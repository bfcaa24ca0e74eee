"""The mini model's figures draw the world's scenes at the model's own image size."""

from __future__ import annotations

import types

from seer.data import templates as T
from seer.eval.mini import understanding, world_image_size
from seer.models.mini.model import MiniConfig
from seer.world.geometry import DEFAULT_SIZE


def test_scenes_are_rendered_at_the_model_image_size():
    assert world_image_size(types.SimpleNamespace(config=MiniConfig(image_size=60))) == 60
    assert world_image_size(types.SimpleNamespace(config=MiniConfig.tiny())) == MiniConfig.tiny().image_size


def test_backends_without_an_image_size_get_the_world_default():
    assert world_image_size(types.SimpleNamespace()) == DEFAULT_SIZE


class _SaysYesStraightNoWhenReasoning:
    """A stand-in model: 'yes' to every straight question, a tagged 'no' after reasoning."""

    def generate_text(self, prompts, images=None, **kwargs):
        texts = ["<think> the image fits </think> <answer> no </answer>" if p.endswith(T.THINK_FIRST)
                 else "yes" for p in prompts]
        return types.SimpleNamespace(texts=texts)


def test_reasoned_concept_answers_are_read_from_their_tags():
    figures = understanding(_SaysYesStraightNoWhenReasoning(), n=60)
    # Straight, "yes" is right on the positives; reasoned, the tagged "no" on the rest.
    assert 0.2 < figures["concept_questions"] < 0.8
    assert abs(figures["concept_questions"] + figures["reasoned_concept_questions"] - 1) < 1e-9
