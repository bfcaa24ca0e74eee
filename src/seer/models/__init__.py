"""Models behind one interface (`interface.UnifiedModel`); `load_model` picks the backend.

Only this package knows which backend runs. Weights come from a local folder, never from
a hub; the mini model's trained weights ship inside the package (`mini/weights/`).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from seer.models.interface import ModelError, UnifiedModel

BACKENDS = ("mini",)


def packaged_mini_weights() -> Path:
    return Path(str(importlib.resources.files("seer.models.mini") / "weights"))


def load_model(backend: str | None = None, path: str | Path | None = None) -> UnifiedModel:
    """The model in `path` (its backend read from the folder), or the packaged mini model."""
    if backend is not None and backend not in BACKENDS:
        raise ModelError(f"unknown backend '{backend}' (expected one of: {', '.join(BACKENDS)})")
    if path is None:
        if backend not in (None, "mini"):
            raise ModelError(f"backend '{backend}' needs a local model folder (--model PATH)")
        path = packaged_mini_weights()
        if not (path / "mini.json").exists():
            raise ModelError(f"{path}: the packaged mini weights are missing; "
                             "train them with `seer pretrain`")
    path = Path(path)
    if not path.is_dir():
        raise ModelError(f"{path}: no such model folder")
    if (path / "mini.json").exists() or backend == "mini":
        from seer.models.mini.model import MiniUMM

        return MiniUMM.from_pretrained(path)
    raise ModelError(f"{path}: cannot tell the backend (no mini.json); pass --backend")
