"""The GRPO engine: its math against hand-computed cases, and the loop's guarantees
(weights move, resume is exact, NaN stops the step, truncated completions can be masked)."""

from __future__ import annotations

import functools
import math

import pytest
import torch

from seer.config import ConfigError
from seer.data.mix import vocabulary_corpus
from seer.models.mini.model import MiniConfig, MiniUMM
from seer.rollout import Prompt, Rollout
from seer.train.grpo import (
    STD_EPS,
    GRPOConfig,
    GRPOEngine,
    group_advantages,
    kl_k3,
    per_token_loss,
    reduce_loss,
)

TINY = MiniConfig.tiny()


# ---------------------------------------------------------------- advantages


def test_group_advantages_scale_by_group_std():
    r = torch.tensor([1.0, 0.0, 1.0, 0.0, 1.0, 1.0, 1.0, 1.0])
    adv = group_advantages(r, 4, "group")
    std = math.sqrt(1 / 3)  # unbiased std of (1, 0, 1, 0)
    expected = [0.5 / (std + STD_EPS), -0.5 / (std + STD_EPS)] * 2 + [0.0] * 4
    assert torch.allclose(adv, torch.tensor(expected))


def test_group_advantages_batch_and_none():
    r = torch.tensor([3.0, 1.0, 2.0, 2.0])
    assert torch.allclose(group_advantages(r, 2, "none"), torch.tensor([1.0, -1.0, 0.0, 0.0]))
    std = torch.tensor([3.0, 1.0, 2.0, 2.0]).std()  # sqrt(2/3)
    assert torch.allclose(
        group_advantages(r, 2, "batch"), torch.tensor([1.0, -1.0, 0.0, 0.0]) / (std + STD_EPS)
    )
    assert torch.allclose(
        group_advantages(r, 2, "batch", batch_std=torch.tensor(2.0)),
        torch.tensor([1.0, -1.0, 0.0, 0.0]) / (2 + STD_EPS),
    )
    with pytest.raises(ValueError, match="scale_rewards"):
        group_advantages(r, 2, "mean")


def test_a_group_of_equal_rewards_has_exactly_zero_advantages():
    """Seven copies of 0.1 do not average to 0.1 in float32; the advantages must still be
    0, not the rounding error over (std + eps)."""
    r = torch.full((7,), 0.1).repeat(2)
    r[7] = 0.7
    for scale in ("group", "batch", "none"):
        adv = group_advantages(r, 7, scale)
        assert torch.equal(adv[:7], torch.zeros(7)), scale
        assert (adv[7:] != 0).all()


# ---------------------------------------------------------------- surrogate, clipping, KL


def _loss(ratio: float, adv: float, **kw) -> float:
    logp = torch.tensor([[math.log(ratio)]])
    loss, _ = per_token_loss(
        logp, torch.zeros(1, 1), torch.tensor([adv]), torch.ones(1, 1, dtype=torch.bool), epsilon=0.2, **kw
    )
    return float(loss)


def test_unclipped_ratio_gives_minus_ratio_times_advantage():
    assert _loss(1.0, 2.0) == pytest.approx(-2.0)
    assert _loss(1.1, -1.0) == pytest.approx(1.1)


def test_clipping_is_pessimistic_on_both_sides():
    assert _loss(1.5, 1.0) == pytest.approx(-1.2)  # gain capped at 1 + eps
    assert _loss(0.5, 1.0) == pytest.approx(-0.5)  # a loss is never capped
    assert _loss(0.5, -1.0) == pytest.approx(0.8)  # capped at 1 - eps for A < 0
    assert _loss(1.5, -1.0) == pytest.approx(1.5)
    assert _loss(1.5, 1.0, epsilon_high=0.28) == pytest.approx(-1.28)  # asymmetric (DAPO)


def test_clip_ratio_counts_the_tokens_where_clipping_bit():
    logp = torch.log(torch.tensor([[1.5, 1.0, 0.5, 0.5]]))
    _, stats = per_token_loss(
        logp, torch.zeros(1, 4), torch.tensor([1.0]), torch.ones(1, 4, dtype=torch.bool), epsilon=0.2
    )
    assert float(stats["clip_ratio/high"]) == pytest.approx(0.25)
    assert float(stats["clip_ratio/low"]) == 0.0  # ratio < 1 - eps with A > 0 is not clipped


def test_sequence_level_importance_uses_the_mean_log_ratio_of_real_tokens():
    logp = torch.tensor([[math.log(1.1), math.log(1.3), 5.0]])
    mask = torch.tensor([[True, True, False]])
    loss, _ = per_token_loss(
        logp, torch.zeros(1, 3), torch.tensor([1.0]), mask, epsilon=0.5, importance_sampling_level="sequence"
    )
    ratio = math.exp((math.log(1.1) + math.log(1.3)) / 2)
    assert torch.allclose(loss[0, :2], torch.full((2,), -ratio))


def test_kl_k3_values_and_the_beta_term():
    assert float(kl_k3(torch.tensor(0.3), torch.tensor(0.3))) == 0.0
    assert float(kl_k3(torch.tensor(0.0), torch.tensor(math.log(2)))) == pytest.approx(1 - math.log(2))
    assert float(kl_k3(torch.tensor(math.log(2)), torch.tensor(0.0))) == pytest.approx(math.log(2) - 0.5)
    logp = torch.zeros(1, 1)
    loss, stats = per_token_loss(
        logp,
        logp,
        torch.tensor([0.0]),
        torch.ones(1, 1, dtype=torch.bool),
        epsilon=0.2,
        beta=0.5,
        ref_logp=torch.full((1, 1), math.log(2)),
    )
    assert float(loss) == pytest.approx(0.5 * (1 - math.log(2)))
    assert float(stats["kl"]) == pytest.approx(1 - math.log(2))
    with pytest.raises(ValueError, match="reference"):
        per_token_loss(
            logp, logp, torch.tensor([0.0]), torch.ones(1, 1, dtype=torch.bool), epsilon=0.2, beta=0.1
        )


# ---------------------------------------------------------------- loss reductions

LOSS = torch.tensor([[1.0, 2.0, 3.0], [4.0, 0.0, 0.0]])
MASK = torch.tensor([[True, True, True], [True, False, False]])


@pytest.mark.parametrize(
    ("loss_type", "expected", "kw"),
    [
        ("grpo", ((1 + 2 + 3) / 3 + 4 / 1) / 2, {}),
        ("bnpo", (1 + 2 + 3 + 4) / 4, {}),
        ("dr_grpo", (1 + 2 + 3 + 4) / (2 * 8), {}),
        ("dapo", (1 + 2 + 3 + 4) / 20, {"num_items_in_batch": 20}),
        ("dapo", (1 + 2 + 3 + 4) / 4, {}),
    ],
)
def test_loss_reductions(loss_type, expected, kw):
    got = reduce_loss(LOSS, MASK, loss_type, max_completion_length=8, **kw)
    assert float(got) == pytest.approx(expected)


def test_masked_tokens_never_count():
    poisoned = LOSS.clone()
    poisoned[1, 1:] = 1e6
    for loss_type in ("grpo", "bnpo", "dr_grpo", "dapo"):
        assert float(reduce_loss(poisoned, MASK, loss_type, max_completion_length=8)) == pytest.approx(
            float(reduce_loss(LOSS, MASK, loss_type, max_completion_length=8))
        )
    with pytest.raises(ValueError, match="loss_type"):
        reduce_loss(LOSS, MASK, "ppo", max_completion_length=8)


# ---------------------------------------------------------------- config


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"loss_type": "ppo"}, "loss_type must be one of"),
        ({"scale_rewards": "mean"}, "scale_rewards must be one of"),
        ({"importance_sampling_level": "word"}, "importance_sampling_level"),
        ({"num_generations": 1}, "at least 2"),
        ({"num_generations": 3}, "multiple of num_generations"),
    ],
)
def test_bad_config_names_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        GRPOConfig(**changes).validate()


# ---------------------------------------------------------------- the loop on a tiny model


class WordStage:
    """Reward 1 for each completion that starts with one of the letters `first`: a task a
    tiny random model hits now and then and can learn in a few steps, with no images."""

    name, prefix, progress_keys = "toy", "", ()

    def __init__(self, first: str = "abcdefgh", poison_at: int | None = None):
        self.first, self.poison_at = first, poison_at

    def batch(self, step: int, n: int) -> list[Prompt]:
        return [Prompt(f"is there a red circle ? {'yes' if (step + i) % 2 else 'no'}") for i in range(n)]

    def rewards(self, rollout: Rollout, step: int) -> dict[str, torch.Tensor]:
        r = torch.tensor([float(c[:1] in self.first and c[:1] != "") for c in rollout.completions])
        if step == self.poison_at:
            r[0] = float("nan")
        return {"hit": r}


class SplitOrUnanimousStage(WordStage):
    """Prompts ending in "yes" get rewards 0, 1, 0, 1, ... down their group (always split);
    those ending in "no" get 0.5 for every completion (always unanimous)."""

    def rewards(self, rollout: Rollout, step: int) -> dict[str, torch.Tensor]:
        return {"hit": torch.tensor([
            float(i % 2) if p.text.endswith("yes") else 0.5 for i, p in enumerate(rollout.prompts)
        ])}


def _model(seed: int = 0) -> MiniUMM:
    return MiniUMM.create(vocabulary_corpus(), TINY, seed=seed)


def _cfg(**kw) -> GRPOConfig:
    base = dict(
        num_generations=4,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        max_completion_length=4,
        learning_rate=3e-3,
        max_steps=3,
        save_steps=1,
    )
    return GRPOConfig(**{**base, **kw})


def test_steps_change_the_weights_and_log_the_metrics(tmp_path):
    model = _model()
    before = [p.detach().clone() for p in model.trainable_parameters()]
    engine = GRPOEngine(model, WordStage(), _cfg(beta=0.05), tmp_path)
    assert engine.ref is not None
    records = engine.train()
    after = model.trainable_parameters()
    assert any(not torch.equal(a, b) for a, b in zip(before, after, strict=True))
    for key in (
        "reward",
        "reward_std",
        "kl",
        "loss",
        "grad_norm",
        "completion_length",
        "rewards/hit",
        "clip_ratio/low",
        "frac_reward_zero_std",
    ):
        assert key in records[-1] and math.isfinite(records[-1][key]), key
    assert (tmp_path / "checkpoint" / "state.pt").exists()


def test_beta_zero_keeps_no_reference_model(tmp_path):
    assert GRPOEngine(_model(), WordStage(), _cfg(), tmp_path).ref is None


def test_rewarded_word_becomes_more_likely(tmp_path):
    """Twelve steps on a reward for the first letter lift the reward well above the start."""
    engine = GRPOEngine(
        _model(),
        WordStage(),
        _cfg(
            max_steps=12,
            learning_rate=3e-2,
            num_generations=8,
            per_device_train_batch_size=32,
            save_steps=100,
        ),
        tmp_path,
    )
    records = engine.train()
    start = sum(r["reward"] for r in records[:2]) / 2
    end = sum(r["reward"] for r in records[-2:]) / 2
    assert end > start + 0.3, (start, end)


def test_nan_reward_stops_the_step_and_leaves_the_weights(tmp_path):
    model = _model()
    engine = GRPOEngine(model, WordStage(poison_at=1), _cfg(), tmp_path)
    engine.step(0)
    weights = [p.detach().clone() for p in model.trainable_parameters()]
    with pytest.raises(FloatingPointError, match="step 1: reward is not finite"):
        engine.step(1)
    assert all(torch.equal(a, b) for a, b in zip(weights, model.trainable_parameters(), strict=True))


def test_truncated_completions_can_be_masked(tmp_path, monkeypatch):
    """With every completion cut at max_completion_length, masking leaves no token to learn
    from: the loss is zero and the weights do not move; unmasked, the same batch moves them."""
    for masked in (True, False):
        model = _model()
        monkeypatch.setattr(model, "eos_id", -1)  # no completion ever ends: all are truncated
        weights = [p.detach().clone() for p in model.trainable_parameters()]
        engine = GRPOEngine(
            model, WordStage(), _cfg(mask_truncated_completions=masked), tmp_path / str(masked)
        )
        record = engine.step(0)
        assert record["truncated"] == 1.0
        unchanged = all(torch.equal(a, b) for a, b in zip(weights, model.trainable_parameters(), strict=True))
        assert unchanged == masked
        if masked:
            assert record["loss"] == 0.0


@pytest.mark.parametrize(("use_lora", "dynamic_sampling_factor"), [(False, 1), (True, 1), (False, 2)])
def test_resume_after_a_kill_gives_the_same_metrics(tmp_path, use_lora, dynamic_sampling_factor):
    cfg = dict(max_steps=4, save_steps=2, use_lora=use_lora, loss_type="grpo", num_iterations=2,
               dynamic_sampling_factor=dynamic_sampling_factor)
    straight = GRPOEngine(_model(), WordStage(), _cfg(**cfg), tmp_path / "a").train()

    class Killed(Exception):
        pass

    first = GRPOEngine(_model(), WordStage(), _cfg(**cfg), tmp_path / "b")
    real_step = first.step

    def dies_at_step_3(step):
        if step == 3:
            raise Killed
        return real_step(step)

    first.step = dies_at_step_3
    with pytest.raises(Killed):
        first.train()
    second = GRPOEngine(
        _model(), WordStage(), _cfg(**cfg), tmp_path / "b", load_model=MiniUMM.from_pretrained
    )
    assert second.resume() == 2
    resumed = second.train()
    keys = ("reward", "loss", "grad_norm", "completion_length")
    assert [[r[k] for k in keys] for r in resumed] == [[r[k] for k in keys] for r in straight[2:]]


def _launch_two_processes(script: str, out) -> None:
    """Run tests/train/`script` in two CPU processes (gloo) under `accelerate launch`, with
    `out` as its argument; fails the test with the end of its stderr if it fails."""
    import os
    import subprocess
    import sys
    from pathlib import Path

    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    # --multi_gpu is accelerate's torchrun path; with no GPU the processes run on CPU over gloo.
    cmd = [
        sys.executable,
        "-m",
        "accelerate.commands.launch",
        "--multi_gpu",
        "--num_processes",
        "2",
        "--num_machines",
        "1",
        "--mixed_precision",
        "no",
        "--dynamo_backend",
        "no",
        str(Path(__file__).parent / script),
        str(out),
    ]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=600)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_processes_through_accelerate_launch_stay_in_step(tmp_path):
    """Two CPU processes (gloo): each samples its own prompts, gradients are summed, so the
    weights stay identical, and logged rewards cover both processes' completions."""
    import json

    _launch_two_processes("two_process_grpo.py", tmp_path)
    ranks = [json.loads((tmp_path / f"rank{k}.json").read_text()) for k in (0, 1)]
    assert [r["processes"] for r in ranks] == [2, 2]
    assert ranks[0]["sum"] == ranks[1]["sum"] and ranks[0]["norm"] == ranks[1]["norm"]
    assert ranks[0]["batches"] == ["0:4", "1:4"]  # each asks for both processes' prompts, takes its half
    assert ranks[0]["reward"] == ranks[1]["reward"]  # gathered over both processes


def test_sharded_parameters_train_as_the_replicated_ones(tmp_path):
    """Two CPU processes (gloo), `fsdp` on: the policy's parameters, gradients and AdamW
    state are sharded (FSDP2). The same steps give the same weights as the replicated run
    (full training with dapo; LoRA with grpo, two updates a step and a KL term), a resume
    from the sharded checkpoint continues exactly, and the checkpoint's model, gathered
    and written whole, loads."""
    import json

    _launch_two_processes("two_process_fsdp.py", tmp_path)
    report = json.loads((tmp_path / "fsdp.json").read_text())
    assert report["processes"] == 2
    for variant in ("full", "lora"):
        entry = report[variant]
        assert entry["moved"] > 1e-3, variant  # the steps did train
        assert entry["sharded_vs_plain"] < 1e-5, (variant, entry)
        assert entry["reward"][0] == entry["reward"][1], variant  # the same samples
        assert entry["resumed_from"] == 1 and entry["resumed_vs_sharded"] < 1e-6, (variant, entry)
        assert entry["saved_keys_equal"] and entry["saved_vs_plain"] < 1e-5, (variant, entry)


def _rows_scored(model) -> list[int]:
    """Wraps model.completion_logprobs to record how many rows each call scores."""
    calls, real = [], model.completion_logprobs

    def counted(prompts, *args, **kw):
        calls.append(len(prompts))
        return real(prompts, *args, **kw)

    model.completion_logprobs = counted
    return calls


def _every_row(logps, model, rollout, rows, active=None):
    return logps(model, rollout, rows)


@pytest.mark.parametrize("loss_type", ["dapo", "grpo", "bnpo", "dr_grpo"])
def test_unanimous_groups_are_skipped_with_the_same_update(tmp_path, loss_type):
    """Without a KL term, a unanimous group's completions are not run through the model,
    and the update is the one the full batch gives (its tokens still count in the loss's
    normaliser)."""
    cfg = _cfg(loss_type=loss_type, num_iterations=2, max_steps=1)  # 2 prompts: one split, one unanimous
    updated = []
    for skip in (True, False):
        model = _model()
        calls = _rows_scored(model)
        engine = GRPOEngine(model, SplitOrUnanimousStage(), cfg, tmp_path / str(skip))
        if not skip:
            engine._logps = functools.partial(_every_row, engine._logps)
        record = engine.step(0)
        assert record["frac_trained_zero_advantage"] == 0.5
        assert calls == ([4] * 3 if skip else [8] * 3)  # old log-probs, then two iterations
        updated.append([p.detach().clone() for p in model.trainable_parameters()])
    for a, b in zip(*updated, strict=True):
        assert torch.allclose(a, b, atol=1e-6)


def test_unanimous_groups_are_scored_when_the_kl_term_needs_them(tmp_path):
    model = _model()
    calls = _rows_scored(model)
    GRPOEngine(model, SplitOrUnanimousStage(), _cfg(beta=0.1), tmp_path).step(0)
    assert calls == [8, 8]  # the reference's log-probs, then the policy's: every row


def test_dynamic_sampling_trains_on_the_groups_that_differ(tmp_path):
    """Drawing twice the prompts, the step trains on the two split groups only, while the
    logged reward covers everything sampled."""
    model = _model()
    calls = _rows_scored(model)
    engine = GRPOEngine(model, SplitOrUnanimousStage(), _cfg(dynamic_sampling_factor=2), tmp_path)
    record = engine.step(0)
    assert record["frac_reward_zero_std"] == 0.5  # of the 4 groups drawn
    assert record["frac_trained_zero_advantage"] == 0.0  # of the 2 trained
    assert record["reward"] == pytest.approx((0.5 * 8 + 0.5 * 8) / 16)
    assert calls == [8]
    with pytest.raises(ConfigError, match="dynamic_sampling_factor"):
        _cfg(dynamic_sampling_factor=0).validate()
