"""Evaluate a trained regressor: predictions as arrays, and errors inside a range (the gap) vs the linear fit."""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from common.modes import restores_mode
from regression.baseline import LinearFit


@restores_mode
def predict_array(model: nn.Module, x: np.ndarray) -> np.ndarray:
    """Return model predictions (n, n_outputs) for inputs x (n, n_inputs), computed in eval mode, as numpy."""
    model.eval()
    parameter = next(model.parameters())
    with torch.no_grad():
        return model(torch.as_tensor(np.asarray(x, dtype=np.float32).reshape(len(x), -1),
                                     device=parameter.device)).float().cpu().numpy()


def compare_in_range(model: nn.Module, linear: LinearFit, x: np.ndarray, y: np.ndarray, low: float,
                     high: float) -> dict[str, float]:
    """Return the net's and the linear fit's MSE on the samples whose first input lies in [low, high]."""
    inside = (x[:, 0] >= low) & (x[:, 0] <= high)
    if not inside.any():
        return {"n": 0, "net_mse": float("nan"), "linear_mse": float("nan")}
    net = float(np.mean((predict_array(model, x[inside]) - y[inside]) ** 2))
    lin = float(np.mean((linear.predict(x[inside]) - y[inside]) ** 2))
    return {"n": int(inside.sum()), "net_mse": net, "linear_mse": lin}
