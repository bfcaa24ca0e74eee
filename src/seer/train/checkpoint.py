"""Resumable training state: written atomically, restored exactly.

A checkpoint folder holds the model (Hugging Face layout, written by the caller's
`save_model`) and `state.pt`: optimizer, scheduler, step, the RNG states of Python, NumPy
and torch, and any data position. The folder is replaced whole or not at all, so a run
killed mid-write resumes from the previous checkpoint.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from seer.io import atomic_dir, recover_dir

STATE_FILE = "state.pt"


def rng_state() -> dict[str, Any]:
    return {"python": random.getstate(), "numpy": np.random.get_state(), "torch": torch.get_rng_state()}


def set_rng_state(state: dict[str, Any]) -> None:
    random.setstate(state["python"])
    np.random.set_state(state["numpy"])
    torch.set_rng_state(state["torch"])


def save_checkpoint(directory: str | Path, save_model: Callable[[Path], None], *, step: int,
                    optimizer: torch.optim.Optimizer | None = None, scheduler=None,
                    extra: dict[str, Any] | None = None,
                    optimizer_state: dict[str, Any] | None = None) -> None:
    """`optimizer_state`, when given, is saved instead of `optimizer.state_dict()` (a
    sharded optimizer's state, gathered by the caller)."""
    if optimizer_state is None and optimizer is not None:
        optimizer_state = optimizer.state_dict()
    with atomic_dir(directory) as tmp:
        save_model(tmp)
        torch.save({
            "step": step,
            "optimizer": optimizer_state,
            "scheduler": scheduler.state_dict() if scheduler is not None else None,
            "rng": rng_state(),
            "extra": extra or {},
        }, tmp / STATE_FILE)


def load_state(directory: str | Path) -> dict[str, Any]:
    recover_dir(directory)
    path = Path(directory) / STATE_FILE
    if not path.exists():
        raise FileNotFoundError(f"{directory}: no checkpoint to resume from (missing {STATE_FILE})")
    return torch.load(path, weights_only=False)


def restore(state: dict[str, Any], optimizer=None, scheduler=None) -> int:
    """Load optimizer, scheduler and RNG from `state`; returns the step to continue from."""
    if optimizer is not None and state["optimizer"] is not None:
        optimizer.load_state_dict(state["optimizer"])
    if scheduler is not None and state["scheduler"] is not None:
        scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    return int(state["step"])


def check_finite(name: str, value: torch.Tensor, step: int) -> None:
    """Stop before a NaN or inf reaches the weights."""
    if not torch.isfinite(value).all():
        raise FloatingPointError(f"step {step}: {name} is not finite "
                                 f"({value.detach().flatten()[:4].tolist()}); "
                                 "the update was skipped and the weights are unchanged")
