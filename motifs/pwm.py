"""Known binding-site matrices (JASPAR counts as data), log-odds scanning and matrix similarity."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

# JASPAR CORE count matrices, columns A, C, G, T, one row per motif position (public data).
JASPAR_COUNTS = {
    # MA0078.1 Sox17 (mouse, SELEX): consensus ..CATTGTC
    "SOX17": [[7, 9, 6, 9], [8, 8, 4, 11], [3, 18, 1, 9], [30, 0, 0, 1], [0, 1, 0, 30], [0, 0, 0, 31],
              [0, 0, 31, 0], [0, 0, 2, 29], [0, 17, 10, 4]],
    # MA0508.1 PRDM1 (human, ChIP-seq): consensus .AAAGTGAAAGT.
    "PRDM1": [[1779, 471, 1037, 1316], [1649, 298, 2331, 325], [3148, 345, 688, 422], [3486, 439, 442, 236],
              [4173, 0, 430, 0], [422, 0, 4038, 143], [728, 110, 930, 2835], [211, 0, 4392, 0],
              [4603, 0, 0, 0], [4161, 0, 430, 12], [4497, 0, 39, 67], [159, 142, 4186, 116],
              [117, 458, 520, 3508], [1057, 498, 2239, 809], [2042, 778, 973, 810]],
}
JASPAR_IDS = {"SOX17": "MA0078.1", "PRDM1": "MA0508.1"}
GENOME_BACKGROUND = np.array([0.295, 0.205, 0.205, 0.295])  # human base composition, 41% GC


def frequency_matrix(counts, pseudocount: float = 0.0) -> np.ndarray:
    """Return a (W, 4) position frequency matrix (rows sum to 1) from counts."""
    counts = np.asarray(counts, dtype=np.float64) + pseudocount
    return counts / counts.sum(1, keepdims=True)


def known_matrix(name: str) -> np.ndarray:
    """Return the (W, 4) frequency matrix of a known factor ('SOX17', 'PRDM1')."""
    return frequency_matrix(JASPAR_COUNTS[name.upper()])


def log_odds(pfm: np.ndarray, background: np.ndarray = GENOME_BACKGROUND, pseudocount: float = 0.01) -> np.ndarray:
    """Return the (W, 4) log2-odds weight matrix of a frequency matrix against a background."""
    return np.log2((pfm + pseudocount) / (1 + 4 * pseudocount) / background)


def scan(x: torch.Tensor, pfm: np.ndarray) -> torch.Tensor:
    """Return log-odds scores of every window on both strands, shape (N, L - W + 1); x: (N, 4, L) one-hot."""
    weights = torch.as_tensor(log_odds(pfm).T, dtype=x.dtype)[None]  # (1, 4, W)
    reverse = weights.flip(-1).flip(-2)  # the matrix of the other strand
    return torch.maximum(F.conv1d(x, weights), F.conv1d(x, reverse))[:, 0]


def hit_mask(x: torch.Tensor, pfm: np.ndarray, fraction_of_max: float = 0.8) -> torch.Tensor:
    """Return (N, L) bool: positions covered by a match scoring at least `fraction_of_max` of the best score."""
    width = len(pfm)
    threshold = fraction_of_max * log_odds(pfm).max(1).sum()
    starts = (scan(x, pfm) >= threshold).float()[:, None]
    covered = F.conv_transpose1d(starts, torch.ones(1, 1, width, dtype=starts.dtype))
    return covered[:, 0] > 0


def similarity(a: np.ndarray, b: np.ndarray, min_overlap: int = 5) -> float:
    """Return the best mean column Pearson correlation of two (W, 4) matrices over offsets and both strands."""
    best = -1.0
    for candidate in (b, b[::-1, ::-1]):
        for offset in range(-(len(candidate) - min_overlap), len(a) - min_overlap + 1):
            start_a, start_b = max(offset, 0), max(-offset, 0)
            overlap = min(len(a) - start_a, len(candidate) - start_b)
            if overlap < min_overlap:
                continue
            cols_a = a[start_a:start_a + overlap] - a[start_a:start_a + overlap].mean(1, keepdims=True)
            cols_b = candidate[start_b:start_b + overlap] - candidate[start_b:start_b + overlap].mean(1, keepdims=True)
            norms = np.linalg.norm(cols_a, axis=1) * np.linalg.norm(cols_b, axis=1)
            correlations = np.where(norms > 0, (cols_a * cols_b).sum(1) / np.maximum(norms, 1e-12), 0.0)
            best = max(best, float(correlations.mean()))
    return best
