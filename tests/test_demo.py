"""`seer demo` end to end with reduced settings on a tiny random model: every stage runs,
the folder has what the docs promise, `seer generate --checkpoint` works on it afterwards,
and `--resume` skips finished stages."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from PIL import Image

from seer.cli import main
from seer.data.mix import vocabulary_corpus
from seer.models.mini.model import MiniConfig, MiniUMM

TINY = MiniConfig.tiny()
ROOT = Path(__file__).resolve().parents[1]
GRPO = ["num_generations=4", "per_device_train_batch_size=8", "gradient_accumulation_steps=1",
        "max_steps=2", "save_steps=1"]
REDUCED = [
    "vie.n_train=4", "vie.n_test_id=2", "vie.n_test_ood=2", "vie.require_margin=false", "vie.batch_size=8",
    *(f"rlvr.grpo.{g}" for g in GRPO), "rlvr.grpo.max_completion_length=6", "rlvr.difficulty=pass_rate",
    "rlvr.curriculum=none",
    *(f"rlmt.grpo.{g}" for g in GRPO), "rlmt.grpo.max_completion_length=8", "rlmt.max_reasoning_tokens=3",
    "eval.retention_items=4", "eval.examples=1", "eval.max_new_tokens=8", "eval.evaluator_items=4",
]


pytestmark = pytest.mark.usefixtures("one_thread")


def _script(name: str):
    """A module from scripts/ (not a package), loaded from its file."""
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_demo_runs_every_stage_and_resumes(tmp_path, capsys):
    model = tmp_path / "model"
    MiniUMM.create(vocabulary_corpus(), TINY, seed=0).save_pretrained(model)
    out = tmp_path / "demo"
    args = ["demo", "--model", str(model), "--out", str(out), *[x for s in REDUCED for x in ("--set", s)]]
    assert main(args) == 0
    printed = capsys.readouterr().out
    assert "Evaluator on" in printed and "report:" in printed
    for path in ("metrics.json", "report.html", "demo.json", "generation.csv", "vie/manifest.json",
                 "checkpoints/rlvr/model/mini.json", "checkpoints/rlmt/model/mini.json",
                 "checkpoints/rlvr/log.jsonl", "checkpoints/rlmt/log.jsonl"):
        assert (out / path).exists(), path
    metrics = json.loads((out / "metrics.json").read_text())
    assert {"evaluator_accuracy", "generation", "failure_modes", "efficiency", "retention"} <= set(metrics)
    config = json.loads((out / "demo.json").read_text())
    assert config["rlmt"]["evaluator"] == str(out / "checkpoints" / "rlvr" / "model")

    assert main(["generate", "--checkpoint", str(out / "checkpoints" / "rlmt"), "--prompt",
                 "a small red circle in the center, on a white background", "--instruction",
                 "make it look like night", "--out", str(tmp_path / "g.png")]) == 0
    assert (tmp_path / "g.png").exists()

    capsys.readouterr()
    assert main(args) == 2  # a finished demo folder is not overwritten by accident
    assert "pass --resume" in capsys.readouterr().err
    report_before = Path(out / "report.html").stat().st_mtime_ns
    assert main([*args, "--resume"]) == 0
    printed = capsys.readouterr().out
    assert printed.count("already done, skipped") == 4  # VIE, RLVR, RLMT, eval; the report is redrawn
    assert Path(out / "report.html").stat().st_mtime_ns >= report_before

    # The README's demo section is regenerated from the folder, between its markers.
    script = _script("readme_demo")
    readme = tmp_path / "README.md"
    readme.write_text(f"# x\n\n{script.START}\nold\n{script.END}\n\nafter\n")
    image = tmp_path / "demo.png"
    assert script.main([str(out), "--readme", str(readme), "--image", str(image)]) == 0
    text = readme.read_text()
    assert "old" not in text and text.endswith(f"{script.END}\n\nafter\n")
    assert "| evaluator (held-out pairs) |" in text and "| SEER policy (after RLMT) |" in text
    assert Image.open(image).size[0] > 3 * 64

    # CI's check of a full demo folder: every output there; a gain it cannot have is named.
    checker = _script("check_demo")
    assert checker.check(out, min_gain=-1.0) == []
    assert any("is not 2.00 above the base's" in p for p in checker.check(out, min_gain=2.0))
    (out / "report.html").unlink()
    assert checker.check(out, min_gain=-1.0) == [f"{out / 'report.html'}: missing"]
