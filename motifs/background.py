"""Negative windows from a genome: random places that avoid the peaks, optionally matched in GC content."""
from __future__ import annotations

import numpy as np
import pyfaidx

from common.errors import DataError
from motifs.encode import gc_content, has_unknown, sequence_codes
from motifs.io import chromosome_lengths, fetch_windows


def merge_regions(regions: list[tuple[str, int, int]]) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Return {chrom: (starts, ends)} of the regions merged into sorted, non-overlapping intervals (bedtools merge)."""
    merged: dict[str, tuple[np.ndarray, np.ndarray]] = {}
    for chrom in {r[0] for r in regions}:
        spans = sorted((s, e) for c, s, e in regions if c == chrom)
        starts, ends = [spans[0][0]], [spans[0][1]]
        for start, end in spans[1:]:
            if start <= ends[-1]:
                ends[-1] = max(ends[-1], end)
            else:
                starts.append(start)
                ends.append(end)
        merged[chrom] = (np.array(starts), np.array(ends))
    return merged


def overlaps(chrom: str, start: np.ndarray, end: np.ndarray, merged: dict) -> np.ndarray:
    """Return a bool mask of the windows [start, end) on `chrom` that overlap a merged region."""
    if chrom not in merged:
        return np.zeros(len(start), dtype=bool)
    starts, ends = merged[chrom]
    after = np.searchsorted(ends, start, side="right")  # first region ending after the window's start
    return (after < len(starts)) & (starts[np.minimum(after, len(starts) - 1)] < end)


def random_genomic_windows(genome: pyfaidx.Fasta, n: int, length: int, avoid: list[tuple[str, int, int]],
                           gc_targets: np.ndarray | None = None, seed: int = 0, max_rounds: int = 50,
                           chromosomes: list[str] | None = None) -> tuple[list[str], np.ndarray]:
    """Return (names, (n, L) codes) of random genome windows without N that overlap no region in `avoid`.

    With gc_targets (one GC fraction per positive), the windows follow the same GC histogram
    (bins of 0.05), as bedtools shuffle + a GC filter would. `chromosomes` limits the draw.
    """
    rng = np.random.default_rng(seed)
    wanted = None if chromosomes is None else set(chromosomes)  # a set: assemblies may hold a million contigs
    lengths = {c: n_bp for c, n_bp in chromosome_lengths(genome).items()
               if n_bp > length and (wanted is None or c in wanted)}
    if not lengths:
        raise DataError(f"the genome FASTA has no chromosome longer than {length} bp to draw negatives from")
    names_all, weights = list(lengths), np.array(list(lengths.values()), dtype=np.float64)
    merged = merge_regions(avoid) if avoid else {}
    bins = np.linspace(0, 1, 21)
    quota = (np.histogram(gc_targets, bins)[0] * n / len(gc_targets)).round().astype(int) if gc_targets is not None \
        else None
    kept_names, kept_codes = [], []
    for _ in range(max_rounds):
        chroms = rng.choice(len(names_all), size=4 * n, p=weights / weights.sum())
        candidates = []
        for index in np.unique(chroms):
            chrom = names_all[index]
            starts = rng.integers(0, lengths[chrom] - length, size=(chroms == index).sum())
            starts = starts[~overlaps(chrom, starts, starts + length, merged)]
            candidates += [(chrom, int(s), int(s) + length) for s in starts]
        names, sequences = fetch_windows(genome, candidates)
        codes = sequence_codes(sequences, names, length)
        keep = ~has_unknown(codes)
        if quota is not None:
            which = np.clip(np.digitize(gc_content(codes), bins) - 1, 0, len(quota) - 1)
            for i in np.flatnonzero(keep):
                keep[i] = quota[which[i]] > 0
                quota[which[i]] -= keep[i]
        kept_names += [names[i] for i in np.flatnonzero(keep)]
        kept_codes.append(codes[keep])
        if len(kept_names) >= n or (quota is not None and quota.sum() <= 0):
            break
    if len(kept_names) < n * 0.95:
        raise DataError(f"found only {len(kept_names)} of {n} random genome windows without N outside the peaks"
                        + (" in the wanted GC range: try gc_matched=false" if quota is not None else ""))
    return kept_names[:n], np.concatenate(kept_codes)[:n]
