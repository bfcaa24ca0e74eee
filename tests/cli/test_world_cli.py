"""`seer world ...` end to end: through seer.cli.main and through the console script."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from seer.cli import main
from seer.world.analyzer import analyze_scene
from seer.world.descriptors import describe, parse
from seer.world.instructions import load_instructions

TEXT = "a large red circle on the left and a small blue cross at the top right, on a gray background"
NIGHT = "make it look like night"


def _render(tmp_path: Path, text: str = TEXT, name: str = "x.png", *extra: str) -> Path:
    out = tmp_path / name
    assert main(["world", "render", "--text", text, "--out", str(out), *extra]) == 0
    return out


def _one_line_error(capsys, expected: str) -> str:
    captured = capsys.readouterr()
    lines = captured.err.splitlines()
    assert len(lines) == 1, captured.err
    assert lines[0].startswith("seer: error: "), lines[0]
    assert expected in lines[0], lines[0]
    return lines[0]


# ---------------------------------------------------------------- render

def test_render_writes_a_png_that_shows_the_scene(tmp_path, capsys):
    out = _render(tmp_path)
    assert f"wrote {out}" in capsys.readouterr().out
    with Image.open(out) as image:
        assert image.format == "PNG" and image.size == (64, 64)
        assert analyze_scene(image) == parse(TEXT)


@pytest.mark.parametrize(("extra", "side"), [(["--scale", "3"], 192), (["--size", "96"], 96),
                                             (["--size", "96", "--scale", "2"], 192)])
def test_render_size_and_scale(tmp_path, extra, side):
    out = _render(tmp_path, TEXT, "x.png", *extra)
    with Image.open(out) as image:
        assert image.size == (side, side)


def test_render_scale_is_nearest_neighbour(tmp_path):
    small, big = _render(tmp_path, TEXT, "a.png"), _render(tmp_path, TEXT, "b.png", "--scale", "2")
    with Image.open(small) as a, Image.open(big) as b:
        assert a.resize((128, 128), Image.NEAREST).tobytes() == b.convert("RGB").tobytes()


def test_render_creates_missing_folders(tmp_path):
    assert _render(tmp_path, TEXT, "deep/er/x.png").is_file()


def test_render_unknown_word_exits_2_with_one_line(tmp_path, capsys):
    out = tmp_path / "x.png"
    rc = main(["world", "render", "--text", TEXT + ", with a unicorn", "--out", str(out)])
    assert rc == 2
    _one_line_error(capsys, "unknown word 'unicorn'")
    assert not out.exists()


def test_render_unknown_colour_exits_2(tmp_path, capsys):
    rc = main(["world", "render", "--text", TEXT.replace("red", "teal"), "--out", str(tmp_path / "x.png")])
    assert rc == 2
    _one_line_error(capsys, "unknown color 'teal'")


def test_missing_required_option_is_an_argparse_error(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["world", "render", "--out", str(tmp_path / "x.png")])
    assert exit_.value.code == 2
    assert "--text" in capsys.readouterr().err


# ---------------------------------------------------------------- sample

def test_sample_writes_a_grid_and_prints_the_descriptors(tmp_path, capsys):
    out = tmp_path / "grid.png"
    assert main(["world", "sample", "--n", "4", "--out", str(out), "--seed", "3"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines[-1] == f"wrote {out}"
    rows = lines[:-1]
    assert len(rows) == 4
    for k, row in enumerate(rows):
        index, text = row.split(maxsplit=1)
        assert int(index) == k
        assert describe(parse(text)) == text
    with Image.open(out) as grid:
        # Four 64 px scenes enlarged 3x in one row of four, with captions below.
        assert grid.width == 4 * (3 * 64 + 8) + 8
        assert grid.height > 3 * 64


def test_sample_is_deterministic_and_plain_means_no_globals(tmp_path, capsys):
    args = ["world", "sample", "--n", "5", "--seed", "11", "--cols", "2", "--plain"]
    assert main([*args, "--out", str(tmp_path / "a.png")]) == 0
    first = capsys.readouterr().out.splitlines()[:-1]
    assert main([*args, "--out", str(tmp_path / "b.png")]) == 0
    second = capsys.readouterr().out.splitlines()[:-1]
    assert first == second and len(first) == 5
    for row in first:
        scene = parse(row.split(maxsplit=1)[1])
        assert scene == scene.replace(sky="none", weather="clear", decoration="none", style="plain")
    with Image.open(tmp_path / "a.png") as a, Image.open(tmp_path / "b.png") as b:
        assert a.tobytes() == b.tobytes()
        assert a.width == 2 * (3 * 64 + 8) + 8  # two columns, three rows


def test_sample_refuses_n_below_one(tmp_path, capsys):
    assert main(["world", "sample", "--n", "0", "--out", str(tmp_path / "g.png")]) == 2
    _one_line_error(capsys, "--n must be at least 1, got 0")


# ---------------------------------------------------------------- score

def _score(capsys, *args: str) -> dict:
    capsys.readouterr()
    assert main(["world", "score", *args]) == 0
    return json.loads(capsys.readouterr().out)


def test_score_of_a_rendered_image(tmp_path, capsys):
    image = _render(tmp_path)
    result = _score(capsys, "--image", str(image), "--text", TEXT)
    assert result == {"prompt_fidelity": 1.0, "exact_match": True,
                      "observed": describe(parse(TEXT)), "target": describe(parse(TEXT))}


def test_score_with_an_instruction(tmp_path, capsys):
    night = load_instructions().by_text(NIGHT)
    oracle, oracle_text = night.elaborate(parse(TEXT))

    plain = _score(capsys, "--image", str(_render(tmp_path)), "--text", TEXT, "--instruction", NIGHT)
    assert plain["instruction"] == NIGHT
    assert plain["instruction_satisfaction"] == 0.0
    assert plain["clauses_met"] == {"background": False, "sky": False}
    assert plain["exact_match"] is False
    assert plain["target"] == oracle_text
    assert plain["prompt_fidelity"] == 1.0

    done = _score(capsys, "--image", str(_render(tmp_path, oracle_text, "night.png")), "--text", TEXT,
                  "--instruction", NIGHT.upper())
    assert done["instruction_satisfaction"] == 1.0
    assert done["exact_match"] is True
    assert done["observed"] == oracle_text
    assert done["prompt_fidelity"] == 1.0


def test_score_of_the_wrong_image(tmp_path, capsys):
    image = _render(tmp_path, TEXT.replace("red circle", "green circle"))
    result = _score(capsys, "--image", str(image), "--text", TEXT)
    assert result["prompt_fidelity"] == pytest.approx(8 / 9)
    assert result["exact_match"] is False


def test_score_unknown_instruction_exits_2(tmp_path, capsys):
    image = _render(tmp_path)
    capsys.readouterr()
    rc = main(["world", "score", "--image", str(image), "--text", TEXT,
               "--instruction", "make it purple-ish"])
    assert rc == 2
    _one_line_error(capsys, "unknown instruction 'make it purple-ish'")


@pytest.mark.parametrize("content", [b"not an image at all", b"\x89PNG\r\n\x1a\n truncated", None])
def test_score_unreadable_image_exits_2(tmp_path, capsys, content):
    path = tmp_path / "broken.png"
    if content is not None:
        path.write_bytes(content)
    assert main(["world", "score", "--image", str(path), "--text", TEXT]) == 2
    _one_line_error(capsys, f"{path}: cannot read image")


def test_score_bad_text_exits_2(tmp_path, capsys):
    image = _render(tmp_path)
    capsys.readouterr()
    assert main(["world", "score", "--image", str(image), "--text", "a large red hexagon"]) == 2
    _one_line_error(capsys, "unknown shape 'hexagon'")


# ---------------------------------------------------------------- instructions

def _listed(capsys, *args: str) -> list[list[str]]:
    assert main(["world", "instructions", *args]) == 0
    return [line.split(maxsplit=3) for line in capsys.readouterr().out.splitlines()]


def test_instructions_ood_lists_only_heldout_and_composition(capsys):
    rows = _listed(capsys, "--split", "ood")
    instructions = load_instructions()
    assert len(rows) == len(instructions.split("ood"))
    assert {r[0] for r in rows} == {"heldout", "composition"}
    assert [r[3] for r in rows] == [i.text for i in instructions.split("ood")]


def test_instructions_filters(capsys):
    instructions = load_instructions()
    everything = _listed(capsys)
    assert len(everything) == len(instructions.instructions)
    train_hard = _listed(capsys, "--split", "train", "--difficulty", "hard")
    assert train_hard and {(r[0], r[1]) for r in train_hard} == {("train", "hard")}
    assert len(train_hard) == len(instructions.split("train", "hard"))
    composition = _listed(capsys, "--split", "composition")
    assert all("+" in r[2] for r in composition)


# ---------------------------------------------------------------- the console script

def _seer() -> str:
    script = Path(sys.executable).with_name("seer")
    found = str(script) if script.exists() else shutil.which("seer")
    assert found, "the `seer` console script is not installed"
    return found


def test_console_script_renders_and_scores(tmp_path):
    out = tmp_path / "x.png"
    done = subprocess.run([_seer(), "world", "render", "--text", TEXT, "--out", str(out), "--scale", "2"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"wrote {out}"
    with Image.open(out) as image:
        assert image.size == (128, 128)
    small = _render(tmp_path, TEXT, "small.png")
    done = subprocess.run([_seer(), "world", "score", "--image", str(small), "--text", TEXT],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["exact_match"] is True


def test_console_script_error_is_one_line_with_exit_2(tmp_path):
    done = subprocess.run([_seer(), "world", "render", "--text", "a large red hexagon on the left, on a gray "
                           "background", "--out", str(tmp_path / "x.png")],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr.count("\n") == 1
    assert done.stderr.startswith("seer: error: unknown shape 'hexagon'")


def test_render_unknown_image_type_exits_2(tmp_path, capsys):
    assert main(["world", "render", "--text", TEXT, "--out", str(tmp_path / "x.foo")]) == 2
    _one_line_error(capsys, "unknown image type '.foo'")
    assert not list(tmp_path.iterdir())


def test_closed_pipe_is_not_an_error(tmp_path):
    listing = subprocess.Popen([_seer(), "world", "instructions"], stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE)
    listing.stdout.close()  # like `| head -0`: every write of the listing meets a closed pipe
    assert listing.wait(timeout=60) == 0
    assert b"Traceback" not in listing.stderr.read()
