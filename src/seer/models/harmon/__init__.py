"""Harmon, SEER's base model: our own implementation of its architecture and sampler
(`model.HarmonUMM`), its MAR part (`mar`) and the official checkpoint mapping (`loading`).

A folder holds a Harmon model when it has `harmon.json` (our layout) or official release
files (`harmon_1.5b.pth` / any `harmon_*.pth`, or `kl16.ckpt`): `is_harmon_dir`.
"""

from seer.models.harmon.mar import MARConfig
from seer.models.harmon.model import CONFIG_FILE, HarmonConfig, HarmonUMM, is_harmon_dir

__all__ = ["CONFIG_FILE", "HarmonConfig", "HarmonUMM", "MARConfig", "is_harmon_dir"]
