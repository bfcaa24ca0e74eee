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


# ---------------------------------------------------------------- parser

def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="seer", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)

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
    except (ValueError, FileNotFoundError) as err:
        # Our errors (descriptor, scene, instruction, usage) are ValueErrors with one line.
        print(f"seer: error: {err}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
