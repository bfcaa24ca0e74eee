"""Stage 1: rewards and the answer parser, the curriculum, and RLVR end to end on a tiny
random model (outputs, resume, the CLI)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from seer.cli import main
from seer.config import ConfigError
from seer.data.vie import load_items
from seer.eval.evaluator import accuracy_table
from seer.models.mini.model import MiniConfig, MiniUMM
from seer.rewards import TagFormat, accuracy_reward, format_reward, parse_tagged, yes_no
from seer.train.grpo import GRPOConfig
from seer.train.rlvr import RLVRConfig, RLVRStage, curriculum_buckets, run_rlvr

TINY = MiniConfig.tiny()


# ---------------------------------------------------------------- parser and rewards

GOOD = "<think> the first image fits </think> <answer> yes </answer>"


@pytest.mark.parametrize(
    ("text", "answer"),
    [
        (GOOD, "yes"),
        ("<think></think><answer>No</answer>", "no"),
        ("  <think> a\nb </think>\n<answer> YES. </answer> ", "yes"),
    ],
)
def test_well_formed_answers_parse(text, answer):
    assert parse_tagged(text) is not None
    assert yes_no(text) == answer


@pytest.mark.parametrize(
    "text",
    [
        "",  # empty
        "yes",  # no tags
        "<think> hmm </think>",  # no answer
        "<answer> yes </answer>",  # no reasoning block
        "<think> a </think> <answer> yes </answer> <answer> no </answer>",  # two answers
        "<think> a </think> <answer> yes no </answer>",  # both answers in one
        "<think> a </think> <answer> maybe </answer>",  # neither
        "<think> a <answer> yes </answer> </think> <answer> no </answer>",  # nested tags
        "<answer> yes </answer> <think> a </think>",  # wrong order
        "well <think> a </think> <answer> yes </answer>",  # text outside the tags
    ],
)
def test_malformed_completions_get_zero_accuracy_and_never_crash(text):
    assert yes_no(text) is None
    assert accuracy_reward([text], ["yes"]) == [0.0]
    assert accuracy_reward([text], ["no"]) == [0.0]


def test_format_and_accuracy_rewards():
    bad = "<think> a </think> <answer> maybe </answer>"
    assert format_reward([GOOD, "yes", bad]) == [1.0, 0.0, 1.0]  # the structure is right, the answer is not
    assert accuracy_reward([GOOD, GOOD, bad], ["yes", "No", "no"]) == [1.0, 0.0, 0.0]
    with pytest.raises(ValueError, match="2 completions but 1 labels"):
        accuracy_reward([GOOD, GOOD], ["yes"])


def test_tags_are_configurable():
    fmt = TagFormat("<reasoning>", "</reasoning>", "<final>", "</final>")
    assert yes_no("<reasoning> x </reasoning> <final> no </final>", fmt) == "no"
    assert yes_no(GOOD, fmt) is None


def test_accuracy_table_counts_orders_kinds_and_position_gap():
    items = [
        {"label": "yes", "kind": "instruction", "order": "positive_first"},
        {"label": "no", "kind": "instruction", "order": "negative_first"},
        {"label": "yes", "kind": "description", "order": "positive_first"},
        {"label": "no", "kind": "description", "order": "negative_first"},
    ]
    says_yes = "<think> x </think> <answer> yes </answer>"
    table = accuracy_table(items, [says_yes] * 4)  # an evaluator that always says yes
    assert table["accuracy"] == 0.5 and table["says_yes"] == 1.0 and table["format"] == 1.0
    assert table["accuracy/order/positive_first"] == 1.0 and table["accuracy/order/negative_first"] == 0.0
    assert table["position_bias_gap"] == 1.0
    assert table["accuracy/kind/instruction"] == 0.5


# ---------------------------------------------------------------- curriculum


def _items(n: int) -> list[dict]:
    return [
        {
            "id": f"i{k}",
            "question": "q",
            "images": [],
            "label": "yes",
            "order": "positive_first",
            "difficulty": k / n,
            "margin": 1 - k / n,
        }
        for k in range(n)
    ]


def test_buckets_go_from_easy_to_hard():
    items = _items(30)
    buckets = curriculum_buckets(items, "pass_rate", 3, seed=0)
    assert [len(b) for b in buckets] == [10, 10, 10]
    assert max(items[i]["difficulty"] for i in buckets[0]) < min(items[i]["difficulty"] for i in buckets[1])
    by_margin = curriculum_buckets(items, "margin", 3, seed=0)
    assert by_margin == buckets  # the same order here: a small margin is hard


def test_pool_grows_on_schedule_and_none_uses_everything():
    items = _items(30)
    grpo = GRPOConfig(max_steps=100)
    stage = RLVRStage(RLVRConfig(grpo=grpo, curriculum_schedule=[0.0, 0.25, 0.5], paired_orders=False),
                      items, lambda item: [])
    assert [len(stage.pool(s)) for s in (0, 24, 25, 49, 50, 99)] == [10, 10, 20, 20, 30, 30]
    easy = set(stage.pool(0))
    assert all(p.data["label"] == "yes" for p in stage.batch(0, 4))
    assert {items.index(next(i for i in items if i["id"] == items[k]["id"])) for k in easy} == easy
    flat = RLVRStage(RLVRConfig(grpo=grpo, curriculum="none", paired_orders=False), items, lambda item: [])
    assert len(flat.pool(0)) == 30
    assert [p.text for p in stage.batch(7, 4)] == [
        p.text for p in stage.batch(7, 4)
    ]  # a function of the step


def _paired_items(n_samples: int) -> list[dict]:
    return [
        {"id": f"s{k}-{kind}-{order}", "sample_id": f"s{k}", "kind": kind, "order": order,
         "question": f"{kind} {k}", "images": [], "label": "yes" if order == "positive_first" else "no",
         "margin": 1 - k / n_samples}
        for k in range(n_samples) for kind in ("instruction", "description")
        for order in ("positive_first", "negative_first")
    ]


def test_paired_orders_draw_each_item_with_its_twin():
    items = _paired_items(12)
    stage = RLVRStage(RLVRConfig(grpo=GRPOConfig(max_steps=10), difficulty="margin"), items, lambda item: [])
    for step in (0, 9):
        batch = stage.batch(step, 8)
        assert len(batch) == 8
        for first, second in zip(batch[::2], batch[1::2], strict=True):
            assert first.text == second.text  # the same sample and question kind
            assert {first.data["order"], second.data["order"]} == {"positive_first", "negative_first"}
            assert first.data["label"] != second.data["label"]


def test_paired_orders_never_draw_the_same_pair_twice_in_a_batch():
    stage = RLVRStage(RLVRConfig(grpo=GRPOConfig(max_steps=50), curriculum="none"), _paired_items(12),
                      lambda item: [])
    for step in range(50):
        texts = [p.text for p in stage.batch(step, 8)]
        assert len(set(texts)) == 4, (step, texts)


def test_paired_orders_need_both_orders_and_an_even_batch():
    items = _paired_items(3)[:-1]
    with pytest.raises(ValueError, match=r"sample s2 \(description\): paired_orders needs both image orders"):
        RLVRStage(RLVRConfig(difficulty="margin"), items, lambda item: [])
    odd = GRPOConfig(num_generations=4, per_device_train_batch_size=12, gradient_accumulation_steps=1)
    with pytest.raises(ConfigError, match="even number of prompts per step, got 3"):
        RLVRConfig(grpo=odd).validate()


def test_curriculum_needs_a_difficulty():
    items = _items(6)
    items[2]["difficulty"] = None
    with pytest.raises(ValueError, match="item i2: no difficulty score"):
        curriculum_buckets(items, "pass_rate", 3, seed=0)
    items[3]["margin"] = None
    with pytest.raises(ValueError, match="item i3: no ground-truth margin"):
        curriculum_buckets(items, "margin", 3, seed=0)


@pytest.mark.parametrize(
    ("changes", "message"),
    [
        ({"curriculum": "hard_first"}, "curriculum must be one of"),
        ({"curriculum_schedule": [0.0, 0.5]}, "one start fraction per bucket"),
        ({"curriculum_schedule": [0.1, 0.5, 0.9]}, "the first 0"),
    ],
)
def test_bad_rlvr_config_names_the_key(changes, message):
    with pytest.raises(ConfigError, match=message):
        RLVRConfig(**changes).validate()


# ---------------------------------------------------------------- end to end on a tiny model


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny_vie(tmp_path_factory, make_tiny_vie) -> tuple[Path, Path]:
    return make_tiny_vie(tmp_path_factory.mktemp("rlvr"), n_train=4, difficulty_samples=2)


def _rlvr(model: Path, vie: Path, out: Path, **grpo) -> RLVRConfig:
    base = dict(
        num_generations=4,
        per_device_train_batch_size=8,
        gradient_accumulation_steps=1,
        max_completion_length=6,
        max_steps=3,
        save_steps=1,
        learning_rate=1e-3,
    )
    return RLVRConfig(out=str(out), vie=str(vie), model=str(model), grpo=GRPOConfig(**{**base, **grpo}))


def test_rlvr_writes_model_metrics_logs_and_resumes(tiny_vie, tmp_path):
    model, vie = tiny_vie
    metrics = run_rlvr(_rlvr(model, vie, tmp_path / "a"))
    for tag in ("before", "after"):
        assert set(metrics[tag]) == {"test_id", "test_ood"}
        assert metrics[tag]["test_id"]["n"] == len(load_items(vie, "test_id"))
    assert metrics["train"]["steps_run"] == 3
    out = tmp_path / "a"
    assert MiniUMM.from_pretrained(out / "model") is not None
    assert json.loads((out / "metrics.json").read_text())["after"] == metrics["after"]
    assert json.loads((out / "config.json").read_text())["grpo"]["max_steps"] == 3
    log = [json.loads(line) for line in (out / "log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [1, 2, 3]
    assert {"reward", "accuracy", "format", "rewards/format", "rewards/accuracy"} <= set(log[0])

    # A longer run resumed from the 3-step one continues at step 4 and logs steps 4-5.
    resumed = run_rlvr(_rlvr(model, vie, out, max_steps=5), resume=True)
    assert resumed["train"]["steps_run"] == 2
    assert [json.loads(line)["step"] for line in (out / "log.jsonl").read_text().splitlines()] == [
        1,
        2,
        3,
        4,
        5,
    ]


def test_rlvr_and_eval_cli(tiny_vie, tmp_path, capsys):
    model, vie = tiny_vie
    out = tmp_path / "cli"
    code = main(
        [
            "train",
            "rlvr",
            "--vie",
            str(vie),
            "--model",
            str(model),
            "--out",
            str(out),
            "--curriculum",
            "none",
            "--set",
            "grpo.max_steps=1",
            "--set",
            "grpo.num_generations=4",
            "--set",
            "eval_before=false",
            "--set",
            "grpo.per_device_train_batch_size=8",
            "--set",
            "grpo.gradient_accumulation_steps=1",
            "--set",
            "grpo.max_completion_length=4",
        ]
    )
    assert code == 0
    printed = capsys.readouterr().out
    assert "after  test_id" in printed and "wrote" in printed
    assert "before" not in json.loads((out / "metrics.json").read_text())

    report = tmp_path / "eval"
    assert main(["eval", "--evaluator", str(out / "model"), "--vie", str(vie), "--splits", "test_ood",
                 "--sections", "evaluator", "--set", f"base={model}", "--out", str(report)]) == 0
    accuracy = json.loads((report / "metrics.json").read_text())["evaluator_accuracy"]
    assert set(accuracy) == {"before", "after"} and set(accuracy["after"]) == {"test_ood"}
    assert (report / "evaluator.csv").exists()
    capsys.readouterr()

    assert (
        main(
            [
                "train",
                "rlvr",
                "--vie",
                str(tmp_path / "nowhere"),
                "--model",
                str(model),
                "--out",
                str(tmp_path / "x"),
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip()
    assert err.startswith("seer: error:") and "nowhere" in err and "\n" not in err
    assert (
        main(
            ["train", "rlvr", "--vie", str(vie), "--set", "grpo.loss_type=ppo", "--out", str(tmp_path / "y")]
        )
        == 2
    )
    assert "loss_type must be one of" in capsys.readouterr().err
