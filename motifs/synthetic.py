"""Built-in synthetic data: genome-like background with instances of real JASPAR matrices at recorded positions."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from motifs.pwm import GENOME_BACKGROUND, known_matrix


@dataclass
class SyntheticSet:
    """Synthetic windows: names, (N, L) base codes, labels ((N,) class index or (N, k) 0/1) and (N, L) implant mask."""

    names: list[str]
    codes: np.ndarray
    labels: np.ndarray
    implant_mask: np.ndarray
    class_names: list[str]


def implant(codes: np.ndarray, pfm: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, int, int]:
    """Write one instance sampled from `pfm` (random strand) at a random place; return codes, start, end."""
    width = len(pfm)
    instance = np.array([rng.choice(4, p=column) for column in pfm], dtype=np.uint8)
    if rng.random() < 0.5:
        instance = 3 - instance[::-1]  # reverse complement (codes A,C,G,T = 0..3)
    start = int(rng.integers(0, len(codes) - width + 1))
    codes = codes.copy()
    codes[start:start + width] = instance
    return codes, start, start + width


def synthetic_windows(n_per_class: int = 1000, length: int = 200, factors: tuple[str, ...] = ("SOX17", "PRDM1"),
                      task: str = "multiclass", sites_per_window: int = 1, seed: int = 0) -> SyntheticSet:
    """Return synthetic windows for the course question.

    multiclass: one class per factor (each window holds `sites_per_window` instances of its
    factor) plus 'random' (background only). multilabel: every window holds each factor with
    probability 1/2 (co-bound windows included); labels are (N, k) 0/1.
    Names look like 'chrK:start-end' (K drawn from 1-22) so the default chromosome split works.
    """
    rng = np.random.default_rng(seed)
    pfms = [known_matrix(f) for f in factors]
    n = n_per_class * (len(factors) + 1) if task == "multiclass" else n_per_class * len(factors)
    codes = rng.choice(4, size=(n, length), p=GENOME_BACKGROUND).astype(np.uint8)
    if task == "multiclass":
        labels = np.repeat(np.arange(len(factors) + 1), n_per_class)
        present = np.eye(len(factors) + 1, dtype=np.int64)[labels][:, :len(factors)]
        class_names = [*factors, "random"]
    else:
        present = (rng.random((n, len(factors))) < 0.5).astype(np.int64)
        labels = present.astype(np.float32)
        class_names = list(factors)
    mask = np.zeros((n, length), dtype=bool)
    for i, j in zip(*np.nonzero(present)):
        for _ in range(sites_per_window):
            codes[i], start, end = implant(codes[i], pfms[j], rng)
            mask[i, start:end] = True
    chromosomes = rng.integers(1, 23, size=n)
    names = [f"chr{c}:{i * 1000}-{i * 1000 + length}" for i, c in enumerate(chromosomes)]
    return SyntheticSet(names, codes, labels, mask, class_names)
