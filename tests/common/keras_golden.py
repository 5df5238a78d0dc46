"""The keras golden fixtures (tests/fixtures/keras_golden): inputs for PyTorch and keras' outputs, in matching layouts."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

GOLDEN = Path(__file__).resolve().parent.parent / "fixtures" / "keras_golden"


def golden(stem: str) -> tuple[torch.Tensor, np.ndarray]:
    """Return (input for PyTorch, channels first; keras' output, channels last) of one fixture."""
    data = np.load(GOLDEN / f"{stem}.npz")
    x = data["inputs"].astype(np.float32)
    if data["inputs"].dtype == np.uint8 and x.ndim == 4:
        x /= 255  # frames were stored as uint8; keras saw them divided by 255
    x = torch.from_numpy(x)
    return (x.movedim(-1, 1) if x.ndim > 2 else x), data["outputs"]


def keras_layout(y: torch.Tensor) -> np.ndarray:
    """Return a PyTorch output (N, C, ...) as keras lays it out (N, ..., C), as a numpy array."""
    return (y.movedim(1, -1) if y.ndim > 2 else y).detach().numpy()
