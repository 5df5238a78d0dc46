"""Explanations and predictions run a model in eval mode, then give it back in the mode the caller had it in."""
from __future__ import annotations

import functools
from typing import Callable, TypeVar

from torch import nn

Result = TypeVar("Result")


def restores_mode(function: Callable[..., Result]) -> Callable[..., Result]:
    """Decorate function(model, ...): however it leaves `model`, the caller's train/eval mode comes back.

    Without it, an explanation run in the middle of a training loop would leave dropout off for
    the rest of the training.
    """
    @functools.wraps(function)
    def wrapper(model: nn.Module, *args, **kwargs) -> Result:
        was_training = model.training
        try:
            return function(model, *args, **kwargs)
        finally:
            model.train(was_training)
    return wrapper
