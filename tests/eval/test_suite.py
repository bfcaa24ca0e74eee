"""`seer eval`: baselines, failure-mode rates on hand-made cases, and the whole suite on a
tiny random model (schema, CSV tables, examples)."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from seer.cli import main
from seer.eval.baselines import rule_based, texts_for
from seer.eval.llm_rewriter import unavailable_reason
from seer.eval.suite import SCHEMA, EvalConfig, failure_modes, run_eval
from seer.models.mini.model import MiniConfig

TINY = MiniConfig.tiny()
PROMPT = "a small red circle in the center, on a white background"


def test_rule_based_rewriter_turns_literal_words_into_phrases_and_drops_the_rest():
    assert rule_based(PROMPT, "let the sun shine on it") == f"{PROMPT}, with a sun"
    assert rule_based(PROMPT, "make it look like night") == PROMPT
    assert rule_based(PROMPT, "make the background black and snowy") == (
        "a small red circle in the center, on a black background, with snow"
    )
    sample = {"prompt": PROMPT, "instruction": "make it sunny", "elaboration": "e"}
    assert texts_for("baseline", [sample]) == [f"{PROMPT}, make it sunny"]
    assert texts_for("plain", [sample]) == [PROMPT] and texts_for("oracle", [sample]) == ["e"]
    with pytest.raises(ValueError, match="unknown baseline 'gpt'"):
        texts_for("gpt", [sample])


def _sample(instruction: str) -> dict:
    return {"prompt": PROMPT, "instruction": instruction}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # The oracle: the background and the moon, nothing else, nothing lost.
        ("a small red circle in the center, on a navy background, with a moon", (0, 0, 0)),
        # Laziness: "night" repeated instead of spelled out (and so not a descriptor either).
        (f"{PROMPT}, night", (1, 0, 1)),
        # Hallucination: snow, which neither the prompt nor "night" asked for.
        ("a small red circle in the center, on a navy background, with a moon, with snow", (0, 1, 0)),
        # Omission: the circle became a square.
        ("a small red square in the center, on a navy background, with a moon", (0, 0, 1)),
        # An extra object is a hallucination too.
        (
            "a small red circle in the center, a large blue square on the left, on a navy background, "
            "with a moon",
            (0, 1, 0),
        ),
    ],
)
def test_failure_modes_on_hand_made_reprompts(text, expected):
    rates = failure_modes([_sample("make it look like night")], [text])
    assert (rates["laziness"], rates["hallucination"], rates["omission"]) == expected


pytestmark = pytest.mark.usefixtures("one_thread")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory, make_tiny_vie) -> tuple[Path, Path]:
    return make_tiny_vie(tmp_path_factory.mktemp("eval"), n_train=1, n_test_id=3)


def test_eval_writes_every_section_and_the_tables(tiny, tmp_path):
    model, vie = tiny
    cfg = EvalConfig(
        out=str(tmp_path / "e"),
        checkpoint=str(model),
        evaluator=str(model),
        base=str(model),
        policy_before=str(model),
        vie=str(vie),
        retention_items=4,
        examples=2,
        max_new_tokens=8,
        logs={"rlmt": "checkpoints/rlmt/log.jsonl"},
    )
    metrics = run_eval(cfg)
    saved = json.loads((tmp_path / "e" / "metrics.json").read_text())
    assert saved["schema"] == SCHEMA and saved["logs"] == {"rlmt": "checkpoints/rlmt/log.jsonl"}
    methods = {"plain", "baseline", "rule_based", "oracle", "policy_before", "policy_after"}
    # The external LLM rewriter joins every table where its extra is installed (CI installs it).
    llm = unavailable_reason() is None
    methods |= {"llm"} if llm else set()
    assert metrics["llm_rewriter"].startswith("unavailable: ") != llm
    assert set(metrics["generation"]["test_id"]) == methods
    assert metrics["generation"]["test_id"]["oracle"]["all"]["n"] == 3
    assert set(metrics["evaluator_accuracy"]["after"]) == {"test_id", "test_ood"}
    assert set(metrics["failure_modes"]["test_ood"]["policy_after"]) == {
        "laziness",
        "hallucination",
        "omission",
    }
    assert {"gain", "gain_per_100_tokens", "seconds"} <= set(metrics["efficiency"]["test_id"]["policy_after"])
    assert set(metrics["efficiency"]["test_id"]) == methods - {"plain", "baseline"}
    assert set(metrics["failure_modes"]["test_id"]) == methods - {"plain"}
    assert {"attribute_questions", "concept_questions", "perplexity"} <= set(metrics["retention"]["after"])
    assert len(metrics["examples"]) == 4
    for example in metrics["examples"]:
        assert all((tmp_path / "e" / rel).exists() for rel in example["images"].values())
    with open(tmp_path / "e" / "generation.csv") as f:
        rows = list(csv.DictReader(f))
    assert {r["method"] for r in rows} == methods


def test_eval_cli_bad_section_is_one_line(tiny, tmp_path, capsys):
    model, vie = tiny
    assert (
        main(
            [
                "eval",
                "--vie",
                str(vie),
                "--checkpoint",
                str(model),
                "--out",
                str(tmp_path / "x"),
                "--set",
                "sections=[speed]",
            ]
        )
        == 2
    )
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "unknown section 'speed'" in err[0]
