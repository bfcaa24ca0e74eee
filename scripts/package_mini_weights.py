"""Copy a trained mini model into the package, at float16, as the default weights.

    python scripts/package_mini_weights.py runs/pretrain-c/model

`seer.models.load_model()` with no path loads `src/seer/models/mini/weights/`; this writes
it (atomically) and refuses a copy over the 25 MB the package allows.
"""

from __future__ import annotations

import argparse
import shutil
import sys
from pathlib import Path

import torch

from seer.models import packaged_mini_weights
from seer.models.mini.model import MiniUMM

LIMIT_BYTES = 25 * 2**20


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("model", type=Path, help="a mini model folder written by `seer pretrain`")
    ap.add_argument("--out", type=Path, default=None, help="default: the package's weights folder")
    args = ap.parse_args(argv)
    out = args.out or packaged_mini_weights()
    model = MiniUMM.from_pretrained(args.model)
    staging = out.with_name(out.name + ".staging")
    shutil.rmtree(staging, ignore_errors=True)
    model.save_pretrained(staging, dtype=torch.float16)
    size = sum(f.stat().st_size for f in staging.rglob("*") if f.is_file())
    if size > LIMIT_BYTES:
        shutil.rmtree(staging)
        print(f"{args.model}: {size / 2**20:.1f} MB at float16, over the package's 25 MB", file=sys.stderr)
        return 1
    shutil.rmtree(out, ignore_errors=True)
    staging.rename(out)
    print(f"wrote {out} ({size / 2**20:.1f} MB)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
