"""The mini model's figures draw the world's scenes at the model's own image size."""

from __future__ import annotations

import types

from seer.eval.mini import world_image_size
from seer.models.mini.model import MiniConfig
from seer.world.geometry import DEFAULT_SIZE


def test_scenes_are_rendered_at_the_model_image_size():
    assert world_image_size(types.SimpleNamespace(config=MiniConfig(image_size=60))) == 60
    assert world_image_size(types.SimpleNamespace(config=MiniConfig.tiny())) == MiniConfig.tiny().image_size


def test_backends_without_an_image_size_get_the_world_default():
    assert world_image_size(types.SimpleNamespace()) == DEFAULT_SIZE
