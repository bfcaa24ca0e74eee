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


@pytest.fixture
def check_sharding():
    """A one-process gloo group (in memory, torn down after the test) and a check that a
    backend shards (FSDP2): `check(whole, twin, prompts, images, load, directory, lora)`
    gives both equal models the same LoRA adapters if `lora`, shards `twin`, and asserts
    its trainable parameters are sharded, it samples, scores and back-propagates as
    `whole` does, and its `save_pretrained` writes the weights `whole` writes (`load`
    reads them). One process exercises the wiring (every use of a parameter inside a
    sharded forward); tests/train runs two."""
    import torch.distributed as dist

    dist.init_process_group("gloo", store=dist.HashStore(), rank=0, world_size=1)

    def check(whole, twin, prompts, images, load, directory, lora=False):
        from torch.distributed.tensor import DTensor

        from seer.models.fsdp import device_mesh, full_tensor

        if lora:
            for m in (whole, twin):
                torch.manual_seed(0)
                m.enable_lora(r=4)
                for name, p in m.lm.named_parameters():
                    if "lora_B" in name:  # nonzero, so that merging them matters
                        torch.nn.init.normal_(p, std=0.1)
        twin.shard(device_mesh(twin.device))
        assert all(isinstance(p, DTensor) for p in twin.trainable_parameters())
        samples = [
            m.generate_text(prompts, images, max_new_tokens=4, generator=torch.Generator().manual_seed(0))
            for m in (whole, twin)
        ]
        assert samples[0].texts == samples[1].texts
        for m in (whole, twin):
            logp, mask = m.completion_logprobs(prompts, samples[0].token_ids, images)
            (logp * mask).sum().backward()
        for p, q in zip(whole.trainable_parameters(), twin.trainable_parameters(), strict=True):
            p_grad = p.grad if p.grad is not None else torch.zeros_like(p)
            q_grad = full_tensor(q.grad) if q.grad is not None else torch.zeros_like(p)
            assert torch.allclose(p_grad, q_grad, atol=1e-6)
        assert torch.allclose(whole.p_yes(prompts, images).p_yes, twin.p_yes(prompts, images).p_yes)
        whole.save_pretrained(directory / "whole")
        twin.save_pretrained(directory / "sharded")
        saved = [load(directory / name).trainable_parameters() for name in ("whole", "sharded")]
        for p, q in zip(*saved, strict=True):
            assert torch.allclose(p, q, atol=1e-6)

    try:
        yield check
    finally:
        dist.destroy_process_group()
