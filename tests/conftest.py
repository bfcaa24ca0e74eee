"""Fixtures shared by the whole test suite. Keep them generic: per-area helpers live in the
test modules that use them."""

from __future__ import annotations

import random
from pathlib import Path

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


@pytest.fixture(scope="session")
def make_tiny_vie():
    """Builds a tiny random mini model and a small VIE set from it under a folder; returns
    (model dir, VIE dir). The split sizes and difficulty samples vary by the stage tested."""

    def build(root: Path, **changes) -> tuple[Path, Path]:
        from seer.data.mix import vocabulary_corpus
        from seer.data.vie import VIEConfig, build_vie
        from seer.models.mini.model import MiniConfig, MiniUMM

        MiniUMM.create(vocabulary_corpus(), MiniConfig.tiny(), seed=0).save_pretrained(root / "model")
        settings = dict(n_train=3, n_validation=1, n_test_id=2, n_test_ood=2, require_margin=False,
                        difficulty_samples=0, batch_size=8, max_new_tokens=6)
        build_vie(VIEConfig(out=str(root / "vie"), model=str(root / "model"), **{**settings, **changes}))
        return root / "model", root / "vie"

    return build
