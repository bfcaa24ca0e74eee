"""`seer data vie` end to end on a tiny random mini model."""

from __future__ import annotations

import json

import pytest
import torch

from seer.cli import main
from seer.data.mix import vocabulary_corpus
from seer.data.vie import SPLITS, load_items
from seer.models.mini.model import MiniConfig, MiniUMM

TINY = MiniConfig(image_size=64, hidden_size=32, num_layers=1, num_heads=2, codebook_size=16,
                  vq_channels=(32,), vq_unshuffle=8)
SMALL = ["--set", "n_train=2", "--set", "n_validation=1", "--set", "n_test_id=1", "--set", "n_test_ood=1",
         "--set", "require_margin=false", "--set", "difficulty_samples=1", "--set", "max_new_tokens=4",
         "--threads", "1"]


def _error_line(capsys) -> str:
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("seer: error: "), err
    return err[0]


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory):
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    path = tmp_path_factory.mktemp("vie-cli") / "tiny"
    MiniUMM.create(vocabulary_corpus(), TINY, seed=0).save_pretrained(path)
    yield path
    torch.set_num_threads(before)


def test_data_vie_writes_the_set(model_dir, tmp_path, capsys):
    out = tmp_path / "vie"
    assert main(["data", "vie", "--model", str(model_dir), "--out", str(out), "--seed", "4", *SMALL]) == 0
    printed = capsys.readouterr().out
    assert f"wrote {out}" in printed and "train" in printed
    config = json.loads((out / "config.json").read_text())
    assert config["seed"] == 4 and config["n_train"] == 2 and config["model"] == str(model_dir)
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["counts"]["train"] == {"samples": 2, "items": 8}
    for split in SPLITS:
        assert (out / "samples" / f"{split}.jsonl").is_file() and (out / "items" / f"{split}.jsonl").is_file()
    items = load_items(out, "train")
    assert all((out / p).is_file() for it in items for p in it["images"])
    assert all(it["pass_rate"] in (0.0, 1.0) for it in items)


def test_data_vie_user_jsonl(model_dir, tmp_path, capsys):
    source = tmp_path / "vie.jsonl"
    source.write_text(json.dumps({"prompt": "a red barn", "instruction": "make it spooky",
                                  "elaboration": "a red barn at night under a full moon", "split": "test_id"})
                      + "\n")
    out = tmp_path / "user"
    assert main(["data", "vie", "--model", str(model_dir), "--source", str(source), "--out", str(out),
                 *SMALL]) == 0
    assert json.loads((out / "manifest.json").read_text())["counts"]["test_id"] == {"samples": 1, "items": 4}


def test_data_vie_bad_jsonl_is_one_line(model_dir, tmp_path, capsys):
    source = tmp_path / "bad.jsonl"
    source.write_text('{"prompt": "a", "instruction": "b", "elaboration": "c"}\n'
                      '{"prompt": "a", "instruction": "", "elaboration": "c"}\n')
    out = tmp_path / "never"
    assert main(["data", "vie", "--model", str(model_dir), "--source", str(source), "--out", str(out)]) == 2
    line = _error_line(capsys)
    assert f"{source}:2: field 'instruction' must be a non-empty string" in line
    assert not out.exists()


def test_data_vie_unknown_key_is_one_line(tmp_path, capsys):
    assert main(["data", "vie", "--out", str(tmp_path / "r"), "--set", "n_trian=2"]) == 2
    assert "unknown config key 'n_trian'" in _error_line(capsys)
    assert not (tmp_path / "r").exists()


def test_data_vie_missing_model_is_one_line(tmp_path, capsys):
    assert main(["data", "vie", "--model", str(tmp_path / "none"), "--out", str(tmp_path / "r")]) == 2
    assert "no such model folder" in _error_line(capsys)
