"""Fixtures shared by the whole test suite. Keep them generic: per-area helpers live in the
test modules that use them."""

from __future__ import annotations

import random

import pytest
import torch


@pytest.fixture
def rng() -> random.Random:
    """A seeded random generator, fresh for every test (reproducible draws)."""
    return random.Random(0)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models' ops are too small to share: threads only contend (10x slower on 2
    busy cores). Modules of tiny-model tests use it through `pytestmark`."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
