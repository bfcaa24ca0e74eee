"""`seer pretrain` and `seer generate` end to end on tiny settings."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from seer.cli import main

TINY = ["--set", "model.hidden_size=32", "--set", "model.num_layers=1", "--set", "model.num_heads=2",
        "--set", "model.codebook_size=16", "--set", "model.vq_channels=[32]", "--set", "model.vq_unshuffle=8",
        "--set", "vq_steps=4", "--set", "vq_scenes=40", "--set", "vq_batch_size=4", "--set", "steps=2",
        "--set", "batch_size=4", "--set", "checkpoint_every=1", "--set", "log_every=1"]
PROMPT = "a large red circle on the left, on a blue background"


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seer: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    out = tmp_path_factory.mktemp("cli") / "run"
    assert main(["pretrain", "--out", str(out), "--seed", "3", *TINY]) == 0
    return out


def test_pretrain_writes_model_config_and_log(pretrained):
    assert (pretrained / "model" / "mini.json").exists()
    config = json.loads((pretrained / "config.json").read_text())
    assert config["seed"] == 3 and config["model"]["hidden_size"] == 32
    phases = {json.loads(line)["phase"] for line in (pretrained / "log.jsonl").read_text().splitlines()}
    assert phases == {"vq", "vq_eval", "lm"}


def test_pretrain_resume_of_a_finished_run_keeps_the_model(pretrained, capsys):
    before = (pretrained / "model" / "lm" / "model.safetensors").read_bytes()
    assert main(["pretrain", "--out", str(pretrained), "--seed", "3", "--resume", *TINY]) == 0
    assert (pretrained / "model" / "lm" / "model.safetensors").read_bytes() == before


def test_generate_writes_an_image(pretrained, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert main(["generate", "--model", str(pretrained / "model"), "--prompt", PROMPT,
                 "--instruction", "make it look like night", "--out", str(out), "--scale", "2"]) == 0
    printed = capsys.readouterr().out
    assert f"text: {PROMPT}, make it look like night" in printed
    with Image.open(out) as image:
        assert image.size == (128, 128)


def test_generate_is_seeded(pretrained, tmp_path):
    paths = [tmp_path / f"{k}.png" for k in range(2)]
    for path in paths:
        assert main(["generate", "--model", str(pretrained / "model"), "--prompt", PROMPT, "--seed", "5",
                     "--out", str(path)]) == 0
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_generate_bad_model_folder_is_one_line(tmp_path, capsys):
    assert main(["generate", "--model", str(tmp_path / "none"), "--prompt", PROMPT,
                 "--out", str(tmp_path / "x.png")]) == 2
    assert "no such model folder" in _error_line(capsys)


def test_pretrain_unknown_config_key_is_one_line(tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "r"), "--set", "stepz=3"]) == 2
    assert "unknown config key 'stepz'" in _error_line(capsys)
    assert not (tmp_path / "r").exists()
