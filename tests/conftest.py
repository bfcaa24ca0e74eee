"""Fixtures shared by the whole test suite. Keep them generic: per-area helpers live in the
test modules that use them."""

from __future__ import annotations

import random

import pytest


@pytest.fixture
def rng() -> random.Random:
    """A seeded random generator, fresh for every test (reproducible draws)."""
    return random.Random(0)
