"""The Altschul-Erickson dinucleotide shuffle keeps every dinucleotide count exactly and destroys motifs."""
from __future__ import annotations

import numpy as np

from motifs.encode import sequence_codes
from motifs.shuffle import dinucleotide_counts, dinucleotide_shuffle, shuffle_all


def test_dinucleotide_counts_are_kept_exactly_for_many_sequences():
    rng = np.random.default_rng(1)
    codes = rng.choice(5, size=(300, 60), p=[0.3, 0.2, 0.2, 0.28, 0.02]).astype(np.uint8)
    shuffled = shuffle_all(codes, seed=3)
    changed = 0
    for original, new in zip(codes, shuffled):
        assert np.array_equal(dinucleotide_counts(original), dinucleotide_counts(new))
        assert new[0] == original[0] and new[-1] == original[-1]
        changed += not np.array_equal(original, new)
    assert changed > 290


def test_low_complexity_and_short_sequences():
    rng = np.random.default_rng(0)
    for text in ["AAAAAAAA", "ACACACACAC", "AC", "ACG", "AAAATTTTAAAA"]:
        codes = sequence_codes([text])[0]
        assert np.array_equal(dinucleotide_counts(dinucleotide_shuffle(codes, rng)), dinucleotide_counts(codes))


def test_shuffle_is_reproducible_and_breaks_a_motif():
    motif = "ACAATGGATTGTCCC"
    codes = sequence_codes(["GATTACA" * 5 + motif + "CCGGTA" * 5])
    first, second = shuffle_all(codes, seed=7), shuffle_all(codes, seed=7)
    assert np.array_equal(first, second)
    many = shuffle_all(np.repeat(codes, 50, axis=0), seed=1)
    text = ["".join("ACGTN"[c] for c in row) for row in many]
    assert sum(motif in t for t in text) < 5
