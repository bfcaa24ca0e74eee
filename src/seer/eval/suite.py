"""`seer eval`: every claim of a SEER run measured against baselines, in one metrics.json.

Sections (docs/report.md documents the schema, "seer.eval/1"):
- evaluator_accuracy: the evaluator before RLVR (the base model) and after (the RLVR
  checkpoint) on held-out image pairs, per kind and per image order;
- generation: instruction satisfaction, prompt fidelity and exact scenes of the images
  each method's text gives (ground truth from the analyzer), per split and group;
  methods: plain prompt, baseline text, rule-based rewriter, an external LLM rewriter
  (`llm`, SmolLM2 offline, when its optional extra is installed), oracle elaboration, the
  policy before RLMT and after; `gap_closed`: share of the baseline-to-oracle gap each closes;
- efficiency: satisfaction gained over the baseline text per reprompt, per 100 reprompt
  tokens and per second of reprompting latency (docs/eval.md);
- failure_modes: laziness, hallucination, omission rates of each method's texts;
- retention: understanding QA accuracy and text perplexity before and after training;
- examples: baseline | reprompted | oracle images of a few held-out samples.
All images of a sample share one seed, so methods differ only by their text. The
generator is the evaluated checkpoint itself: what a user of `seer generate` gets.
"""

from __future__ import annotations

import csv
import dataclasses
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np

from seer.io import atomic_path, atomic_save_image, atomic_write_json
from seer.models.interface import UnifiedModel
from seer.world.descriptors import DescriptorError, parse

SCHEMA = "seer.eval/1"
BASELINES = ("plain", "baseline", "rule_based", "oracle")
SECTIONS = ("evaluator", "generation", "retention")


@dataclasses.dataclass
class EvalConfig:
    out: str = "runs/eval"
    seed: int = 0
    checkpoint: str = "runs/rlmt/model"  # the trained policy (and the generator)
    evaluator: str | None = "runs/rlvr/model"  # the RLVR checkpoint; None: skip evaluator accuracy
    base: str | None = None  # the model before SEER (default: the packaged mini model)
    policy_before: str | None = "runs/rlvr/model"  # the policy before RLMT (RLMT's starting point)
    vie: str = "runs/vie"
    # Keyword arguments for the backend's from_pretrained (dtype, device, gradient_checkpointing, ...).
    model_options: dict[str, Any] = dataclasses.field(default_factory=dict)
    splits: list[str] = dataclasses.field(default_factory=lambda: ["test_id", "test_ood"])
    samples: int = 0  # per split; 0: all
    evaluator_items: int = 0  # per split; 0: all
    retention_items: int = 100
    examples: int = 6
    batch_size: int = 32  # texts per text call, evaluator items per call
    render_batch_size: int = 128  # images per image call (all methods' images share calls)
    max_new_tokens: int = 48
    llm_rewriter: bool = True  # add the external LLM rewriter ("llm") when its extra is installed
    logs: dict[str, str] = dataclasses.field(default_factory=dict)  # name -> log.jsonl, for the report
    sections: list[str] = dataclasses.field(default_factory=lambda: list(SECTIONS))

    def validate(self) -> None:
        from seer.config import ConfigError

        unknown = set(self.sections) - set(SECTIONS)
        if unknown:
            raise ConfigError(f"unknown section '{sorted(unknown)[0]}' (expected: {', '.join(SECTIONS)})")


# ---------------------------------------------------------------- failure modes


def _literal_words() -> set[str]:
    from seer.world.descriptors import describe
    from seer.world.scene import sample_scene

    rng = random.Random(0)
    words = {w for _ in range(3000) for w in describe(sample_scene(rng), rng).replace(",", " ").split()}
    return words


_STOPWORDS = {
    "it",
    "a",
    "an",
    "the",
    "of",
    "and",
    "but",
    "yet",
    "make",
    "look",
    "like",
    "give",
    "turn",
    "into",
    "let",
    "on",
    "in",
    "to",
    "with",
    "its",
    "is",
    "be",
    "set",
    "show",
    "keep",
    "more",
    "very",
    "all",
}


def failure_modes(samples: list[dict], texts: list[str]) -> dict[str, float]:
    """Rates over one method's texts, with ground truth from the world:
    laziness: the text repeats an abstract word of the instruction (a word that is neither
      a literal descriptor word nor a stop word) instead of elaborating it;
    hallucination: the text asks for a global attribute or object that neither the prompt
      nor the instruction called for;
    omission: the text drops or changes an attribute of the prompt the instruction does
      not govern. Texts that are not readable descriptors count as omissions.
    """
    from seer.world.instructions import load_instructions
    from seer.world.scene import GLOBAL_DEFAULTS, GLOBAL_FIELDS
    from seer.world.scores import _governed, prompt_fidelity

    instructions = load_instructions()
    literal = _literal_words()
    lazy = halluc = omit = 0
    for sample, text in zip(samples, texts, strict=True):
        ins = instructions.by_text(sample["instruction"])
        abstract = {w for w in ins.text.lower().replace(",", " ").split()} - literal - _STOPWORDS
        lazy += bool(abstract & set(text.lower().replace(",", " ").split()))
        prompt = parse(sample["prompt"])
        try:
            said = parse(text)
        except DescriptorError:
            omit += 1
            continue
        target = ins.apply(prompt)
        governed = _governed(ins)
        extra = any(
            getattr(said, f) != GLOBAL_DEFAULTS[f] and getattr(said, f) != getattr(target, f)
            for f in GLOBAL_FIELDS
            if f not in governed
        )
        extra |= len(said.objects) > len(target.objects)
        halluc += extra
        omit += prompt_fidelity(prompt, said, ins) < 1.0
    n = max(len(texts), 1)
    return {"laziness": lazy / n, "hallucination": halluc / n, "omission": omit / n}


# ---------------------------------------------------------------- retention


def perplexity(model: UnifiedModel, seed: int, n: int, batch_size: int = 32) -> float:
    """exp(mean token NLL) of held-out text answers: knowledge and restatements."""
    import torch

    from seer.data.mix import Mix

    mix = Mix(seed + 7919)  # a seed no pretraining run uses by default
    examples = [mix.example(i, kind) for i in range(n // 2) for kind in ("knowledge", "restate")]
    nll, tokens = 0.0, 0
    with torch.no_grad():
        for k in range(0, len(examples), batch_size):
            chunk = examples[k : k + batch_size]
            comps = [torch.tensor(model.text_ids(e.answer) + [model.eos_id]) for e in chunk]
            logp, mask = model.completion_logprobs([e.prompt for e in chunk], comps)
            nll -= float((logp * mask).sum())
            tokens += int(mask.sum())
    return math.exp(nll / max(tokens, 1))


def retention(model: UnifiedModel, n: int, seed: int, batch_size: int) -> dict[str, float]:
    from seer.eval.mini import understanding

    table = understanding(model, n=n, seed=seed, batch_size=batch_size)
    if hasattr(model, "text_ids"):
        table["perplexity"] = perplexity(model, seed, n, batch_size)
    return table


# ---------------------------------------------------------------- the run


def _llm_rewriter(cfg: EvalConfig, metrics: dict[str, Any]):
    """The external LLM rewriter, or None with the reason in metrics["llm_rewriter"]."""
    from seer.eval.llm_rewriter import GGUF_NAME, LLMRewriter, unavailable_reason

    reason = unavailable_reason() if cfg.llm_rewriter else "disabled (llm_rewriter: false)"
    if reason:
        metrics["llm_rewriter"] = f"unavailable: {reason}"
        return None
    metrics["llm_rewriter"] = GGUF_NAME
    return LLMRewriter(max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size, seed=cfg.seed)


def _timed_llm(llm, samples: list[dict]) -> tuple[list[str], float]:
    t0 = time.perf_counter()
    texts = llm.rewrite([s["prompt"] for s in samples], [s["instruction"] for s in samples])
    seconds = (time.perf_counter() - t0) / max(len(samples), 1)
    return [t or s["baseline"] for t, s in zip(texts, samples, strict=True)], seconds


def run_eval(cfg: EvalConfig) -> dict[str, Any]:
    from seer.data.vie import load_items, load_samples, open_images
    from seer.eval.baselines import texts_for
    from seer.eval.evaluator import evaluate_items
    from seer.eval.generation import gap_closed, render_methods, score_world, summarize
    from seer.models import load_model
    from seer.rollout import sample_reprompts

    cfg.validate()
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    atomic_write_json(out / "eval_config.json", dataclasses.asdict(cfg))
    metrics: dict[str, Any] = {
        "schema": SCHEMA,
        "checkpoint": cfg.checkpoint,
        "evaluator": cfg.evaluator,
        "base": cfg.base or "packaged mini",
        "vie": cfg.vie,
        "seed": cfg.seed,
        "logs": dict(cfg.logs),
    }
    uses_checkpoint = {"generation", "retention"} & set(cfg.sections)
    checkpoint = load_model(None, cfg.checkpoint, **cfg.model_options).eval() if uses_checkpoint else None
    base = load_model(None, cfg.base, **cfg.model_options).eval()
    before = base
    if cfg.policy_before and "generation" in cfg.sections:
        before = load_model(None, cfg.policy_before, **cfg.model_options).eval()

    if cfg.evaluator and "evaluator" in cfg.sections:
        evaluator = load_model(None, cfg.evaluator, **cfg.model_options).eval()
        acc: dict[str, dict] = {"before": {}, "after": {}}
        for split in cfg.splits:
            items = load_items(cfg.vie, split)
            items = items[: cfg.evaluator_items] if cfg.evaluator_items else items
            for tag, model in (("before", base), ("after", evaluator)):
                acc[tag][split] = evaluate_items(
                    model,
                    items,
                    lambda row: open_images(cfg.vie, row),
                    batch_size=cfg.batch_size,
                    desc=f"evaluator {tag} {split}",
                )
        metrics["evaluator_accuracy"] = acc

    generation, gaps, efficiency, failures, examples = {}, {}, {}, {}, []
    llm = _llm_rewriter(cfg, metrics) if "generation" in cfg.sections else None
    for split in cfg.splits if "generation" in cfg.sections else []:
        samples = load_samples(cfg.vie, split)
        samples = samples[: cfg.samples] if cfg.samples else samples
        texts = {m: texts_for(m, samples) for m in BASELINES}
        seconds = {m: 0.0 for m in BASELINES}
        parsed_after = None
        for name, model in (("policy_before", before), ("policy_after", checkpoint)):
            t0 = time.perf_counter()
            texts[name], parsed = sample_reprompts(
                model, samples, max_new_tokens=cfg.max_new_tokens, batch_size=cfg.batch_size
            )
            seconds[name] = (time.perf_counter() - t0) / max(len(samples), 1)
            if name == "policy_after":
                parsed_after = parsed
        if llm is not None:
            texts["llm"], seconds["llm"] = _timed_llm(llm, samples)
        images = render_methods(
            checkpoint, samples, texts, seed=cfg.seed, batch_size=cfg.render_batch_size,
            desc=f"{split} render",
        )
        table = {m: summarize(score_world(samples, images[m])) for m in texts}
        generation[split] = table
        gaps[split] = {m: gap_closed(table, m) for m in texts if m not in ("baseline", "oracle")}
        base_sat = table["baseline"]["all"]["satisfaction"]
        efficiency[split] = {}
        for name in ("rule_based", "oracle", "policy_before", "policy_after", *(["llm"] if llm else [])):
            gain = table[name]["all"]["satisfaction"] - base_sat
            tokens = float(np.mean([len(t.split()) for t in texts[name]]))
            efficiency[split][name] = {
                "gain": gain,
                "tokens": tokens,
                "gain_per_100_tokens": 100 * gain / tokens if tokens else 0.0,
                "seconds": seconds[name],
                "gain_per_second": gain / seconds[name] if seconds[name] > 0 else None,
            }
        failures[split] = {m: failure_modes(samples, texts[m]) for m in texts if m != "plain"}
        for k, sample in enumerate(samples[: cfg.examples]):
            names = {}
            for role, method in (
                ("baseline", "baseline"),
                ("reprompted", "policy_after"),
                ("oracle", "oracle"),
            ):
                rel = f"examples/{split}_{k}_{role}.png"
                atomic_save_image(images[method][k], out / rel)
                names[role] = rel
            p = parsed_after[k]
            examples.append(
                {
                    "split": split,
                    "prompt": sample["prompt"],
                    "instruction": sample["instruction"],
                    "reasoning": p.reasoning,
                    "reprompt": p.reprompt if p.ok else f"(unreadable: {p.error})",
                    "oracle": sample["elaboration"],
                    "images": names,
                }
            )
    if "generation" in cfg.sections:
        metrics |= {
            "generation": generation,
            "gap_closed": gaps,
            "efficiency": efficiency,
            "failure_modes": failures,
            "examples": examples,
        }
    if cfg.retention_items and "retention" in cfg.sections:
        metrics["retention"] = {
            "before": retention(base, cfg.retention_items, cfg.seed, cfg.batch_size),
            "after": retention(checkpoint, cfg.retention_items, cfg.seed, cfg.batch_size),
        }
    atomic_write_json(out / "metrics.json", metrics)
    write_tables(metrics, out)
    return metrics


def write_tables(metrics: dict[str, Any], out: Path) -> None:
    """CSV tables beside metrics.json: generation.csv, evaluator.csv, failure_modes.csv."""
    rows = [
        {"split": split, "method": method, "group": group, **values}
        for split, table in metrics.get("generation", {}).items()
        for method, groups in table.items()
        for group, values in groups.items()
    ]
    _csv(out / "generation.csv", rows)
    rows = [
        {"when": when, "split": split, **table}
        for when, splits in metrics.get("evaluator_accuracy", {}).items()
        for split, table in splits.items()
    ]
    _csv(out / "evaluator.csv", rows)
    rows = [
        {"split": split, "method": method, **rates}
        for split, table in metrics.get("failure_modes", {}).items()
        for method, rates in table.items()
    ]
    _csv(out / "failure_modes.csv", rows)


def _csv(path: Path, rows: list[dict]) -> None:
    if not rows:
        return
    fields = list(dict.fromkeys(k for row in rows for k in row))
    with atomic_path(path) as tmp, open(tmp, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=fields)
        writer.writeheader()
        writer.writerows(rows)
