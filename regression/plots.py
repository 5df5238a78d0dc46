"""Pictures of a regression: the net's curve, the linear fit and the truth, with any gap shaded."""
from __future__ import annotations

from pathlib import Path

import numpy as np

from common.plots import plt, save_figure


def plot_fit(grid: np.ndarray, net: np.ndarray, linear: np.ndarray, truth: np.ndarray | None,
             x_train: np.ndarray, y_train: np.ndarray, gaps: list[list[float]] | None, path: str | Path,
             title: str = "") -> Path:
    """Draw training points, the truth, the net's and the linear prediction over `grid`; shade the gaps; save PNG."""
    fig, ax = plt.subplots(figsize=(7, 4.2))
    for gap in gaps or []:
        ax.axvspan(gap[0], gap[1], color="orange", alpha=0.15, label="gap (no training data)")
    order = np.argsort(x_train[:, 0])
    ax.plot(x_train[order, 0], y_train[order, 0], ".", color="grey", ms=3, alpha=0.6, label="training data",
            zorder=3)  # above the curves, which would hide them
    if truth is not None:
        ax.plot(grid, truth, "k--", lw=1, label="truth")
    ax.plot(grid, linear, color="tab:blue", label="linear fit")
    ax.plot(grid, net, color="tab:red", lw=2, label="dense net")
    ax.set_xlabel("x")
    ax.set_ylabel("y")
    ax.set_title(title)
    ax.legend(loc="upper left", fontsize=8)
    return save_figure(fig, path)
