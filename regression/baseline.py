"""Closed-form linear regression: the baseline the course compares the dense net with."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class LinearFit:
    """y = x @ coef + intercept, fitted by least squares."""

    coef: np.ndarray
    intercept: np.ndarray

    def predict(self, x: np.ndarray) -> np.ndarray:
        """Return predictions (n, n_outputs) for inputs (n, n_inputs)."""
        return np.asarray(x, dtype=np.float64) @ self.coef + self.intercept


def fit_linear(x: np.ndarray, y: np.ndarray) -> LinearFit:
    """Return the least-squares linear fit of y (n, k) on x (n, d)."""
    x = np.asarray(x, dtype=np.float64).reshape(len(x), -1)
    y = np.asarray(y, dtype=np.float64).reshape(len(y), -1)
    design = np.hstack([x, np.ones((len(x), 1))])
    solution, *_ = np.linalg.lstsq(design, y, rcond=None)
    return LinearFit(coef=solution[:-1], intercept=solution[-1])
