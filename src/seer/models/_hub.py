"""Small helpers shared by the backends."""

from __future__ import annotations

import contextlib


@contextlib.contextmanager
def quiet_hub_bars():
    """transformers' per-file loading/saving progress bars say nothing useful for a local
    folder; silence them for the duration, then restore the user's setting."""
    from transformers.utils import logging as hf_logging

    was = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if was:
            hf_logging.enable_progress_bar()
