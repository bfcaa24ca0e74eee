"""`seer report`: one self-contained HTML file of a SEER run.

Reads RUN/metrics.json (written by `seer eval`) and the training logs it names, and writes
one HTML file with every table, plot and image inlined (PNG data URIs; no external CSS, JS
or fonts), so it can be mailed, archived or opened offline.

metrics.json, schema "seer.eval/1" (docs/report.md documents it in full). Every top-level
key may be absent; the report then skips that section with a note. Paths are relative to
the run folder.
    schema, checkpoint, evaluator, base, vie, seed, date     what was run
    evaluator_accuracy  {before|after: {split: {accuracy, n, format, says_yes,
                         accuracy/kind/{instruction,description},
                         accuracy/order/{positive_first,negative_first}, position_bias_gap}}}
    generation          {split: {method: {group: {satisfaction, full, fidelity, exact, n}}}}
                         methods: plain, baseline, rule_based, llm, oracle, policy_before,
                         policy_after; groups: all, id, id/simple, ...
    gap_closed          {split: {method: share of the baseline-to-oracle gap closed}}
    efficiency          {split: {method: {gain, tokens, gain_per_100_tokens, seconds,
                         gain_per_second}}}
    failure_modes       {split: {method: {laziness, hallucination, omission}}}
    retention           {before|after: {attribute_questions, concept_questions, perplexity}}
    examples            [{split, prompt, instruction, reasoning, reprompt, oracle,
                          images: {baseline, reprompted, oracle: PNG path}}]
    logs                {rlvr|rlmt|...: log.jsonl path}; one JSON record per line, each with
                         "step" and float metrics (a key may be missing from some records)

A missing or unreadable metrics.json, log or example image is a one-line ReportError that
names the file; a missing section or metric is not an error.
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

SCHEMA = "seer.eval/1"

METHODS = {  # display order and names of generation methods
    "plain": "plain prompt",
    "baseline": "baseline text (prompt + instruction)",
    "rule_based": "rule-based rewriter",
    "llm": "external LLM rewriter",
    "oracle": "oracle elaboration (upper bound)",
    "policy_before": "policy before RLMT",
    "policy_after": "policy after RLMT (SEER)",
}
EVALUATOR_ROWS = {
    "accuracy": "accuracy",
    "format": "format (well-formed answers)",
    "says_yes": "says Yes",
    "accuracy/kind/instruction": "accuracy, instruction questions",
    "accuracy/kind/description": "accuracy, prompt questions",
    "accuracy/order/positive_first": "accuracy, better image first",
    "accuracy/order/negative_first": "accuracy, better image second",
    "position_bias_gap": "position-bias gap (lower is better)",
    "n": "items",
}
GENERATION_COLUMNS = ("satisfaction", "full", "fidelity", "exact", "n")
EFFICIENCY_COLUMNS = ("gain", "tokens", "gain_per_100_tokens", "seconds", "gain_per_second")
FAILURE_COLUMNS = ("laziness", "hallucination", "omission")
CURVES = {  # log name -> (key, title) of each plot, in order
    "rlvr": [("reward", "reward (format + accuracy)"), ("accuracy", "accuracy"), ("format", "format"),
             ("kl", "KL to reference")],
    "rlmt": [("reward", "endogenous reward P(Yes)"), ("gt_satisfaction", "ground-truth satisfaction"),
             ("reward_gt_correlation", "reward vs ground-truth correlation"), ("kl", "KL to reference"),
             ("reprompt_words", "reprompt length (words)")],
}
OTHER_CURVES = [("reward", "reward"), ("kl", "KL to reference"), ("loss", "loss")]
PERCENT = {"accuracy", "format", "says_yes", "position_bias_gap", "satisfaction", "full", "fidelity",
           "exact", "gap_closed", "laziness", "hallucination", "omission", "knowledge"}
IMAGE_SIDE = 256  # example images are upscaled (nearest neighbour) to about this many pixels


class ReportError(ValueError):
    """A missing or unreadable input of the report; one line that names the file."""


# ---------------------------------------------------------------- inputs

def load_metrics(run: str | Path) -> dict[str, Any]:
    path = Path(run) / "metrics.json"
    if not path.is_file():
        raise ReportError(f"{path}: no such file (write it with `seer eval`)")
    try:
        metrics = json.loads(path.read_text())
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: cannot read ({err.__class__.__name__})") from None
    except json.JSONDecodeError as err:
        raise ReportError(f"{path}:{err.lineno}: not JSON ({err.msg})") from None
    if not isinstance(metrics, dict):
        raise ReportError(f"{path}: expected a JSON object")
    if metrics.get("schema", SCHEMA) != SCHEMA:
        raise ReportError(f"{path}: schema '{metrics['schema']}' is not {SCHEMA}")
    return metrics


def read_log(path: Path) -> list[dict[str, float]]:
    """The records of a log.jsonl that have a step, keeping only their finite numbers."""
    if not path.is_file():
        raise ReportError(f"{path}: no such file (named in metrics.json 'logs')")
    records = []
    try:
        lines = path.read_text().splitlines()
    except (OSError, UnicodeDecodeError) as err:
        raise ReportError(f"{path}: cannot read ({err.__class__.__name__})") from None
    for n, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as err:
            raise ReportError(f"{path}:{n}: not JSON ({err.msg})") from None
        if not isinstance(record, dict) or not _number(record.get("step")):
            raise ReportError(f"{path}:{n}: expected an object with a numeric 'step'")
        records.append({k: float(v) for k, v in record.items() if _number(v) and math.isfinite(v)})
    return records


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _resolve(run: Path, rel: str) -> Path:
    path = Path(rel)
    return path if path.is_absolute() else run / path


def _section(metrics: dict, key: str) -> dict | list | None:
    """A top-level section, or None when absent or empty."""
    value = metrics.get(key)
    if value in (None, {}, []):
        return None
    if not isinstance(value, (dict, list)):
        raise ReportError(f"metrics.json: '{key}' must be an object or a list")
    return value


# ---------------------------------------------------------------- numbers and tables

def fmt(key: str, value: Any) -> str:
    """Shares as percentages, counts as integers, everything else to 3 decimals."""
    if value is None or (isinstance(value, float) and not math.isfinite(value)):
        return "–"
    if not _number(value):
        return html.escape(str(value))
    if key == "n":
        return f"{int(value):d}"
    if _is_share(key):
        return f"{100 * value:.1f}%"
    if key == "gain":
        return f"{value:+.3f}"
    return f"{value:.3f}"


def _is_share(key: str) -> bool:
    return key in PERCENT or key.startswith("accuracy/") or key.endswith("_questions")


def _delta(key: str, before: Any, after: Any) -> str:
    if not (_number(before) and _number(after)) or key == "n":
        return ""
    change = after - before
    if not math.isfinite(change):
        return "–"
    return f"{100 * change:+.1f} pp" if _is_share(key) else f"{change:+.3f}"


def _table(header: list[str], rows: list[list[str]], strong: set[int] = frozenset()) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        ("<tr class='ours'>" if k in strong else "<tr>") + "".join(f"<td>{c}</td>" for c in row) + "</tr>"
        for k, row in enumerate(rows)
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _methods(table: dict) -> list[str]:
    return [m for m in METHODS if m in table] + [m for m in table if m not in METHODS]


def _method_rows(table: dict, columns: tuple[str, ...]) -> tuple[list[list[str]], set[int]]:
    rows, ours = [], set()
    for k, method in enumerate(_methods(table)):
        values = table[method] if isinstance(table[method], dict) else {}
        rows.append([html.escape(METHODS.get(method, method))] + [fmt(c, values.get(c)) for c in columns])
        if method == "policy_after":
            ours.add(k)
    return rows, ours


def _split_tables(data: dict) -> dict[str, dict]:
    return {split: table for split, table in data.items() if isinstance(table, dict) and table}


# ---------------------------------------------------------------- sections

def summary_lines(metrics: dict) -> list[str]:
    """A plain-words sentence per headline number (also printed by the CLI)."""
    lines = []
    acc = _section(metrics, "evaluator_accuracy") or {}
    before, after = acc.get("before") or {}, acc.get("after") or {}
    for split in after:
        a, b = after[split], before.get(split, {})
        line = f"Evaluator on {split}: accuracy {fmt('accuracy', a.get('accuracy'))}"
        if "accuracy" in b:
            direction = "up" if a.get("accuracy", 0) >= b["accuracy"] else "down"
            line += f" after RLVR, {direction} from {fmt('accuracy', b['accuracy'])} before"
        if "position_bias_gap" in a:
            line += f"; position-bias gap {fmt('position_bias_gap', a['position_bias_gap'])}"
        lines.append(line + ".")
    gaps = _section(metrics, "gap_closed") or {}
    for split, table in _split_tables(_section(metrics, "generation") or {}).items():
        sat = {m: ((g.get("all") or {}) if isinstance(g, dict) else {}).get("satisfaction")
               for m, g in table.items()}
        if not _number(sat.get("policy_after")):
            continue
        line = (f"Generation on {split}: SEER's reprompts meet "
                f"{fmt('satisfaction', sat['policy_after'])} of the instruction")
        refs = [f"{name} {fmt('satisfaction', sat[m])}"
                for m, name in (("baseline", "baseline text"), ("oracle", "oracle")) if _number(sat.get(m))]
        line += f" ({', '.join(refs)})" if refs else ""
        closed = (gaps.get(split) or {}).get("policy_after")
        if _number(closed):
            line += f", closing {fmt('gap_closed', closed)} of the baseline-to-oracle gap"
            earlier = (gaps.get(split) or {}).get("policy_before")
            if _number(earlier):
                line += f" ({fmt('gap_closed', earlier)} before RLMT)"
        lines.append(line + ".")
    for split, table in _split_tables(_section(metrics, "efficiency") or {}).items():
        ours = table.get("policy_after") or {}
        if _number(ours.get("gain")):
            lines.append(f"Efficiency on {split}: {fmt('gain', ours['gain'])} satisfaction per reprompt over "
                         f"the baseline text, {fmt('x', ours.get('gain_per_100_tokens'))} per 100 reprompt "
                         f"words, {fmt('x', ours.get('seconds'))} s per reprompt.")
    for split, table in _split_tables(_section(metrics, "failure_modes") or {}).items():
        ours, earlier = table.get("policy_after") or {}, table.get("policy_before") or {}
        if ours:
            parts = [f"{k} {fmt(k, ours.get(k))}" + (f" (was {fmt(k, earlier[k])})" if k in earlier else "")
                     for k in FAILURE_COLUMNS if k in ours]
            lines.append(f"Failure modes on {split} after RLMT: {', '.join(parts)}.")
    ret = _section(metrics, "retention") or {}
    if isinstance(ret.get("after"), dict) and isinstance(ret.get("before"), dict):
        parts = [f"{k.replace('_', ' ')} {fmt(k, ret['before'][k])} → {fmt(k, v)}"
                 for k, v in ret["after"].items() if k in ret["before"]]
        if parts:
            lines.append(f"Retention, before → after: {', '.join(parts)}.")
    return lines


def _header(metrics: dict, run: Path) -> str:
    keys = ("checkpoint", "evaluator", "base", "policy_before", "vie", "seed", "date")
    fields = [("run", str(run))] + [(key, metrics[key]) for key in keys if metrics.get(key) is not None]
    rows = "".join(f"<tr><th>{html.escape(k)}</th><td><code>{html.escape(str(v))}</code></td></tr>"
                   for k, v in fields)
    lines = summary_lines(metrics)
    summary = ("<ul class='summary'>" + "".join(f"<li>{html.escape(s)}</li>" for s in lines) + "</ul>"
               if lines else "<p class='note'>No headline numbers in metrics.json.</p>")
    return f"<h1>SEER run report</h1><table class='meta'>{rows}</table>{summary}"


def _evaluator(metrics: dict) -> str | None:
    acc = _section(metrics, "evaluator_accuracy")
    if not acc:
        return None
    before, after = acc.get("before") or {}, acc.get("after") or {}
    parts = []
    for split in list(after) + [s for s in before if s not in after]:
        b, a = before.get(split) or {}, after.get(split) or {}
        keys = [k for k in EVALUATOR_ROWS if k in a or k in b] + sorted(
            k for k in {*a, *b} if k not in EVALUATOR_ROWS)
        rows = [[html.escape(EVALUATOR_ROWS.get(k, k)), fmt(k, b.get(k)), fmt(k, a.get(k)),
                 _delta(k, b.get(k), a.get(k))] for k in keys]
        parts.append(f"<h3>{html.escape(split)}</h3>"
                     + _table(["", "before (base model)", "after (RLVR)", "change"], rows))
    return ("<p>Accuracy of the Yes/No judgement on held-out image pairs; the position-bias gap is the "
            "accuracy difference between the two image orders.</p>" + "".join(parts))


def _generation(metrics: dict) -> str | None:
    generation = _split_tables(_section(metrics, "generation") or {})
    if not generation:
        return None
    gaps = _section(metrics, "gap_closed") or {}
    parts = []
    for split, table in generation.items():
        alls = {m: (g.get("all") or {}) if isinstance(g, dict) else {} for m, g in table.items()}
        split_gaps = gaps.get(split) or {}
        for m in alls:
            alls[m] = {**alls[m], "gap_closed": split_gaps.get(m)}
        rows, ours = _method_rows(alls, (*GENERATION_COLUMNS, "gap_closed"))
        parts.append(f"<h3>{html.escape(split)}</h3>"
                     + _table(["method", *GENERATION_COLUMNS, "gap closed"], rows, ours))
        groups = sorted({g for m in table.values() if isinstance(m, dict) for g in m if g != "all"})
        if groups:
            by_group = {m: {g: (table[m].get(g) or {}).get("satisfaction") for g in groups}
                        for m in table if isinstance(table[m], dict)}
            rows = [[html.escape(METHODS.get(m, m))] + [fmt("satisfaction", by_group[m][g]) for g in groups]
                    for m in _methods(by_group)]
            ours = {k for k, m in enumerate(_methods(by_group)) if m == "policy_after"}
            parts.append(f"<p>Satisfaction by group ({html.escape(split)}):</p>"
                         + _table(["method", *groups], rows, ours))
    return ("<p>Ground truth from the analyzer on the images each method's text gives (one seed per "
            "sample, shared by all methods). satisfaction: share of the instruction's clauses met; "
            "full: all met; fidelity: share of the prompt's attributes kept; exact: the oracle scene; "
            "gap closed: share of the baseline-to-oracle satisfaction gap closed.</p>" + "".join(parts))


def _per_method(metrics: dict, key: str, columns: tuple[str, ...], intro: str) -> str | None:
    data = _split_tables(_section(metrics, key) or {})
    if not data:
        return None
    parts = []
    for split, table in data.items():
        rows, ours = _method_rows(table, columns)
        parts.append(f"<h3>{html.escape(split)}</h3>"
                     + _table(["method", *(c.replace("_", " ") for c in columns)], rows, ours))
    return f"<p>{intro}</p>" + "".join(parts)


def _retention(metrics: dict) -> str | None:
    ret = _section(metrics, "retention")
    if not ret:
        return None
    before, after = ret.get("before") or {}, ret.get("after") or {}
    keys = list(before) + [k for k in after if k not in before]
    rows = [[html.escape(k.replace("_", " ")), fmt(k, before.get(k)), fmt(k, after.get(k)),
             _delta(k, before.get(k), after.get(k))] for k in keys]
    return ("<p>General ability before and after training: understanding accuracy (higher is better) and "
            "text perplexity (lower is better).</p>" + _table(["", "before", "after", "change"], rows))


# ---------------------------------------------------------------- plots and images

def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


def plot_curve(records: list[dict[str, float]], key: str, title: str) -> bytes | None:
    """A PNG of one metric against step, or None when no record has it."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    points = [(r["step"], r[key]) for r in records if key in r and "step" in r]
    if not points:
        return None
    steps, values = zip(*sorted(points), strict=True)
    fig = Figure(figsize=(4.2, 2.8), dpi=100)
    FigureCanvasAgg(fig)
    ax = fig.subplots()
    ax.plot(steps, values, color="tab:blue", lw=1, alpha=0.5 if len(values) >= 20 else 1.0,
            marker="o" if len(values) < 20 else None, ms=3)
    if len(values) >= 20:  # a moving average shows the trend through RL noise
        w = max(3, len(values) // 10)
        window = [values[max(0, i - w + 1):i + 1] for i in range(len(values))]
        smooth = [sum(v) / len(v) for v in window]
        ax.plot(steps, smooth, color="tab:blue", lw=2, label=f"mean of {w}")
        ax.legend(loc="best", fontsize=7, frameon=False)
    ax.set_title(title, fontsize=10)
    ax.set_xlabel("step", fontsize=8)
    ax.tick_params(labelsize=7)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    return buf.getvalue()


def _curves(metrics: dict, run: Path) -> str | None:
    logs = _section(metrics, "logs")
    if not logs:
        return None
    parts = []
    for name, rel in logs.items():
        if not isinstance(rel, str):
            raise ReportError(f"metrics.json: logs '{name}' must be a path")
        records = read_log(_resolve(run, rel))
        figures, missing = [], []
        for key, title in CURVES.get(name, OTHER_CURVES):
            png = plot_curve(records, key, title)
            if png is None:
                missing.append(key)
            else:
                figures.append(f"<img class='plot' alt='{html.escape(name)} {html.escape(key)}' "
                               f"src='{_data_uri(png)}'>")
        note = (f"<p class='note'>Not in this log: {html.escape(', '.join(missing))}.</p>" if missing else "")
        body = f"<div class='plots'>{''.join(figures)}</div>" if figures else ""
        title = html.escape(name.upper() if name in CURVES else name)
        where = f"<small><code>{html.escape(rel)}</code>, {len(records)} records</small>"
        parts.append(f"<h3>{title} {where}</h3>{body}{note}")
    return "".join(parts)


def _image(run: Path, rel: str) -> str:
    from PIL import Image, UnidentifiedImageError

    path = _resolve(run, rel)
    if not path.is_file():
        raise ReportError(f"{path}: no such file (an example image named in metrics.json)")
    try:
        with Image.open(path) as image:
            image = image.convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise ReportError(f"{path}: cannot read image ({err.__class__.__name__})") from None
    scale = max(1, IMAGE_SIDE // max(image.size))
    if scale > 1:
        image = image.resize((image.width * scale, image.height * scale), Image.NEAREST)
    buf = io.BytesIO()
    image.save(buf, format="PNG", optimize=True)
    return _data_uri(buf.getvalue())


def _examples(metrics: dict, run: Path) -> str | None:
    examples = _section(metrics, "examples")
    if not examples:
        return None
    cards = []
    for example in examples:
        if not isinstance(example, dict):
            raise ReportError("metrics.json: each of 'examples' must be an object")
        images = example.get("images") or {}
        roles = [r for r in ("baseline", "reprompted", "oracle") if r in images] + [
            r for r in images if r not in ("baseline", "reprompted", "oracle")]
        figures = "".join(
            f"<figure><img class='example' alt='{html.escape(role)}' src='{_image(run, images[role])}'>"
            f"<figcaption>{html.escape(role)}</figcaption></figure>" for role in roles)
        texts = "".join(
            f"<dt>{label}</dt><dd>{html.escape(str(example[key]))}</dd>"
            for key, label in (("prompt", "prompt"), ("instruction", "instruction"),
                               ("reasoning", "reasoning"), ("reprompt", "reprompt"),
                               ("oracle", "oracle elaboration"))
            if example.get(key) not in (None, ""))
        split = f"<p class='split'>{html.escape(str(example['split']))}</p>" if example.get("split") else ""
        cards.append(f"<div class='card'>{split}<div class='images'>{figures}</div><dl>{texts}</dl></div>")
    return ("<p>Baseline text | SEER's reprompt | oracle elaboration, rendered by the evaluated checkpoint "
            "with one seed per sample.</p>" + "".join(cards))


# ---------------------------------------------------------------- the page

STYLE = """
body { font-family: sans-serif; margin: 2em auto; max-width: 1100px; color: #222; line-height: 1.4; }
h2 { border-bottom: 1px solid #ccc; margin-top: 2em; }
table { border-collapse: collapse; margin: 0.5em 0 1em; font-size: 0.9em; }
th, td { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: right; }
th:first-child, td:first-child { text-align: left; }
thead th { background: #f3f3f3; }
tr.ours td { font-weight: bold; background: #eef6ff; }
table.meta th, table.meta td { text-align: left; }
table.meta th { background: #f3f3f3; }
.note { color: #777; font-style: italic; }
.plots { display: flex; flex-wrap: wrap; gap: 8px; }
img.plot { width: 350px; height: auto; }
.card { border: 1px solid #ddd; border-radius: 6px; padding: 0.8em; margin: 1em 0; }
.images { display: flex; gap: 12px; }
figure { margin: 0; text-align: center; }
img.example { width: 256px; height: auto; image-rendering: pixelated; border: 1px solid #ccc; }
dl { display: grid; grid-template-columns: max-content 1fr; gap: 0.2em 1em; margin: 0.8em 0 0; }
dt { font-weight: bold; }
dd { margin: 0; }
.split { margin: 0 0 0.5em; color: #555; }
"""


def build_html(run: str | Path, metrics: dict[str, Any]) -> str:
    run = Path(run)
    sections = [
        ("Evaluator accuracy", _evaluator(metrics)),
        ("Generation quality", _generation(metrics)),
        ("Reprompting efficiency", _per_method(
            metrics, "efficiency", EFFICIENCY_COLUMNS,
            "Satisfaction gained over the baseline text per reprompt (gain), per 100 reprompt words and per "
            "second of reprompting; tokens: mean reprompt length in words; seconds: per reprompt.")),
        ("Failure modes", _per_method(
            metrics, "failure_modes", FAILURE_COLUMNS,
            "Share of each method's texts that are lazy (repeat the instruction's abstract words), "
            "hallucinate (ask for what neither prompt nor instruction did) or omit part of the prompt.")),
        ("Retention", _retention(metrics)),
        ("Training curves", _curves(metrics, run)),
        ("Examples", _examples(metrics, run)),
    ]
    body = [_header(metrics, run)]
    for title, content in sections:
        body.append(f"<h2>{title}</h2>")
        body.append(content if content is not None else
                    f"<p class='note'>No {title.lower()} in metrics.json; section skipped.</p>")
    return ("<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
            f"<title>SEER report: {html.escape(run.name or str(run))}</title><style>{STYLE}</style></head>"
            f"<body>{''.join(body)}</body></html>\n")


def write_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Write RUN/report.html (or `out`) atomically; return its path."""
    from seer.io import atomic_write_text

    run = Path(run)
    if not run.is_dir():
        raise ReportError(f"{run}: no such run folder")
    metrics = load_metrics(run)
    try:
        text = build_html(run, metrics)
    except (AttributeError, TypeError, KeyError) as err:  # a value of the wrong shape somewhere
        raise ReportError(f"{run / 'metrics.json'}: does not follow {SCHEMA} "
                          f"({err.__class__.__name__}: {err})") from None
    out = Path(out) if out else run / "report.html"
    atomic_write_text(out, text)
    return out
