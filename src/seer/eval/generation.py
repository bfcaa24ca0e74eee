"""Generation quality of reprompting methods, with ground truth from the shapes world.

Each method turns a VIE sample (prompt P, instruction I) into the text the generator
renders: `baseline` (P, I), `oracle` (the elaboration E), `policy` (the model's own
reprompt), or any other rewriter. The frozen generator renders each text with the same
seed per sample (common random numbers: methods differ only by their text), and the
analyzer reads the scene back:

- instruction satisfaction: the share of I's clauses the image meets (and `full`: all);
- prompt fidelity: the share of P's attributes kept, not counting those I governs;
- exact: the image is exactly the oracle scene.
Rows are split in distribution (training instructions) and out of distribution (held-out
paraphrases and compositions), and simple / hard.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable

import numpy as np
from PIL import Image

from seer.models.interface import UnifiedModel
from seer.rollout import ImageCache, sample_seed
from seer.world.analyzer import analyze_scene
from seer.world.descriptors import DescriptorError, parse
from seer.world.instructions import load_instructions
from seer.world.scores import prompt_fidelity

Method = Callable[[list[dict]], list[str]]


def render_texts(
    generator: UnifiedModel, texts: list[str], seeds: list[int], batch_size: int = 128, desc: str = "render"
) -> list[Image.Image]:
    """One image per (text, seed), each distinct pair rendered once (methods often share a
    text: a reprompt that fell back to the baseline, a policy that did not change), in
    batches of `batch_size`: bigger batches use the cores better on CPU."""
    return ImageCache(generator, batch_size=batch_size).get(texts, seeds, desc=desc)


def score_world(samples: list[dict], images: list[Image.Image]) -> list[dict]:
    """Ground-truth scores of one image per sample (shapes world only)."""
    instructions = load_instructions()
    rows = []
    for sample, image in zip(samples, images, strict=True):
        ins = instructions.by_text(sample["instruction"])
        try:
            prompt = parse(sample["prompt"])
        except DescriptorError as err:
            raise ValueError(f"sample {sample['id']}: the prompt is not a world descriptor ({err})") from None
        seen = analyze_scene(image)
        satisfaction = ins.satisfaction(seen)
        rows.append(
            {
                "satisfaction": satisfaction,
                "full": float(satisfaction == 1.0),
                "fidelity": prompt_fidelity(prompt, seen, ins),
                "exact": float(seen == ins.apply(prompt)),
                "distribution": "id" if ins.in_distribution else "ood",
                "difficulty": ins.difficulty,
            }
        )
    return rows


def summarize(rows: list[dict]) -> dict[str, dict[str, float]]:
    """Means of every score, overall and per distribution / difficulty."""
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups["all"].append(row)
        groups[row["distribution"]].append(row)
        groups[f"{row['distribution']}/{row['difficulty']}"].append(row)
    keys = ("satisfaction", "full", "fidelity", "exact")
    return {
        name: {k: float(np.mean([r[k] for r in g])) for k in keys} | {"n": len(g)}
        for name, g in sorted(groups.items())
    }


def render_methods(
    generator: UnifiedModel, samples: list[dict], methods: dict[str, list[str]], *, seed: int = 0,
    batch_size: int = 128, desc: str = "render",
) -> dict[str, list[Image.Image]]:
    """{method: one image per sample}, every method's images in one pass (big batches; a text
    two methods share is drawn once). A sample's images share its seed, so methods differ
    only by their text."""
    for name, texts in methods.items():
        if len(texts) != len(samples):
            raise ValueError(f"method {name}: {len(texts)} texts for {len(samples)} samples")
    seeds = [sample_seed(seed, s) for s in samples]
    drawn = render_texts(generator, [t for texts in methods.values() for t in texts], seeds * len(methods),
                         batch_size, desc=desc)
    n = len(samples)
    return {name: drawn[k * n:(k + 1) * n] for k, name in enumerate(methods)}


def method_table(
    generator: UnifiedModel,
    samples: list[dict],
    methods: dict[str, list[str]],
    *,
    seed: int = 0,
    batch_size: int = 128,
) -> dict[str, dict[str, dict[str, float]]]:
    """{method: {group: scores}} for texts already written by each method (one per sample)."""
    images = render_methods(generator, samples, methods, seed=seed, batch_size=batch_size)
    return {name: summarize(score_world(samples, images[name])) for name in methods}


def gap_closed(table: dict, method: str, group: str = "all") -> float:
    """Share of the baseline-to-oracle satisfaction gap that `method` closes."""
    base, oracle = table["baseline"][group]["satisfaction"], table["oracle"][group]["satisfaction"]
    if oracle <= base:
        return float("nan")
    return (table[method][group]["satisfaction"] - base) / (oracle - base)
