"""Models behind one interface (`interface.UnifiedModel`); `load_model` picks the backend.

Only this package knows which backend runs. Weights come from a local folder, never from
a hub; the mini model's trained weights ship inside the package (`mini/weights/`).
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path

from seer.models.interface import ModelError, UnifiedModel

BACKENDS = ("mini", "janus", "harmon")


def packaged_mini_weights() -> Path:
    return Path(str(importlib.resources.files("seer.models.mini") / "weights"))


def load_model(backend: str | None = None, path: str | Path | None = None, **options) -> UnifiedModel:
    """The model in `path` (its backend read from the folder), or the packaged mini model.
    `options` go to the backend's `from_pretrained` (dtype, device, ...)."""
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
    if backend == "mini" or (backend is None and (path / "mini.json").exists()):
        from seer.models.mini.model import MiniUMM

        return MiniUMM.from_pretrained(path, **options)
    from seer.models.janus import is_janus_dir

    if backend == "janus" or (backend is None and is_janus_dir(path)):
        from seer.models.janus import JanusUMM

        return JanusUMM.from_pretrained(path, **options)
    if backend == "harmon" or (backend is None and _is_harmon_dir(path)):
        from seer.models.harmon import HarmonUMM

        return HarmonUMM.from_pretrained(path, **options)
    raise ModelError(f"{path}: cannot tell the backend (no mini.json, no Janus config.json, no Harmon "
                     "marker); pass --backend")


def _is_harmon_dir(path: Path) -> bool:
    try:
        from seer.models.harmon import is_harmon_dir
    except ImportError:
        return False
    return is_harmon_dir(path)
