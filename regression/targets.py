"""Target functions the regression task can learn, by name (the course: sqrt)."""
from __future__ import annotations

from typing import Callable

import numpy as np

from common.errors import ConfigError


def course_multi(x: np.ndarray) -> np.ndarray:
    """Course exercise: 5 inputs -> 3 outputs (a sum, a product of roots and a smooth interaction)."""
    return np.stack([x.sum(1), np.sqrt(np.abs(x[:, 0] * x[:, 1])), np.sin(x[:, 2] / 20) * x[:, 3] + x[:, 4]], 1)


TARGETS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "sqrt": np.sqrt,
    "square": np.square,
    "sin": lambda x: np.sin(x / 10),
    "course_multi": course_multi,
}


def target_function(name: str) -> Callable[[np.ndarray], np.ndarray]:
    """Return the named target function; raise ConfigError listing the known names otherwise."""
    try:
        return TARGETS[name]
    except KeyError:
        raise ConfigError(f"unknown target function {name!r}; choose one of {', '.join(TARGETS)}") from None


def apply_target(function: str, x: np.ndarray) -> np.ndarray:
    """Return y = f(x) as (n, n_outputs) for inputs x of shape (n, n_inputs)."""
    y = target_function(function)(x)
    return y.reshape(len(x), -1).astype(np.float32)
