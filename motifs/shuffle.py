"""Dinucleotide shuffle (Altschul & Erickson 1985): composition and every dinucleotide count kept exactly."""
from __future__ import annotations

import numpy as np


def dinucleotide_counts(codes: np.ndarray) -> np.ndarray:
    """Return the (5, 5) counts of neighbouring code pairs (first, second) of one (L,) code sequence."""
    counts = np.zeros((5, 5), dtype=np.int64)
    np.add.at(counts, (codes[:-1], codes[1:]), 1)
    return counts


def dinucleotide_shuffle(codes: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Return a random (L,) sequence with exactly the dinucleotide counts of `codes` (same first and last letter).

    The sequence is a random Eulerian path through the graph whose edges are the dinucleotides:
    each letter's last exit edge is drawn so that the last exits form a tree rooted at the last
    letter (which guarantees the walk uses every edge), the other exits are shuffled.
    """
    codes = np.asarray(codes)
    if len(codes) < 3:
        return codes.copy()
    last = codes[-1]
    sources, targets = codes[:-1], codes[1:]
    letters = np.unique(codes)
    exits = {v: targets[sources == v] for v in letters}
    while True:
        last_exit = {v: exits[v][rng.integers(len(exits[v]))] for v in letters if v != last and len(exits[v])}
        if _reaches(last_exit, last):
            break
    order = {}
    for v in letters:
        edges = list(exits[v])
        if v in last_exit:
            edges.remove(last_exit[v])
            order[v] = [*rng.permutation(edges), last_exit[v]]
        else:
            order[v] = list(rng.permutation(edges))
    position = {v: 0 for v in letters}
    result = np.empty_like(codes)
    result[0] = current = codes[0]
    for i in range(1, len(codes)):
        current = order[current][position[current]]
        position[result[i - 1]] += 1
        result[i] = current
    return result


def _reaches(last_exit: dict, root) -> bool:
    """True if following last-exit edges leads every letter to the root (they form a tree)."""
    for start in last_exit:
        seen, v = set(), start
        while v != root:
            if v in seen:
                return False
            seen.add(v)
            v = last_exit[v]
    return True


def shuffle_all(codes: np.ndarray, seed: int = 0) -> np.ndarray:
    """Return a dinucleotide shuffle of every row of (N, L) codes, reproducible by `seed`."""
    rng = np.random.default_rng(seed)
    return np.stack([dinucleotide_shuffle(row, rng) for row in codes])
