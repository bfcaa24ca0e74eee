"""The `seer` command line: one sub-command per step of the data flow."""

from __future__ import annotations

import argparse
import json
import os
import random
import sys
from pathlib import Path

from seer.world.geometry import DEFAULT_SIZE


class UsageError(ValueError):
    """Bad command-line input; reported as one line."""


# ---------------------------------------------------------------- seer world

def _world_render(args: argparse.Namespace) -> None:
    from seer.world.descriptors import parse
    from seer.world.render import render

    scene = parse(args.text)
    image = render(scene, args.size)
    if args.scale > 1:
        image = image.resize((image.width * args.scale,) * 2, 0)
    _save_image(image, args.out)
    print(f"wrote {args.out}")


def _world_sample(args: argparse.Namespace) -> None:
    from seer.world.descriptors import describe
    from seer.world.render import captioned_grid, render
    from seer.world.scene import sample_scene

    if args.n < 1:
        raise UsageError(f"--n must be at least 1, got {args.n}")
    rng = random.Random(args.seed)
    scenes = [sample_scene(rng, plain=args.plain) for _ in range(args.n)]
    texts = [describe(s) for s in scenes]
    sheet = captioned_grid([render(s, args.size) for s in scenes], texts, cols=args.cols)
    _save_image(sheet, args.out)
    for k, text in enumerate(texts):
        print(f"{k:3d}  {text}")
    print(f"wrote {args.out}")


def _world_score(args: argparse.Namespace) -> None:
    from PIL import Image, UnidentifiedImageError

    from seer.world.instructions import load_instructions
    from seer.world.scores import score_image

    try:
        image = Image.open(args.image).convert("RGB")
    except (OSError, UnidentifiedImageError) as err:
        raise UsageError(f"{args.image}: cannot read image ({err.__class__.__name__})") from None
    instruction = load_instructions().by_text(args.instruction) if args.instruction else None
    print(json.dumps(score_image(image, args.text, instruction), indent=2))


def _world_instructions(args: argparse.Namespace) -> None:
    from seer.world.instructions import load_instructions

    for ins in load_instructions().split(args.split, args.difficulty):
        print(f"{ins.split:12s} {ins.difficulty:7s} {'+'.join(ins.families):22s} {ins.text}")


def _save_image(image, out: str) -> None:
    from seer.io import atomic_save_image

    atomic_save_image(image, Path(out))


# ---------------------------------------------------------------- seer pretrain

def _pretrain(args: argparse.Namespace) -> None:
    import torch

    from seer.config import resolve
    from seer.io import atomic_write_json
    from seer.train.pretrain import PretrainConfig, pretrain

    if args.eval < 0:
        raise UsageError(f"--eval must be 0 (off) or a number of items, got {args.eval}")
    cfg = resolve(PretrainConfig, args.config, args.set, out=args.out, seed=args.seed)
    if args.threads:
        torch.set_num_threads(args.threads)
    model_dir = pretrain(cfg, resume=args.resume)
    print(f"wrote {model_dir}")
    if args.eval:
        from seer.eval import mini as ev
        from seer.models.mini.model import MiniUMM

        model = MiniUMM.from_pretrained(model_dir)
        figures = ev.figures(model, n=args.eval)
        atomic_write_json(Path(cfg.out) / "figures.json", figures)
        print(json.dumps(figures, indent=2))


# ---------------------------------------------------------------- seer data

def _data_vie(args: argparse.Namespace) -> None:
    from seer.config import resolve
    from seer.data.vie import VIEConfig, build_vie, load_manifest

    cfg = resolve(VIEConfig, args.config, args.set, out=args.out, seed=args.seed, model=args.model,
                  source=args.source)
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)
    out = build_vie(cfg)
    manifest = load_manifest(out)
    for split, counts in manifest["counts"].items():
        print(f"{split:10s} {counts['samples']:5d} samples {counts['items']:6d} items")
    print(f"wrote {out}")


# ---------------------------------------------------------------- seer train, seer eval

def _config_args(p: argparse.ArgumentParser, name: str, example: str, default_out: str) -> None:
    p.add_argument("--config", help=f"YAML file of {name} keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help=f"override one config key, e.g. {example}")
    p.add_argument("--out", help=f"output folder (default {default_out})")
    p.add_argument("--seed", type=int)
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")


def _threads(args: argparse.Namespace) -> None:
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)


def _train_rlvr(args: argparse.Namespace) -> None:
    from seer.config import resolve
    from seer.train.rlvr import RLVRConfig, run_rlvr

    direct = {"vie": args.vie, "model": args.model, "curriculum": args.curriculum}
    cfg = resolve(RLVRConfig, args.config, args.set, out=args.out, seed=args.seed, **direct)
    _threads(args)
    metrics = run_rlvr(cfg, resume=args.resume)
    _print_evaluator(metrics)
    print(f"wrote {Path(cfg.out) / 'model'} and {Path(cfg.out) / 'metrics.json'}")


def _train_rlmt(args: argparse.Namespace) -> None:
    from seer.config import resolve
    from seer.train.rlmt import RLMTConfig, run_rlmt

    direct = {"vie": args.vie, "evaluator": args.evaluator, "start": args.start, "order": args.order,
              "reward": args.reward}
    cfg = resolve(RLMTConfig, args.config, args.set, out=args.out, seed=args.seed, **direct)
    _threads(args)
    metrics = run_rlmt(cfg, resume=args.resume)
    _print_quality(metrics.get("quality", {}))
    train = metrics["train"]
    print(f"RLMT: {train['steps_run']} steps, {train['seconds_per_step']:.1f} s/step")
    print(f"wrote {Path(cfg.out) / 'model'} and {Path(cfg.out) / 'metrics.json'}")


def _print_quality(quality: dict) -> None:
    for split, table in quality.items():
        for method, groups in table.items():
            row = groups["all"]
            print(f"{split:9s} {method:14s} satisfaction {row['satisfaction']:.3f}  full {row['full']:.3f}  "
                  f"fidelity {row['fidelity']:.3f}  (n={row['n']})")


def _print_evaluator(accuracy: dict) -> None:
    for tag in ("before", "after"):
        for split, table in accuracy.get(tag, {}).items():
            gap = table.get("position_bias_gap", float("nan"))
            print(f"{tag:6s} {split:9s} accuracy {table['accuracy']:.3f}  format {table['format']:.3f}  "
                  f"position gap {gap:.3f}  (n={table['n']})")


def _eval(args: argparse.Namespace) -> None:
    from seer.config import resolve
    from seer.eval.suite import EvalConfig, run_eval

    direct = {"checkpoint": args.checkpoint, "evaluator": args.evaluator, "vie": args.vie,
              "splits": args.splits, "sections": args.sections, "samples": args.samples}
    cfg = resolve(EvalConfig, args.config, args.set, out=args.out, seed=args.seed, **direct)
    _threads(args)
    metrics = run_eval(cfg)
    _print_evaluator(metrics.get("evaluator_accuracy", {}))
    _print_quality(metrics.get("generation", {}))
    print(f"wrote {Path(cfg.out) / 'metrics.json'} and its CSV tables")


def _demo(args: argparse.Namespace) -> None:
    from seer.config import resolve
    from seer.demo import DemoConfig, run_demo
    from seer.report import summary_lines

    cfg = resolve(DemoConfig, args.config, args.set, out=args.out, seed=args.seed, model=args.model)
    _threads(args)
    metrics = run_demo(cfg, resume=args.resume)
    print()
    for line in summary_lines(metrics):
        print(line)
    out = Path(cfg.out)
    print(f"\nreport: {out / 'report.html'}")
    print(f"try: seer generate --checkpoint {out / 'checkpoints' / 'rlmt'} --prompt "
          "'a large red circle in the center, on a white background' --instruction 'make it look like night' "
          f"--out {out / 'night.png'}")


# ---------------------------------------------------------------- seer generate

def _model_dir(args: argparse.Namespace) -> str | None:
    """--checkpoint accepts a model folder or a run folder that holds one (DIR/model)."""
    path = args.checkpoint or args.model
    if path and (Path(path) / "model").is_dir() and not (Path(path) / "mini.json").exists():
        return str(Path(path) / "model")
    return path


def _generate(args: argparse.Namespace) -> None:
    from seer import pipeline
    from seer.models import load_model

    if args.checkpoint and args.model:
        raise UsageError("give --model or --checkpoint, not both")
    if args.batch:
        if not args.out_dir:
            raise UsageError("--batch writes one folder per row: give --out-dir")
        rows = _batch_rows(args.batch)
    else:
        if not args.prompt:
            raise UsageError("give --prompt (or --batch FILE.jsonl)")
        if not (args.out or args.out_dir):
            raise UsageError("give --out FILE.png or --out-dir DIR")
        rows = [{"prompt": args.prompt, "instruction": args.instruction, "seed": args.seed}]
    model = load_model(args.backend, _model_dir(args))
    model.eval()
    results = pipeline.run(model, [r["prompt"] for r in rows], [r.get("instruction") for r in rows],
                           [r.get("seed", args.seed) for r in rows], reprompt=not args.no_reprompt,
                           guidance_scale=args.guidance)
    for k, result in enumerate(results):
        if result.reprompt is not None or result.error is not None:
            print(f"reasoning: {result.reasoning}")
            print(f"reprompt: {result.reprompt}" + (f"  (unreadable: {result.error}; "
                                                    "used the baseline text)" if result.error else ""))
        else:
            print(f"text: {result.baseline}")
        if args.batch:
            pipeline.write_dir(result, Path(args.out_dir) / f"{k:04d}", args.scale)
        elif args.out_dir:
            pipeline.write_dir(result, args.out_dir, args.scale)
        else:
            image = pipeline.side_by_side(result, args.scale) if result.reprompted_image is not None else (
                result.baseline_image.resize((result.baseline_image.width * args.scale,) * 2, 0))
            _save_image(image, args.out)
    if args.batch:
        from seer.io import atomic_write_text

        atomic_write_text(Path(args.out_dir) / "results.jsonl",
                          "".join(json.dumps(r.to_json()) + "\n" for r in results))
    print(f"wrote {args.out_dir or args.out}")


def _batch_rows(path: str) -> list[dict]:
    """Rows of a --batch JSONL: prompt (required), instruction and seed (optional)."""
    rows = []
    for n, line in enumerate(Path(path).read_text().splitlines(), 1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as err:
            raise UsageError(f"{path}:{n}: not JSON ({err.msg})") from None
        if not isinstance(row, dict) or not isinstance(row.get("prompt"), str) or not row["prompt"].strip():
            raise UsageError(f"{path}:{n}: field 'prompt' must be a non-empty string")
        if row.get("instruction") is not None and not isinstance(row["instruction"], str):
            raise UsageError(f"{path}:{n}: field 'instruction' must be a string")
        if "seed" in row and not isinstance(row["seed"], int):
            raise UsageError(f"{path}:{n}: field 'seed' must be an integer")
        rows.append(row)
    if not rows:
        raise UsageError(f"{path}: no rows")
    return rows


# ---------------------------------------------------------------- seer report

def _report(args: argparse.Namespace) -> None:
    from seer.report import load_metrics, summary_lines, write_report

    out = write_report(args.run, args.out)
    for line in summary_lines(load_metrics(args.run)):
        print(line)
    print(f"wrote {out}")


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

    p = commands.add_parser("demo", help="the whole method end to end: VIE, RLVR, RLMT, eval, report")
    _config_args(p, "DemoConfig", "--set rlmt.grpo.max_steps=10", "runs/demo")
    p.add_argument("--model", help="base model folder (default: the packaged mini model)")
    p.add_argument("--resume", action="store_true", help="continue an interrupted demo in --out")
    p.set_defaults(func=_demo)

    world = commands.add_parser("world", help="the shapes world: render, sample, score")
    wsub = world.add_subparsers(dest="world_command", required=True)

    p = wsub.add_parser("render", help="render a literal descriptor to a PNG")
    p.add_argument("--text", required=True,
                   help="e.g. 'a large red circle on the left, on a blue background'")
    p.add_argument("--out", required=True)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE, help="image side in pixels")
    p.add_argument("--scale", type=int, default=1, help="enlarge the saved PNG (nearest neighbour)")
    p.set_defaults(func=_world_render)

    p = wsub.add_parser("sample", help="a grid of random scenes with their descriptors")
    p.add_argument("--n", type=int, default=16)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=DEFAULT_SIZE)
    p.add_argument("--cols", type=int, default=4)
    p.add_argument("--plain", action="store_true", help="no sky, weather, decoration or style")
    p.set_defaults(func=_world_sample)

    p = wsub.add_parser("score", help="ground-truth scores of an image, as JSON")
    p.add_argument("--image", required=True)
    p.add_argument("--text", required=True, help="the literal prompt the image should show")
    p.add_argument("--instruction", help="an abstract instruction (see `seer world instructions`)")
    p.set_defaults(func=_world_score)

    p = wsub.add_parser("instructions", help="list the abstract instructions")
    p.add_argument("--split", choices=["train", "heldout", "composition", "ood"])
    p.add_argument("--difficulty", choices=["simple", "hard"])
    p.set_defaults(func=_world_instructions)

    p = commands.add_parser("pretrain", help="train the mini unified model from scratch")
    p.add_argument("--config", help="YAML file of PretrainConfig keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set steps=100 --set model.hidden_size=128")
    p.add_argument("--out", help="output folder (default runs/pretrain)")
    p.add_argument("--seed", type=int)
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    p.add_argument("--eval", type=int, default=0, metavar="N",
                   help="afterwards, measure the model's figures on N held-out items per kind")
    p.set_defaults(func=_pretrain)

    data = commands.add_parser("data", help="build data sets: VIE sets for the SEER stages")
    dsub = data.add_subparsers(dest="data_command", required=True)
    p = dsub.add_parser("vie", help="build a Visual Instruction Elaboration set: images and evaluator items")
    p.add_argument("--config", help="YAML file of VIEConfig keys")
    p.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                   help="override one config key, e.g. --set n_train=50 --set require_margin=false")
    p.add_argument("--out", help="output folder (default runs/vie)")
    p.add_argument("--seed", type=int)
    p.add_argument("--model", help="model folder (default: the packaged mini model)")
    p.add_argument("--source",
                   help="'world' (default) or a JSONL of prompt, instruction, elaboration[, split]")
    p.add_argument("--threads", type=int, default=0, help="torch CPU threads (default: all cores)")
    p.set_defaults(func=_data_vie)

    train = commands.add_parser("train", help="the SEER stages: rlvr (evaluator), rlmt (reprompter)")
    tsub = train.add_subparsers(dest="train_command", required=True)
    p = tsub.add_parser("rlvr", help="Stage 1: train the evaluator with verifiable rewards and a curriculum")
    _config_args(p, "RLVRConfig", "--set grpo.max_steps=30 --set grpo.beta=0.04", "runs/rlvr")
    p.add_argument("--vie", help="VIE set folder from `seer data vie` (default runs/vie)")
    p.add_argument("--model", help="starting model folder (default: the packaged mini model)")
    p.add_argument("--curriculum", choices=["easy_to_hard", "none"])
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.set_defaults(func=_train_rlvr)

    p = tsub.add_parser("rlmt", help="Stage 2: train the reprompting policy on the frozen evaluator's P(Yes)")
    _config_args(p, "RLMTConfig", "--set grpo.max_steps=20 --set order=policy_first", "runs/rlmt")
    p.add_argument("--vie", help="VIE set folder (default runs/vie)")
    p.add_argument("--evaluator", help="the RLVR model folder, frozen (default runs/rlvr/model)")
    p.add_argument("--start", choices=["rlvr", "base"], help="policy starts from the RLVR model or the base")
    p.add_argument("--order", choices=["both", "policy_first"], help="image orders the reward averages")
    p.add_argument("--reward", choices=["evaluator", "ground_truth"],
                   help="the frozen evaluator's P(Yes) (SEER) or the analyzer's satisfaction (ablation)")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint in --out")
    p.set_defaults(func=_train_rlmt)

    p = commands.add_parser("eval", help="measure a SEER run against baselines: metrics.json and CSV tables")
    _config_args(p, "EvalConfig", "--set samples=50 --set retention_items=0", "runs/eval")
    p.add_argument("--checkpoint", help="the trained policy (default runs/rlmt/model)")
    p.add_argument("--evaluator", help="the RLVR model (default runs/rlvr/model)")
    p.add_argument("--vie", help="VIE set folder (default runs/vie)")
    p.add_argument("--splits", nargs="+", help="VIE splits (default test_id test_ood)")
    p.add_argument("--sections", nargs="+", choices=["evaluator", "generation", "retention"],
                   help="what to measure (default: all)")
    p.add_argument("--samples", type=int, help="samples per split (default: all)")
    p.set_defaults(func=_eval)

    p = commands.add_parser("report", help="one self-contained HTML file of a run: tables, curves, images")
    p.add_argument("--run", required=True, help="run folder holding metrics.json from `seer eval`")
    p.add_argument("--out", help="HTML file to write (default RUN/report.html)")
    p.set_defaults(func=_report)

    p = commands.add_parser("generate", help="reprompt, then generate: baseline and reprompted images")
    p.add_argument("--backend", choices=["mini"], help="backend (default: read from the folder, else mini)")
    p.add_argument("--model", help="model folder (default: the packaged mini model)")
    p.add_argument("--checkpoint", help="a trained SEER checkpoint (e.g. runs/demo/checkpoints/rlmt)")
    p.add_argument("--prompt")
    p.add_argument("--instruction", help="abstract instruction, e.g. 'make it look like night'")
    p.add_argument("--out", help="one PNG: baseline | reprompted, labelled")
    p.add_argument("--out-dir", help="baseline.png, reprompted.png, side_by_side.png and result.json")
    p.add_argument("--batch", help="JSONL of {prompt, instruction, seed}; one folder per row in --out-dir")
    p.add_argument("--no-reprompt", action="store_true", help="one image from prompt + instruction")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--guidance", type=float, help="classifier-free guidance scale")
    p.add_argument("--scale", type=int, default=4, help="enlarge the saved PNGs (nearest neighbour)")
    p.set_defaults(func=_generate)
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
        sys.stdout.flush()  # inside the try, so a closed pipe is caught here
    except BrokenPipeError:
        # `seer ... | head` closed the pipe: not an error; silence the flush at exit.
        sys.stdout = open(os.devnull, "w")  # noqa: SIM115
        return 0
    except (ValueError, OSError, FloatingPointError) as err:
        # Our errors (descriptor, scene, instruction, usage) are ValueErrors with one line.
        print(f"seer: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
