"""Plot helpers that save PNGs (matplotlib, Agg backend: no screen needed)."""
from __future__ import annotations

import csv
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def save_figure(fig, path: str | Path) -> Path:
    """Save `fig` as a PNG at `path` (folders created), close it, and return the path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    plt.close(fig)
    return path


def read_metrics_csv(path: str | Path) -> dict[str, list[tuple[float, float]]]:
    """Read Lightning's metrics.csv into {metric: [(epoch, value), ...]}, skipping empty cells and epoch-less rows."""
    series: dict[str, list[tuple[float, float]]] = {}
    with open(path) as handle:
        for row in csv.DictReader(handle):
            if not row.get("epoch"):
                continue  # logged per step straight to the logger (LearningRateMonitor's lr-Adam): no epoch to plot at
            for key, value in row.items():
                if key in ("epoch", "step") or value in ("", None):
                    continue
                series.setdefault(key, []).append((float(row["epoch"]), float(value)))
    return series


def plot_training_curves(metrics_csv: str | Path, path: str | Path, metrics: list[str] | None = None) -> Path:
    """Plot per-epoch curves (train vs validation, as keras' history plot) from metrics.csv into a PNG."""
    series = read_metrics_csv(metrics_csv)
    names = metrics or sorted({k.split("_", 1)[1] for k in series if k.startswith("val_")})
    fig, axes = plt.subplots(1, len(names), figsize=(4.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        plotted = []
        for split, marker in (("train", "o"), ("val", "s")):
            key = next((k for k in (f"{split}_{name}_epoch", f"{split}_{name}") if k in series), None)
            if key:
                epochs, values = zip(*series[key])
                ax.plot(np.asarray(epochs) + 1, values, "-", marker=marker if len(values) <= 40 else None, ms=3,
                        label=split)
                plotted += values
        # Losses often fall by orders of magnitude: a log axis keeps the late epochs readable.
        if plotted and min(plotted) > 0 and max(plotted) / min(plotted) > 100:
            ax.set_yscale("log")
        ax.set_xlabel("epoch")
        ax.set_title(name)
        ax.legend()
    return save_figure(fig, path)


def plot_confusion(matrix: np.ndarray, class_names: list[str], path: str | Path, title: str = "") -> Path:
    """Draw a confusion matrix (rows: truth, columns: prediction) with counts, as a PNG."""
    matrix = np.asarray(matrix)
    fig, ax = plt.subplots(figsize=(1.2 * len(class_names) + 2, 1.2 * len(class_names) + 1.5))
    ax.imshow(matrix, cmap="Blues")
    for (i, j), value in np.ndenumerate(matrix):
        ax.text(j, i, int(value), ha="center", va="center",
                color="white" if value > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(class_names)), class_names, rotation=30)
    ax.set_yticks(range(len(class_names)), class_names)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    return save_figure(fig, path)
