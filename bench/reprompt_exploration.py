"""Can RLMT find anything to learn? The policy's sampled reprompts, scored by the analyzer.

    python bench/reprompt_exploration.py VIE_DIR MODEL [MODEL ...] [--samples 24] [--generations 8]
        [--temperature 1.0] [--max-new-tokens 40]

MODEL is a model folder (`packaged` for the packaged mini weights). For the first
`--samples` (prompt, instruction) pairs of the VIE set's train split, each model writes
`--generations` reprompts at `--temperature`, as RLMT samples a group; each reprompt (the
baseline text when it cannot be parsed) is drawn with the sample's seed and its instruction
satisfaction read by the analyzer, beside the baseline text's and the oracle elaboration's
drawn by the same model. GRPO learns from differences within a group: a group whose best
reprompt beats its mean has a signal; if no sample ever beats the baseline text, no reward,
however exact, can teach the policy anything.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections import Counter
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from common import machine, table  # noqa: E402
from seer.data.vie import load_samples  # noqa: E402
from seer.models import load_model  # noqa: E402
from seer.rollout import sample_reprompts, sample_seed  # noqa: E402
from seer.world.analyzer import analyze_scene  # noqa: E402
from seer.world.instructions import load_instructions  # noqa: E402


def _kind(parsed, instruction: str) -> str:
    """What a sampled reprompt is: unreadable, an evaluator's answer, the instruction repeated
    (lazy), or something else (a restatement, perhaps changed)."""
    if not parsed.ok:
        return "unreadable"
    if parsed.reprompt.strip() in ("yes", "no"):
        return "yes/no"
    return "lazy" if instruction in parsed.reprompt else "other"


def explore(model, rows: list[dict], generations: int, temperature: float, max_new_tokens: int) -> dict:
    instructions = load_instructions()
    generator = torch.Generator().manual_seed(0)
    base, oracle, mean, best, readable, signal, better = [], [], [], [], [], [], []
    kinds = Counter()
    for row in rows:
        texts, parsed = sample_reprompts(model, [row] * generations, max_new_tokens=max_new_tokens,
                                         temperature=temperature, top_k=None, generator=generator)
        kinds.update(_kind(p, row["instruction"]) for p in parsed)
        seed = sample_seed(0, row)
        drawn = texts + [row["baseline"], row["elaboration"]]
        images = model.generate_images(drawn, seed=[seed] * len(drawn))
        rule = instructions.by_text(row["instruction"])
        scores = [rule.satisfaction(analyze_scene(image)) for image in images]
        group = scores[:generations]
        base.append(scores[-2])
        oracle.append(scores[-1])
        mean.append(statistics.mean(group))
        best.append(max(group))
        readable.append(sum(p.ok for p in parsed) / generations)
        signal.append(max(group) > min(group))
        better.append(max(group) > scores[-2])
    return {
        "baseline": statistics.mean(base),
        "oracle": statistics.mean(oracle),
        "sampled": statistics.mean(mean),
        "best_of_group": statistics.mean(best),
        "readable": statistics.mean(readable),
        "groups_with_spread": statistics.mean(signal),
        "groups_beating_baseline": statistics.mean(better),
        "kinds": {k: v / (len(rows) * generations) for k, v in kinds.most_common()},
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("vie")
    ap.add_argument("models", nargs="+")
    ap.add_argument("--samples", type=int, default=24)
    ap.add_argument("--generations", type=int, default=8)
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--max-new-tokens", type=int, default=40)
    args = ap.parse_args()
    rows = load_samples(args.vie, "train")[: args.samples]
    print(f"machine: {machine()}")
    print(f"settings: {len(rows)} train samples of {args.vie}, G = {args.generations}, "
          f"temperature {args.temperature}, {args.max_new_tokens} new tokens; satisfaction by the analyzer")
    results = []
    for name in args.models:
        started = time.perf_counter()
        model = load_model(None, None if name == "packaged" else name).eval()
        r = explore(model, rows, args.generations, args.temperature, args.max_new_tokens)
        results.append([name, f"{r['baseline']:.1%}", f"{r['oracle']:.1%}", f"{r['sampled']:.1%}",
                        f"{r['best_of_group']:.1%}", f"{r['readable']:.0%}", f"{r['groups_with_spread']:.0%}",
                        f"{r['groups_beating_baseline']:.0%}", f"{time.perf_counter() - started:.0f}"])
        print(f"{name}: reprompts " + ", ".join(f"{k} {v:.0%}" for k, v in r["kinds"].items()))
    print(table(["model", "baseline text", "oracle", "sampled reprompts", "best of group", "readable",
                 "groups with spread", "groups beating baseline", "s"], results))


if __name__ == "__main__":
    main()
