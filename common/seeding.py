"""Reproducible runs: one call seeds Python, NumPy and torch (and optionally forces deterministic kernels)."""
from __future__ import annotations

import lightning as L
import torch


def seed_everything(seed: int = 0, deterministic: bool = False) -> int:
    """Seed every random generator (and DataLoader workers); return the seed used."""
    used = L.seed_everything(seed, workers=True, verbose=False)
    if deterministic:
        torch.use_deterministic_algorithms(True, warn_only=True)
    return used
