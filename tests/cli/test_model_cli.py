"""`seer pretrain` and `seer generate` end to end on tiny settings."""

from __future__ import annotations

import json

import pytest
from PIL import Image

from seer.cli import main

TINY = [
    "--set",
    "model.image_size=64",
    "--set",
    "grounding_layer=0",
    "--set",
    "model.hidden_size=32",
    "--set",
    "model.num_layers=1",
    "--set",
    "model.num_heads=2",
    "--set",
    "model.codebook_size=16",
    "--set",
    "model.vq_channels=[32]",
    "--set",
    "model.vq_unshuffle=8",
    "--set",
    "vq_steps=4",
    "--set",
    "vq_scenes=40",
    "--set",
    "vq_batch_size=4",
    "--set",
    "steps=2",
    "--set",
    "batch_size=4",
    "--set",
    "checkpoint_every=1",
    "--set",
    "log_every=1",
]
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


def test_generate_no_reprompt_writes_the_plain_image(pretrained, tmp_path, capsys):
    out = tmp_path / "x.png"
    assert (
        main(
            [
                "generate",
                "--model",
                str(pretrained / "model"),
                "--prompt",
                PROMPT,
                "--no-reprompt",
                "--instruction",
                "make it look like night",
                "--out",
                str(out),
                "--scale",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert f"text: {PROMPT}, make it look like night" in printed
    with Image.open(out) as image:
        assert image.size == (128, 128)


def test_generate_reprompts_and_writes_both_images_side_by_side(pretrained, tmp_path, capsys):
    out = tmp_path / "pair.png"
    assert (
        main(
            [
                "generate",
                "--checkpoint",
                str(pretrained),
                "--prompt",
                PROMPT,
                "--instruction",
                "make it look like night",
                "--out",
                str(out),
                "--scale",
                "2",
            ]
        )
        == 0
    )
    printed = capsys.readouterr().out
    assert "reasoning:" in printed and "reprompt:" in printed
    with Image.open(out) as image:
        assert image.width > 2 * 128  # two labelled images


def test_generate_out_dir_writes_each_file_and_the_record(pretrained, tmp_path):
    out = tmp_path / "one"
    assert (
        main(
            [
                "generate",
                "--model",
                str(pretrained / "model"),
                "--prompt",
                PROMPT,
                "--seed",
                "3",
                "--instruction",
                "make it look like night",
                "--out-dir",
                str(out),
            ]
        )
        == 0
    )
    assert {p.name for p in out.iterdir()} == {
        "baseline.png",
        "reprompted.png",
        "side_by_side.png",
        "result.json",
    }
    record = json.loads((out / "result.json").read_text())
    assert record["prompt"] == PROMPT and record["seed"] == 3
    assert record["instruction"] == "make it look like night"
    assert {"reasoning", "reprompt", "baseline"} <= set(record)


def test_generate_batch_from_jsonl(pretrained, tmp_path, capsys):
    rows = tmp_path / "rows.jsonl"
    rows.write_text(
        json.dumps({"prompt": PROMPT, "instruction": "make it look like night"})
        + "\n\n"
        + json.dumps({"prompt": PROMPT, "seed": 7})
        + "\n"
    )
    out = tmp_path / "batch"
    assert (
        main(["generate", "--model", str(pretrained / "model"), "--batch", str(rows), "--out-dir", str(out)])
        == 0
    )
    assert (out / "0000" / "side_by_side.png").exists() and (out / "0001" / "result.json").exists()
    results = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert [r["seed"] for r in results] == [0, 7]
    rows.write_text(json.dumps({"prompt": PROMPT}) + "\n" + json.dumps({"instruction": "x"}) + "\n")
    assert (
        main(["generate", "--model", str(pretrained / "model"), "--batch", str(rows), "--out-dir", str(out)])
        == 2
    )
    assert "rows.jsonl:2: field 'prompt' must be a non-empty string" in _error_line(capsys)


def test_generate_is_seeded(pretrained, tmp_path):
    paths = [tmp_path / f"{k}.png" for k in range(2)]
    for path in paths:
        assert (
            main(
                [
                    "generate",
                    "--model",
                    str(pretrained / "model"),
                    "--prompt",
                    PROMPT,
                    "--seed",
                    "5",
                    "--instruction",
                    "make it look like night",
                    "--out",
                    str(path),
                ]
            )
            == 0
        )
    assert paths[0].read_bytes() == paths[1].read_bytes()


def test_generate_bad_model_folder_is_one_line(tmp_path, capsys):
    assert (
        main(
            [
                "generate",
                "--model",
                str(tmp_path / "none"),
                "--prompt",
                PROMPT,
                "--out",
                str(tmp_path / "x.png"),
            ]
        )
        == 2
    )
    assert "no such model folder" in _error_line(capsys)


def test_pretrain_unknown_config_key_is_one_line(tmp_path, capsys):
    assert main(["pretrain", "--out", str(tmp_path / "r"), "--set", "stepz=3"]) == 2
    assert "unknown config key 'stepz'" in _error_line(capsys)
    assert not (tmp_path / "r").exists()
