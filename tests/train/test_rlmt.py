"""Stage 2: the reprompt parser, the order-averaged reward, the reference-image cache (renders
counted), and RLMT end to end on a tiny random model."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from seer.data.formats import parse_reprompt
from seer.data.vie import load_samples
from seer.models.mini.model import MiniConfig, MiniUMM
from seer.rewards import order_averaged, pearson
from seer.rollout import ImageCache, Rollout
from seer.train.grpo import GRPOConfig
from seer.train.rlmt import RLMTConfig, RLMTStage, run_rlmt

TINY = MiniConfig.tiny()


# ---------------------------------------------------------------- parser and reward math


@pytest.mark.parametrize(
    ("text", "reasoning", "reprompt", "error"),
    [
        (
            "<think> night means dark </think> <answer> a red circle at night </answer>",
            "night means dark",
            "a red circle at night",
            None,
        ),
        ("<think></think><answer> a red circle </answer>", "", "a red circle", None),
        ("<think> x </think> <answer> </answer>", "x", "", "the reprompt is empty"),
        ("a red circle at night", "", "", "no '<think>' tag"),
        ("<think> x </think> a red circle", "", "", "no '<answer>' tag"),
        ("<think> x </think> <answer> a </answer> <answer> b </answer>", "", "", "2 '<answer>' tags"),
        ("<answer> a </answer> <think> x </think>", "", "", "tags out of order or text outside them"),
    ],
)
def test_reprompt_parser(text, reasoning, reprompt, error):
    got = parse_reprompt(text)
    assert (got.reasoning, got.reprompt, got.error) == (reasoning, reprompt, error)
    assert got.ok == (error is None)


def test_order_averaging_cancels_a_position_bias():
    # An evaluator that says yes 0.9 of the time whatever it sees: the policy-first order
    # alone reads a strong preference; averaged with the swapped order it reads none.
    p_first, p_second = torch.tensor([0.9]), torch.tensor([0.9])
    assert float(order_averaged(p_first, p_second)) == pytest.approx(0.5)
    assert float(order_averaged(torch.tensor([0.8]), torch.tensor([0.3]))) == pytest.approx(0.75)


def test_pearson():
    assert pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([2.0, 4.0, 6.0])) == pytest.approx(1.0)
    assert pearson(torch.tensor([1.0, 2.0, 3.0]), torch.tensor([3.0, 2.0, 1.0])) == pytest.approx(-1.0)
    assert pearson(torch.tensor([1.0, 1.0]), torch.tensor([0.0, 1.0])) == 0.0


class CountingGenerator:
    def __init__(self):
        self.calls: list[list[str]] = []

    def generate_images(self, texts, *, guidance_scale=None, temperature=1.0, seed=0):
        from PIL import Image

        self.calls.append(list(texts))
        seeds = seed if isinstance(seed, list) else [seed + i for i in range(len(texts))]
        return [Image.new("RGB", (4, 4), (s % 256, len(t), 0)) for t, s in zip(texts, seeds, strict=True)]


def test_image_cache_renders_each_text_and_seed_once():
    gen = CountingGenerator()
    cache = ImageCache(gen)
    first = cache.get(["a", "a", "b"], [1, 1, 1])
    assert cache.renders == 2 and gen.calls == [["a", "b"]]
    again = cache.get(["b", "a", "a"], [1, 1, 2])
    assert cache.renders == 3 and gen.calls[-1] == ["a"]  # only ("a", 2) is new
    assert again[0] is first[2] and again[1] is first[0]


# ---------------------------------------------------------------- end to end on a tiny model


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_vie) -> tuple[Path, Path]:
    return make_tiny_vie(tmp_path_factory.mktemp("rlmt"))


def _cfg(model: Path, vie: Path, out: Path, **kw) -> RLMTConfig:
    grpo = GRPOConfig(
        num_generations=4,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        max_completion_length=8,
        max_steps=2,
        save_steps=1,
        learning_rate=1e-3,
        beta=0.02,
    )
    return RLMTConfig(
        out=str(out), vie=str(vie), evaluator=str(model), grpo=grpo, max_reasoning_tokens=4, **kw
    )


def test_reference_images_render_once_per_prompt(tiny, tmp_path):
    """G completions of a prompt share one reference render; policy renders are one per
    readable completion. Completions are forced readable here to count them."""
    model, vie = tiny
    judge = MiniUMM.from_pretrained(model).eval()
    samples = load_samples(vie, "train")
    stage = RLMTStage(_cfg(model, vie, tmp_path), samples, judge, world=True)
    prompts = stage.batch(0, 2)
    g = 3
    rows = [p for p in prompts for _ in range(g)]
    good = "<think> x </think> <answer> a small red circle in the center , on a white background </answer>"
    other = "<think> y </think> <answer> a blue square at the top left , on a white background </answer>"
    completions = [other] + [good] * (len(rows) - 2) + ["no tags at all"]
    from seer.models.interface import TextSamples

    rollout = Rollout(
        rows,
        TextSamples(
            completions, [torch.zeros(1)] * len(rows), [torch.zeros(1)] * len(rows), [False] * len(rows)
        ),
    )
    parts = stage.rewards(rollout, 0)
    assert stage.cache.renders == len(
        {p.data["sample"]["id"] for p in prompts}
    )  # one per prompt, not per completion
    # One render per distinct (reprompt, sample) of the readable completions: a group's
    # copies of `good` share one image, `other` gets its own; the unreadable one gets none.
    assert stage.policy_renders == len({p.data["sample"]["id"] for p in rows[:-1]}) + 1
    assert parts["endogenous"][1] == parts["endogenous"][2]
    assert parts["metric/gt_satisfaction"][1] == parts["metric/gt_satisfaction"][2]
    assert parts["endogenous"][-1] == 0.0 and parts["format"][-1] == 0.0
    assert ((parts["endogenous"][:-1] >= 0) & (parts["endogenous"][:-1] <= 1)).all()
    stage.rewards(rollout, 1)  # the same prompts again: no new reference render
    assert stage.cache.renders == len({p.data["sample"]["id"] for p in prompts})


def test_single_order_reward_is_p_yes_policy_first(tiny, tmp_path):
    model, vie = tiny
    judge = MiniUMM.from_pretrained(model).eval()
    stage = RLMTStage(_cfg(model, vie, tmp_path, order="policy_first"), load_samples(vie, "train"), judge)
    prompts = stage.batch(0, 2)
    good = "<think> x </think> <answer> a small red circle in the center , on a white background </answer>"
    from seer.models.interface import TextSamples

    rollout = Rollout(
        prompts, TextSamples([good] * 2, [torch.zeros(1)] * 2, [torch.zeros(1)] * 2, [False] * 2)
    )
    parts = stage.rewards(rollout, 0)
    assert torch.allclose(parts["endogenous"], parts["metric/p_policy_first"])


def test_ground_truth_reward_is_the_analyzers_satisfaction_without_the_evaluator(tiny, tmp_path, monkeypatch):
    """The ablation's reward is the analyzer's satisfaction of the policy image (rendered with
    the sample's seed); the evaluator is never asked and no reference image is drawn."""
    from seer.models.interface import TextSamples
    from seer.rollout import sample_seed
    from seer.world.analyzer import analyze_scene
    from seer.world.instructions import load_instructions

    model, vie = tiny
    judge = MiniUMM.from_pretrained(model).eval()
    cfg = _cfg(model, vie, tmp_path, reward="ground_truth")
    stage = RLMTStage(cfg, load_samples(vie, "train"), judge)
    monkeypatch.setattr("seer.train.rlmt.judge_p_yes", lambda *a, **k: pytest.fail("the evaluator was asked"))
    prompts = stage.batch(0, 2)
    good = "<think> x </think> <answer> a small red circle in the center , on a navy background </answer>"
    zeros = [torch.zeros(1)] * 2
    rollout = Rollout(prompts, TextSamples([good, "no tags at all"], zeros, zeros, [False] * 2))
    parts = stage.rewards(rollout, 0)
    assert "endogenous" not in parts and "metric/p_policy_first" not in parts and stage.cache.renders == 0
    sample = prompts[0].data["sample"]
    image = judge.generate_images([parse_reprompt(good).reprompt], seed=[sample_seed(cfg.seed, sample)])[0]
    expected = load_instructions().by_text(sample["instruction"]).satisfaction(analyze_scene(image))
    assert parts["ground_truth"][0].item() == pytest.approx(expected)
    assert parts["ground_truth"][1] == 0.0  # unreadable: no render, no reward


def test_ground_truth_reward_is_refused_without_a_world_and_unknown_rewards_are_errors(tiny, tmp_path):
    from seer.config import ConfigError

    model, vie = tiny
    with pytest.raises(ConfigError, match="reward must be one of"):
        _cfg(model, vie, tmp_path, reward="oracle").validate()
    with pytest.raises(ConfigError, match="shapes-world VIE set"):
        cfg = _cfg(model, vie, tmp_path, reward="ground_truth")
        RLMTStage(cfg, load_samples(vie, "train"), None, world=False)


def test_rlmt_end_to_end_writes_model_metrics_and_watch(tiny, tmp_path):
    model, vie = tiny
    out = tmp_path / "run"
    metrics = run_rlmt(_cfg(model, vie, out))
    assert MiniUMM.from_pretrained(out / "model") is not None
    quality = metrics["quality"]["test_id"]
    assert {"baseline", "oracle", "policy_before", "policy_after"} <= set(quality)
    assert 0.0 <= quality["oracle"]["all"]["satisfaction"] <= 1.0
    assert metrics["train"]["steps_run"] == 2
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    for key in (
        "reward",
        "kl",
        "gt_satisfaction",
        "reward_gt_correlation",
        "reprompt_words",
        "p_policy_first",
    ):
        assert key in log[-1], key
    assert json.loads((out / "config.json").read_text())["order"] == "both"


def test_rlmt_cli(tiny, tmp_path, capsys):
    from seer.cli import main

    model, vie = tiny
    out = tmp_path / "cli"
    args = [
        "train",
        "rlmt",
        "--vie",
        str(vie),
        "--evaluator",
        str(model),
        "--out",
        str(out),
        "--order",
        "policy_first",
        "--set",
        "grpo.max_steps=1",
        "--set",
        "grpo.num_generations=4",
        "--set",
        "grpo.per_device_train_batch_size=8",
        "--set",
        "grpo.gradient_accumulation_steps=1",
        "--set",
        "grpo.max_completion_length=6",
        "--set",
        "eval_samples=1",
        "--set",
        "max_reasoning_tokens=3",
    ]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "policy_after" in printed and "s/step" in printed
    assert json.loads((out / "config.json").read_text())["order"] == "policy_first"
    assert (
        main(
            [
                "generate",
                "--checkpoint",
                str(out),
                "--prompt",
                "a red circle in the center, on a white background",
                "--instruction",
                "make it look like night",
                "--out",
                str(tmp_path / "g.png"),
            ]
        )
        == 0
    )
    assert (tmp_path / "g.png").exists()
    capsys.readouterr()
    assert (
        main(["train", "rlmt", "--vie", str(vie), "--evaluator", str(tmp_path / "none"), "--out", str(out)])
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "none" in err[0]
