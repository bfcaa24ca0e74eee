"""`seer report`: a synthetic run folder in, one self-contained HTML file out."""

from __future__ import annotations

import base64
import io
import json
import math
import shutil
import subprocess
from html.parser import HTMLParser
from pathlib import Path

import pytest
from PIL import Image

from seer.cli import main
from seer.report import fmt, write_report

# The example images: one flat, distinctive colour per role (none is a matplotlib colour).
COLOURS = {"baseline": (230, 0, 200), "reprompted": (0, 200, 190), "oracle": (250, 200, 0)}
SPLITS = ("test_id", "test_ood")


def _row(sat: float, full: float, fidelity: float, exact: float, n: int = 40) -> dict:
    return {"satisfaction": sat, "full": full, "fidelity": fidelity, "exact": exact, "n": n}


def _groups(sat: float) -> dict:
    return {"all": _row(sat, sat / 2, 0.93, 0.1), "id/simple": _row(sat + 0.01, 0.5, 0.9, 0.2, 20),
            "id/hard": _row(sat - 0.01, 0.3, 0.9, 0.0, 20)}


def _evaluator_table(acc: float) -> dict:
    return {"accuracy": acc, "n": 80, "format": 0.99, "says_yes": 0.48,
            "accuracy/kind/instruction": acc + 0.01, "accuracy/kind/description": acc - 0.01,
            "accuracy/order/positive_first": acc + 0.02,
            "accuracy/order/negative_first": acc - 0.02, "position_bias_gap": 0.04}


def _metrics() -> dict:
    methods = {"plain": 0.2, "baseline": 0.4, "rule_based": 0.55, "oracle": 0.92, "policy_before": 0.45,
               "policy_after": 0.71}
    return {
        "schema": "seer.eval/1", "checkpoint": "checkpoints/rlmt", "evaluator": "checkpoints/rlvr",
        "vie": "vie", "seed": 7, "date": "2026-02-01",
        "evaluator_accuracy": {"before": {s: _evaluator_table(0.625) for s in SPLITS},
                               "after": {s: _evaluator_table(0.875) for s in SPLITS}},
        "generation": {s: {m: _groups(v) for m, v in methods.items()} for s in SPLITS},
        "gap_closed": {s: {"plain": -0.38, "rule_based": 0.29, "policy_before": 0.1, "policy_after": 0.58}
                       for s in SPLITS},
        "efficiency": {s: {"policy_after": {"gain": 0.31, "tokens": 12.0, "gain_per_100_tokens": 2.583,
                                            "seconds": 0.042, "gain_per_second": 7.381},
                           "rule_based": {"gain": 0.15, "tokens": 9.0, "gain_per_100_tokens": 1.667,
                                          "seconds": 0.001, "gain_per_second": None}} for s in SPLITS},
        "failure_modes": {s: {"policy_before": {"laziness": 0.61, "hallucination": 0.2, "omission": 0.33},
                              "policy_after": {"laziness": 0.12, "hallucination": 0.07, "omission": 0.09}}
                          for s in SPLITS},
        "retention": {"before": {"attribute_questions": 0.95, "concept_questions": 0.9, "perplexity": 3.217},
                      "after": {"attribute_questions": 0.94, "concept_questions": 0.91, "perplexity": 3.305}},
        "examples": [{"split": s, "prompt": "a large red circle in the center, on a white background",
                      "instruction": "make it look like night", "reasoning": "night: dark sky and a moon",
                      "reprompt": f"a large red circle, night sky <{s}>",
                      "oracle": "a large red circle, at night",
                      "images": {r: f"examples/{k}_{r}.png" for r in COLOURS}} for k, s in enumerate(SPLITS)],
        "logs": {"rlvr": "checkpoints/rlvr/log.jsonl", "rlmt": "checkpoints/rlmt/log.jsonl"},
    }


def _write_log(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r) + "\n" for r in records))


def _make_run(root: Path, metrics: dict | None = None) -> Path:
    run = root / "run"
    (run / "examples").mkdir(parents=True)
    metrics = _metrics() if metrics is None else metrics
    (run / "metrics.json").write_text(json.dumps(metrics))
    for k in range(len(SPLITS)):
        for role, colour in COLOURS.items():
            image = Image.new("RGB", (64, 64), colour)
            image.paste((20, 20, 20), (24, 24, 40, 40))
            image.save(run / "examples" / f"{k}_{role}.png")
    rlvr = [{"step": s, "reward": 1 + s / 30, "accuracy": 0.5 + s / 60, "format": 0.9, "kl": 0.001 * s,
             "rewards/format": 0.9} for s in range(1, 26)]
    # RLMT: no KL at all, gt_satisfaction missing from some records, one NaN.
    rlmt = [{"step": s, "reward": 0.5 + s / 40, "reward_gt_correlation": 0.3, "reprompt_words": 10 + s}
            | ({"gt_satisfaction": 0.4 + s / 50} if s % 3 else {}) for s in range(1, 11)]
    rlmt[4]["reward_gt_correlation"] = math.nan
    _write_log(run / "checkpoints/rlvr/log.jsonl", rlvr)
    _write_log(run / "checkpoints/rlmt/log.jsonl", rlmt)
    return run


class _Page(HTMLParser):
    """The tables of a page (with the headings above them) and its images."""

    def __init__(self, text: str):
        super().__init__()
        self.tables: list[dict] = []
        self.images: list[dict] = []
        self.heading = {"h2": "", "h3": ""}
        self._in, self._text = None, ""
        self.feed(text)

    def handle_starttag(self, tag, attrs):
        if tag in ("h2", "h3", "td", "th"):
            self._in, self._text = tag, ""
        if tag == "h2":
            self.heading["h3"] = ""
        if tag == "table":
            self.tables.append({"h2": self.heading["h2"], "h3": self.heading["h3"], "rows": []})
        if tag == "tr":
            self.tables[-1]["rows"].append([])
        if tag == "img":
            self.images.append(dict(attrs))

    def handle_data(self, data):
        if self._in:
            self._text += data

    def handle_endtag(self, tag):
        if tag in ("h2", "h3"):
            self.heading[tag] = self._text.split()[0] if tag == "h3" else self._text
        if tag in ("td", "th"):
            self.tables[-1]["rows"][-1].append(self._text.strip())
        if tag == self._in:
            self._in = None

    def table(self, h2: str, h3: str = "") -> list[list[str]]:
        found = [t["rows"] for t in self.tables if t["h2"] == h2 and t["h3"] == h3]
        assert found, f"no table under {h2}/{h3}"
        return found[0]


def _row_of(rows: list[list[str]], name: str) -> list[str]:
    matches = [r for r in rows if r and r[0] == name]
    assert matches, f"no row {name!r} in {[r[0] for r in rows]}"
    return matches[0]


@pytest.fixture
def report(tmp_path, capsys) -> tuple[Path, str]:
    run = _make_run(tmp_path)
    assert main(["report", "--run", str(run)]) == 0
    out = run / "report.html"
    assert f"wrote {out}" in capsys.readouterr().out
    return run, out.read_text()


# ---------------------------------------------------------------- the file

def test_report_is_one_self_contained_file(report):
    _, text = report
    lowered = text.lower()
    for external in ('src="http', "src='http", "<link", "<script", "url(", "@import"):
        assert external not in lowered, external
    page = _Page(text)
    assert len(page.images) == 4 + 4 + 2 * 3  # RLVR plots, RLMT plots (no KL), example images
    for img in page.images:
        assert img["src"].startswith("data:image/png;base64,")
        with Image.open(io.BytesIO(base64.b64decode(img["src"].split(",", 1)[1]))) as image:
            assert image.format == "PNG"


def test_header_says_what_was_run(report):
    _, text = report
    for value in ("checkpoints/rlmt", "checkpoints/rlvr", "2026-02-01", ">7<"):
        assert value in text
    assert "Evaluator on test_id: accuracy 87.5% after RLVR, up from 62.5% before" in text
    assert "closing 58.0% of the baseline-to-oracle gap (10.0% before RLMT)" in text


def test_tables_hold_the_headline_numbers(report):
    page = _Page(report[1])
    for split in SPLITS:
        rows = page.table("Evaluator accuracy", split)
        assert _row_of(rows, "accuracy")[1:] == ["62.5%", "87.5%", "+25.0 pp"]
        assert _row_of(rows, "position-bias gap (lower is better)")[1:3] == ["4.0%", "4.0%"]
        assert _row_of(rows, "accuracy, better image first")[2] == "89.5%"
        assert _row_of(rows, "items")[1:] == ["80", "80", ""]

        rows = page.table("Generation quality", split)
        assert rows[0] == ["method", "satisfaction", "full", "fidelity", "exact", "n", "gap closed"]
        assert [r[0] for r in rows[1:7]] == [
            "plain prompt", "baseline text (prompt + instruction)", "rule-based rewriter",
            "oracle elaboration (upper bound)", "policy before RLMT", "policy after RLMT (SEER)"]
        ours = ["71.0%", "35.5%", "93.0%", "10.0%", "40", "58.0%"]
        assert _row_of(rows, "policy after RLMT (SEER)")[1:] == ours
        assert _row_of(rows, "oracle elaboration (upper bound)")[-1] == "–"  # no gap for the oracle

        rows = page.table("Reprompting efficiency", split)
        ours = ["+0.310", "12.000", "2.583", "0.042", "7.381"]
        assert _row_of(rows, "policy after RLMT (SEER)")[1:] == ours
        assert _row_of(rows, "rule-based rewriter")[-1] == "–"  # None

        rows = page.table("Failure modes", split)
        assert _row_of(rows, "policy before RLMT")[1:] == ["61.0%", "20.0%", "33.0%"]
        assert _row_of(rows, "policy after RLMT (SEER)")[1:] == ["12.0%", "7.0%", "9.0%"]

    rows = page.table("Retention")
    assert _row_of(rows, "perplexity")[1:] == ["3.217", "3.305", "+0.088"]
    assert _row_of(rows, "attribute questions")[1:] == ["95.0%", "94.0%", "-1.0 pp"]
    assert "external LLM rewriter" not in report[1]  # llm absent: no row


def test_examples_show_the_texts_and_upscaled_images(report):
    _, text = report
    for s in SPLITS:
        assert f"a large red circle, night sky &lt;{s}&gt;" in text  # escaped
    assert "make it look like night" in text and "night: dark sky and a moon" in text
    examples = [img for img in _Page(text).images if img.get("class") == "example"]
    assert [img["alt"] for img in examples] == ["baseline", "reprompted", "oracle"] * 2
    with Image.open(io.BytesIO(base64.b64decode(examples[0]["src"].split(",", 1)[1]))) as image:
        assert image.size == (256, 256)
        assert image.convert("RGB").getpixel((0, 0)) == COLOURS["baseline"]
        assert image.convert("RGB").getpixel((100, 100)) == (20, 20, 20)  # nearest neighbour: crisp edges


def test_a_log_missing_a_key_still_plots_the_rest(report):
    _, text = report
    plots = [img["alt"] for img in _Page(text).images if img.get("class") == "plot"]
    assert plots == ["rlvr reward", "rlvr accuracy", "rlvr format", "rlvr kl", "rlmt reward",
                     "rlmt gt_satisfaction", "rlmt reward_gt_correlation", "rlmt reprompt_words"]
    assert "Not in this log: kl." in text


# ---------------------------------------------------------------- absent data

def test_missing_sections_are_skipped_with_a_note(tmp_path, capsys):
    metrics = {k: v for k, v in _metrics().items() if k in ("schema", "checkpoint", "generation")}
    run = _make_run(tmp_path, metrics)
    out = tmp_path / "elsewhere" / "r.html"
    assert main(["report", "--run", str(run), "--out", str(out)]) == 0
    assert f"wrote {out}" in capsys.readouterr().out
    text = out.read_text()
    page = _Page(text)
    assert page.images == []
    assert _row_of(page.table("Generation quality", "test_id"), "policy after RLMT (SEER)")[1] == "71.0%"
    for title in ("evaluator accuracy", "reprompting efficiency", "failure modes", "retention",
                  "training curves", "examples"):
        assert f"No {title} in metrics.json; section skipped." in text
    assert not (run / "report.html").exists()


def test_an_empty_metrics_file_still_gives_a_page(tmp_path):
    run = _make_run(tmp_path, {})
    text = write_report(run).read_text()
    assert "No headline numbers in metrics.json." in text and text.count("section skipped") == 7


def _one_line_error(capsys, *expected: str) -> str:
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert len(lines) == 1, err
    assert lines[0].startswith("seer: error: "), lines[0]
    for part in expected:
        assert part in lines[0], lines[0]
    return lines[0]


def test_a_missing_metrics_json_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path)]) == 2
    _one_line_error(capsys, str(tmp_path / "metrics.json"))
    assert not (tmp_path / "report.html").exists()


def test_a_missing_run_folder_is_a_one_line_error(tmp_path, capsys):
    assert main(["report", "--run", str(tmp_path / "nope")]) == 2
    _one_line_error(capsys, str(tmp_path / "nope"))


def test_a_missing_log_is_a_one_line_error_naming_it(tmp_path, capsys):
    run = _make_run(tmp_path)
    (run / "checkpoints/rlmt/log.jsonl").unlink()
    assert main(["report", "--run", str(run)]) == 2
    _one_line_error(capsys, str(run / "checkpoints/rlmt/log.jsonl"))
    assert not (run / "report.html").exists()


@pytest.mark.parametrize(("content", "expected"), [
    ("{", "metrics.json:1: not JSON"),
    ("[1, 2]", "expected a JSON object"),
    ('{"schema": "seer.eval/9"}', "schema 'seer.eval/9' is not seer.eval/1"),
    ('{"evaluator_accuracy": {"before": 3}}', "metrics.json: does not follow seer.eval/1"),
    ('{"generation": {"test_id": {"oracle": {"all": 1}}}}', "metrics.json: does not follow seer.eval/1"),
    ('{"logs": {"rlvr": 3}}', "metrics.json: logs 'rlvr' must be a path"),
])
def test_a_bad_metrics_json_is_a_one_line_error(tmp_path, capsys, content, expected):
    (tmp_path / "metrics.json").write_text(content)
    assert main(["report", "--run", str(tmp_path)]) == 2
    _one_line_error(capsys, expected)


def test_a_bad_log_line_and_a_missing_image_name_the_file(tmp_path, capsys):
    run = _make_run(tmp_path)
    with (run / "checkpoints/rlvr/log.jsonl").open("a") as f:
        f.write("{oops\n")
    assert main(["report", "--run", str(run)]) == 2
    _one_line_error(capsys, "checkpoints/rlvr/log.jsonl:26: not JSON")

    run = _make_run(tmp_path / "b")
    (run / "examples/1_oracle.png").unlink()
    assert main(["report", "--run", str(run)]) == 2
    _one_line_error(capsys, str(run / "examples/1_oracle.png"))


def test_an_existing_report_is_replaced(tmp_path):
    run = _make_run(tmp_path)
    (run / "report.html").write_text("old")
    assert write_report(run).read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in run.iterdir() if p.name.startswith(".")] == []  # no temporary left


@pytest.mark.parametrize(("key", "value", "text"), [
    ("accuracy", 0.875, "87.5%"), ("accuracy/kind/instruction", 0.5, "50.0%"), ("n", 80, "80"),
    ("gain", 0.31, "+0.310"), ("perplexity", 3.2174, "3.217"), ("gap_closed", -0.38, "-38.0%"),
    ("concept_questions", 0.9, "90.0%"), ("satisfaction", None, "–"), ("fidelity", math.nan, "–"),
])
def test_number_format(key, value, text):
    assert fmt(key, value) == text


# ---------------------------------------------------------------- in a browser

CHROMIUM = shutil.which("chromium")


@pytest.mark.skipif(CHROMIUM is None, reason="needs the `chromium` binary (Debian package chromium; "
                                              ".ci/run installs it, so CI always runs this test)")
def test_the_report_renders_with_its_images_in_headless_chromium(tmp_path):
    run = _make_run(tmp_path)
    url = write_report(run).as_uri()
    browser = [CHROMIUM, "--headless", "--disable-gpu", "--no-sandbox", "--hide-scrollbars",
               "--force-device-scale-factor=1", f"--user-data-dir={tmp_path / 'profile'}"]

    dom = subprocess.run([*browser, "--dump-dom", url], capture_output=True, text=True, timeout=180,
                         check=True).stdout
    page = _Page(dom)
    assert len(page.images) == 14 and all(i["src"].startswith("data:image/png;base64,") for i in page.images)
    assert _row_of(page.table("Generation quality", "test_id"), "policy after RLMT (SEER)")[1] == "71.0%"

    shot = tmp_path / "shot.png"
    subprocess.run([*browser, f"--screenshot={shot}", "--window-size=1280,12000", url],
                   capture_output=True, timeout=180, check=True)
    with Image.open(shot) as image:
        counts = image.convert("RGB").getcolors(maxcolors=1 << 24)  # [(pixels, colour)]
    assert len(counts) > 50, "the screenshot is blank"
    for role, colour in COLOURS.items():  # each example image shows twice, at 256 px
        near = sum(n for n, c in counts if max(abs(a - b) for a, b in zip(c, colour, strict=True)) <= 6)
        assert near >= 2 * (256 * 256 - 64 * 64) * 0.9, f"{role} image not on screen ({near} pixels)"


def test_summary_says_down_when_rlvr_lowered_accuracy():
    from seer.report import summary_lines

    metrics = {"evaluator_accuracy": {"before": {"test_id": {"accuracy": 0.6}},
                                      "after": {"test_id": {"accuracy": 0.5}}}}
    assert summary_lines(metrics)[0] == (
        "Evaluator on test_id: accuracy 50.0% after RLVR, down from 60.0% before.")
