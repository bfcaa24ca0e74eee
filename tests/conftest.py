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


def pytest_configure(config):
    """One torch thread per test process: the suite runs as `pytest -n 2` on 2 cores, and
    two workers of two OpenMP threads each stall one another (tests ran 10x slower)."""
    torch.set_num_threads(1)


@pytest.fixture(scope="module")
def one_thread():
    """Tiny models' ops are too small to share: threads only contend. Kept for modules
    that must not depend on the session default (`pytestmark`)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)
