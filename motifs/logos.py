"""Sequence logos with matplotlib: attribution logos, importance tracks and filter (PFM) logos as PNGs."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from matplotlib.font_manager import FontProperties
from matplotlib.patches import PathPatch
from matplotlib.textpath import TextPath
from matplotlib.transforms import Affine2D

from common.plots import plt, save_figure

COLOURS = {"A": "#109648", "C": "#255C99", "G": "#F7B32B", "T": "#D62839"}
_FONT = FontProperties(family="DejaVu Sans", weight="bold")
_GLYPHS = {letter: TextPath((0, 0), letter, size=1, prop=_FONT) for letter in "ACGT"}


def draw_letter(ax, letter: str, x: float, y: float, height: float) -> None:
    """Draw one letter filling the box [x, x+1] x [y, y+height] (a negative height draws below y)."""
    glyph = _GLYPHS[letter]
    box = glyph.get_extents()
    transform = (Affine2D().translate(-box.x0, -box.y0).scale(0.9 / box.width, height / box.height)
                 .translate(x + 0.05, y))
    ax.add_patch(PathPatch(transform.transform_path(glyph), color=COLOURS[letter], lw=0))


def draw_logo(ax, heights: np.ndarray) -> None:
    """Draw a logo from (L, 4) signed letter heights (A, C, G, T): positives stacked up, negatives down."""
    for position, column in enumerate(np.asarray(heights)):
        up = down = 0.0
        for index in np.argsort(np.abs(column)):
            value = float(column[index])
            if value > 0:
                draw_letter(ax, "ACGT"[index], position, up, value)
                up += value
            elif value < 0:
                draw_letter(ax, "ACGT"[index], position, down, value)
                down += value
    low, high = min(0.0, float(np.minimum(heights, 0).sum(1).min())), float(np.maximum(heights, 0).sum(1).max())
    ax.set_xlim(0, len(heights))
    ax.set_ylim(low - 0.05 * (high - low + 1e-9), high + 0.05 * (high - low + 1e-9))


def information_heights(pfm: np.ndarray) -> np.ndarray:
    """Return (W, 4) letter heights in bits: frequency x information content of the column."""
    pfm = np.asarray(pfm, dtype=np.float64)
    entropy = -(pfm * np.log2(np.clip(pfm, 1e-9, 1))).sum(1, keepdims=True)
    return pfm * (2 - entropy)


def plot_attribution(x: np.ndarray, importance: np.ndarray, path: str | Path, title: str = "",
                     marks: np.ndarray | None = None) -> Path:
    """Save an importance track over the whole window and a logo of the sequence scaled by importance.

    x: (4, L) one-hot; importance: (L,); marks: optional (L,) bool (e.g. implant or motif hits) shaded.
    """
    x, importance = np.asarray(x), np.asarray(importance)
    marks = None if marks is None else np.asarray(marks, dtype=bool)  # pwm.hit_mask gives a tensor
    fig, (track, logo) = plt.subplots(2, 1, figsize=(12, 4.2), gridspec_kw={"height_ratios": [1, 1.3]})
    positions = np.arange(len(importance))
    track.bar(positions, importance, width=1.0, color=np.where(importance >= 0, "#444", "#c33"))
    track.set_xlim(0, len(importance))
    track.set_ylabel("importance")
    track.set_title(title)
    centre = int(np.argmax(np.abs(importance)))
    start = int(np.clip(centre - 25, 0, max(0, len(importance) - 50)))
    window = slice(start, start + 50)
    if marks is not None:
        # Track bars are centred on positions; logo letters fill [i, i+1] counted from the window's start.
        for ax, offset in ((track, 0.5), (logo, start)):
            for mark_start in np.flatnonzero(np.diff(np.r_[0, marks.astype(int)]) == 1):
                mark_end = mark_start + np.argmin(np.r_[marks[mark_start:], False])
                ax.axvspan(mark_start - offset, mark_end - offset, color="#f4d03f", alpha=0.35, lw=0)
    draw_logo(logo, (x * importance[None]).T[window])
    logo.set_xticks([i + 0.5 for i in range(0, 50, 5)], [str(i) for i in range(start, start + 50, 5)])
    logo.set_ylabel("base x importance")
    logo.set_xlabel(f"position (50 bp around the strongest base, {start}-{start + 50})")
    return save_figure(fig, path)


def plot_filter_logos(pfms: np.ndarray, path: str | Path, titles: list[str] | None = None, columns: int = 5) -> Path:
    """Save information-content logos of (F, W, 4) frequency matrices in a grid."""
    rows = -(-len(pfms) // columns)
    fig, axes = plt.subplots(rows, columns, figsize=(2.6 * columns, 1.9 * rows), squeeze=False)
    for index, ax in enumerate(axes.flat):
        if index >= len(pfms):
            ax.axis("off")
            continue
        draw_logo(ax, information_heights(pfms[index]))
        ax.set_ylim(0, 2)
        ax.set_xticks([])
        ax.set_title(titles[index] if titles else f"filter {index}", fontsize=8)
        if index % columns == 0:
            ax.set_ylabel("bits", fontsize=8)
    fig.tight_layout(h_pad=1.2)  # each title clear of the panel above
    return save_figure(fig, path)
