"""Regenerate the README's demo section from a finished `seer demo` folder.

    python scripts/readme_demo.py runs/demo [--readme README.md] [--image docs/images/demo.png]

Writes an image grid (baseline | reprompted | oracle for the run's examples, each labelled
with its instruction) and replaces the README text between the demo markers with the
run's headline table, so the README shows a real run and never hand-copied numbers.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from PIL import Image, ImageDraw

START, END = "<!-- demo:start (scripts/readme_demo.py) -->", "<!-- demo:end -->"
METHODS = (
    ("baseline", "baseline text (prompt + instruction)"),
    ("rule_based", "rule-based rewriter"),
    ("llm", "SmolLM2 rewriter"),
    ("policy_before", "policy before RLMT"),
    ("policy_after", "SEER policy (after RLMT)"),
    ("oracle", "oracle elaboration"),
)


def _pct(value) -> str:
    return f"{100 * value:.1f}%" if isinstance(value, (int, float)) else "-"


def table(metrics: dict) -> str:
    """Markdown tables: evaluator accuracy before/after RLVR; satisfaction and fidelity per method."""
    lines = []
    acc = metrics.get("evaluator_accuracy") or {}
    before, after = acc.get("before") or {}, acc.get("after") or {}
    if after:
        lines += ["| evaluator (held-out pairs) | before RLVR | after RLVR | position gap after |",
                  "|---|---|---|---|"]
        for split, row in after.items():
            lines.append(f"| {split} | {_pct((before.get(split) or {}).get('accuracy'))} | "
                         f"{_pct(row.get('accuracy'))} | {_pct(row.get('position_bias_gap'))} |")
        lines.append("")
    generation = metrics.get("generation") or {}
    splits = [s for s in generation if isinstance(generation[s], dict)]
    if splits:
        lines += ["| instruction satisfaction (fidelity) | " + " | ".join(splits) + " |",
                  "|---|" + "---|" * len(splits)]
        for method, label in METHODS:
            cells = []
            for split in splits:
                row = ((generation[split].get(method) or {}).get("all")) or {}
                cells.append(f"{_pct(row.get('satisfaction'))} ({_pct(row.get('fidelity'))})" if row else "-")
            if any(c != "-" for c in cells):
                lines.append(f"| {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def grid(run: Path, examples: list[dict], scale: int = 2) -> Image.Image:
    """One row per example: baseline | reprompted | oracle, the instruction above."""
    roles = ("baseline", "reprompted", "oracle")
    size, header, pad = 64 * scale, 28, 6
    width = pad + len(roles) * (size + pad)
    canvas = Image.new("RGB", (width, header + len(examples) * (size + header + pad)), "white")
    draw = ImageDraw.Draw(canvas)
    for k, role in enumerate(roles):
        draw.text((pad + k * (size + pad), 6), role, fill="black")
    for row, example in enumerate(examples):
        top = header + row * (size + header + pad)
        draw.text((pad, top + 4), f"{example['instruction']}"[:60], fill="black")
        for k, role in enumerate(roles):
            image = Image.open(run / example["images"][role]).convert("RGB")
            image = image.resize((size, size), Image.NEAREST)
            canvas.paste(image, (pad + k * (size + pad), top + header - 6))
    return canvas


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("run", type=Path, help="a finished `seer demo --out` folder")
    ap.add_argument("--readme", type=Path, default=Path("README.md"))
    ap.add_argument("--image", type=Path, default=Path("docs/images/demo.png"))
    ap.add_argument("--examples", type=int, default=4)
    ap.add_argument("--source", help="where the run came from, for the README (default: the folder's path)")
    args = ap.parse_args(argv)
    metrics_file = args.run / "metrics.json"
    if not metrics_file.exists():
        print(f"{metrics_file}: missing (run `seer demo --out {args.run}` first)", file=sys.stderr)
        return 1
    metrics = json.loads(metrics_file.read_text())
    text = args.readme.read_text()
    if START not in text or END not in text:
        print(f"{args.readme}: no demo markers ({START} ... {END})", file=sys.stderr)
        return 1
    examples = [e for e in metrics.get("examples") or [] if e.get("split") == "test_id"][: args.examples]
    args.image.parent.mkdir(parents=True, exist_ok=True)
    if examples:
        grid(args.run, examples).save(args.image)
    timings = args.run / "timings.json"
    seconds = json.loads(timings.read_text()) if timings.exists() else {}
    numbers = {name: value for name, value in seconds.items() if isinstance(value, (int, float))}
    total = sum(numbers.values())
    body = [table(metrics), ""]
    if examples:
        alt = "baseline, reprompted and oracle images of held-out samples"
        body += [f"![{alt}]({args.image.as_posix()})", ""]
    stages = ", ".join(f"{name} {value:.0f}" for name, value in numbers.items())
    source, shown = (args.source, "DIR") if args.source else (f"`{args.run}`", args.run)
    took = f"; the demo took {total / 60:.1f} min there (stage seconds: {stages})." if total else "."
    body.append(f"Regenerated from {source} by `python scripts/readme_demo.py {shown}`{took}")
    head, rest = text.split(START, 1)
    _, tail = rest.split(END, 1)
    args.readme.write_text(head + START + "\n" + "\n".join(body) + "\n" + END + tail)
    print(f"updated {args.readme} and {args.image}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
