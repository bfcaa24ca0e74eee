"""Check a finished `seer demo` folder: every output is there and RLVR made a better judge.

    python scripts/check_demo.py runs/demo [--min-gain 0.10]

CI runs the full demo after the test suite and then this check. Exits 1 with one line
naming what is missing or short; prints the stage timings otherwise.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

OUTPUTS = ("metrics.json", "report.html", "demo.json", "timings.json",
           "checkpoints/rlvr/model/mini.json", "checkpoints/rlmt/model/mini.json")


def check(root: Path, min_gain: float) -> list[str]:
    problems = [f"{root / name}: missing" for name in OUTPUTS if not (root / name).exists()]
    if problems:
        return problems
    accuracy = json.loads((root / "metrics.json").read_text()).get("evaluator_accuracy") or {}
    for split, after in (accuracy.get("after") or {}).items():
        before = (accuracy.get("before") or {}).get(split, {}).get("accuracy")
        if before is None or after.get("accuracy") is None:
            problems.append(f"{root / 'metrics.json'}: evaluator_accuracy.{split} lacks before or after")
        elif after["accuracy"] < before + min_gain:
            problems.append(f"{root / 'metrics.json'}: evaluator accuracy on {split} {after['accuracy']:.3f} "
                            f"is not {min_gain:.2f} above the base's {before:.3f}")
    if not accuracy.get("after"):
        problems.append(f"{root / 'metrics.json'}: no evaluator accuracy after RLVR")
    return problems


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("folder", type=Path)
    ap.add_argument("--min-gain", type=float, default=0.10,
                    help="evaluator accuracy after RLVR must beat the base by this much on every split")
    args = ap.parse_args()
    problems = check(args.folder, args.min_gain)
    for line in problems:
        print(f"check_demo: {line}", file=sys.stderr)
    if problems:
        return 1
    timings = json.loads((args.folder / "timings.json").read_text())
    print("check_demo: ok; stage seconds: " + ", ".join(f"{k} {v:.0f}" for k, v in timings.items()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
