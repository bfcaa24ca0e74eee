"""`seer pretrain` on tiny settings: losses fall, runs repeat from a seed, resume is exact."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from seer.models.mini.model import MiniConfig, MiniUMM
from seer.train.pretrain import PretrainConfig, pretrain

TINY = MiniConfig(image_size=64, hidden_size=64, num_layers=2, num_heads=2, codebook_size=32,
                  vq_channels=(32,), vq_unshuffle=8)


def _config(out, **changes) -> PretrainConfig:
    base = dict(out=str(out), model=TINY, vq_steps=60, vq_scenes=200, vq_batch_size=8, steps=30,
                batch_size=8, lr=3e-3, warmup_steps=5, checkpoint_every=20, log_every=5, grounding_layer=0)
    return PretrainConfig(**{**base, **changes})


def _log(out) -> list[dict]:
    return [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("pretrain")
    return out, pretrain(_config(out))


def test_losses_fall(run):
    out, _ = run
    log = _log(out)
    vq = [r["loss"] for r in log if r["phase"] == "vq"]
    lm = [r["loss"] for r in log if r["phase"] == "lm"]
    assert vq[-1] < 0.9 * vq[0]
    assert lm[-1] < 0.8 * lm[0]


def test_outputs(run):
    out, model_dir = run
    config = json.loads((out / "config.json").read_text())
    assert config["steps"] == 30 and config["model"]["hidden_size"] == 64
    model = MiniUMM.from_pretrained(model_dir)
    assert model.config.hidden_size == 64
    assert any((out / "tensorboard").iterdir())


class Killed(Exception):
    """Stands for the process being killed."""


def _killed_after(monkeypatch, n_saves: int) -> None:
    """Make the run die right after its n-th checkpoint, as a kill would."""
    import seer.train.pretrain as module

    real, saves = module.save_checkpoint, []

    def save_then_die(*args, **kwargs):
        real(*args, **kwargs)
        saves.append(kwargs["step"])
        if len(saves) == n_saves:
            raise Killed

    monkeypatch.setattr(module, "save_checkpoint", save_then_die)


def _straight_and_resumed(tmp_path, monkeypatch, n_saves: int, **config):
    """Models of an uninterrupted run and of one killed after n checkpoints, then resumed."""
    straight, cut = tmp_path / "straight", tmp_path / "cut"
    pretrain(_config(straight, **config))
    with monkeypatch.context() as patch:
        _killed_after(patch, n_saves)
        with pytest.raises(Killed):
            pretrain(_config(cut, **config))
    pretrain(_config(cut, **config), resume=True)
    return MiniUMM.from_pretrained(straight / "model"), MiniUMM.from_pretrained(cut / "model")


def _same(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    b_state = b.state_dict()
    return all(torch.equal(v, b_state[k]) for k, v in a.state_dict().items())


@pytest.mark.parametrize("local_norm", [False, True])
def test_resume_continues_exactly(tmp_path, monkeypatch, local_norm):
    # Killed after the tokenizer's last checkpoint and the transformer's first (step 4). With
    # the per-position norm the resumed run rebuilds the encoder's norm from a saved folder.
    a, b = _straight_and_resumed(tmp_path, monkeypatch, 2, vq_steps=20, steps=8, checkpoint_every=4,
                                 log_every=1, model=dataclasses.replace(TINY, vq_local_norm=local_norm))
    assert _same(a.lm, b.lm)
    losses = lambda out: [r["loss"] for r in _log(out) if r["phase"] == "lm"]  # noqa: E731
    assert losses(tmp_path / "straight")[4:] == losses(tmp_path / "cut")[-4:]


def test_same_seed_same_model(tmp_path):
    for name in ("a", "b"):
        pretrain(_config(tmp_path / name, vq_steps=10, steps=3))
    a, b = (MiniUMM.from_pretrained(tmp_path / name / "model") for name in ("a", "b"))
    assert _same(a.lm, b.lm)


@pytest.mark.parametrize("local_norm", [False, True])
def test_tokenizer_phase_resumes_exactly(tmp_path, monkeypatch, local_norm):
    # Killed at step 30, between two dead-code restarts and mid-way down the LR schedule.
    a, b = _straight_and_resumed(tmp_path, monkeypatch, 1, vq_steps=150, steps=1, checkpoint_every=30,
                                 log_every=10, model=dataclasses.replace(TINY, vq_local_norm=local_norm))
    assert _same(a.vq, b.vq)


def test_resume_refuses_a_change_of_what_is_learnt(tmp_path):
    from seer.config import ConfigError

    pretrain(_config(tmp_path / "r", vq_steps=2, steps=0))
    with pytest.raises(ConfigError, match="different 'vq_lr'"):
        pretrain(_config(tmp_path / "r", vq_steps=2, steps=0, vq_lr=1e-4), resume=True)
    pretrain(_config(tmp_path / "r", vq_steps=4, steps=0), resume=True)  # longer is fine
    # The transformer's recipe may change until its phase has a checkpoint, not after.
    pretrain(_config(tmp_path / "r", vq_steps=4, steps=2, checkpoint_every=1, batch_size=4), resume=True)
    with pytest.raises(ConfigError, match="different 'batch_size'"):
        pretrain(_config(tmp_path / "r", vq_steps=4, steps=4, batch_size=8), resume=True)


@pytest.mark.parametrize(("change", "named"), [
    ({"batch_size": 0}, "batch_size must be positive"),
    ({"model": MiniConfig(image_size=50)}, "model.image_size 50"),
    ({"model": MiniConfig(hidden_size=30, num_heads=4)}, "multiple of model.num_heads"),
])
def test_bad_settings_are_refused_before_anything_runs(tmp_path, change, named):
    from seer.config import ConfigError

    with pytest.raises(ConfigError, match=named):
        pretrain(_config(tmp_path / "bad", **change))
    assert not (tmp_path / "bad").exists()


def test_a_swap_cut_between_its_renames_is_undone(tmp_path):
    from seer.train.checkpoint import load_state, save_checkpoint

    ckpt = tmp_path / "checkpoint"
    save_checkpoint(ckpt, lambda d: None, step=3)
    ckpt.rename(tmp_path / ".checkpoint.old")  # as if killed after the first rename
    assert load_state(ckpt)["step"] == 3


def test_init_continues_a_trained_model_and_adds_image_positions(run, tmp_path):
    """`init` starts phase 2 from a saved model (here one without image positions): its
    image tokenizer is kept, its weights are the starting point, positions start at zero."""
    _, model_dir = run
    old = MiniUMM.from_pretrained(model_dir)
    old.image_positions = None
    old.config.image_positions = False
    old.save_pretrained(tmp_path / "old")
    out = pretrain(_config(tmp_path / "new", init=str(tmp_path / "old"), steps=4, log_every=2))
    new = MiniUMM.from_pretrained(out)
    assert _same(new.vq.vq, old.vq.vq)
    assert new.image_positions is not None and new.image_positions.rows.abs().max() > 0
    assert not any(r["phase"] == "vq" for r in _log(tmp_path / "new"))


def test_grounding_sites_name_each_cells_object(run):
    """Generated images are grounded at every code-predicting position, understanding images
    at the last code of each grid cell; targets are 1 + the value's index, 0 where empty."""
    from seer.data.mix import Example
    from seer.train.pretrain import batch_tensors, grounding_sites
    from seer.world.geometry import grid_cells
    from seer.world.scene import SHAPES, Obj, Scene

    _, model_dir = run
    model = MiniUMM.from_pretrained(model_dir)
    side = model.config.tokens_per_side
    scene = Scene(background="white", objects=(Obj("cross", "red", "large", "top left"),))
    examples = [Example("generate", "a large red cross at the top left", image=scene),
                Example("generate", "", image=scene),  # unconditional: nothing to ground
                Example("attribute", "what shape is at the top left ?", images=(scene,), answer="cross")]
    ids, _, _ = batch_tensors(model, examples)
    rows, positions, targets = grounding_sites(model, examples, ids)
    assert rows.tolist() == [0] * side**2 + [2] * 9
    boi = ids[0].tolist().index(model.boi_id)
    assert positions[:side**2].tolist() == list(range(boi, boi + side**2))
    cells = grid_cells(side)
    expected = [1 + SHAPES.index("cross") if c == "top left" else 0 for c in cells]
    assert targets[:side**2, 0].tolist() == expected
    assert targets[side**2:, 0].tolist().count(1 + SHAPES.index("cross")) == 1


def test_grounding_loss_falls_and_resumes_exactly(tmp_path, monkeypatch):
    a, b = _straight_and_resumed(tmp_path, monkeypatch, 2, vq_steps=20, steps=24, checkpoint_every=12,
                                 log_every=1, grounding_layer=1, mix={"generate": 1.0})
    assert _same(a.lm, b.lm)
    grounded = [r["loss/grounding"] for r in _log(tmp_path / "straight") if r["phase"] == "lm"]
    assert sum(grounded[-4:]) < 0.85 * sum(grounded[:4])
    from seer.config import ConfigError

    with pytest.raises(ConfigError, match="grounding_layer 3: the model has 2 layers"):
        pretrain(_config(tmp_path / "deep", vq_steps=2, steps=1, grounding_layer=3))
