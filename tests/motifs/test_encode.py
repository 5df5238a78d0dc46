"""One-hot encoding (lookup table), N handling, reverse complement and augmentation, as pure functions."""
from __future__ import annotations

import pytest
import torch

from common.errors import DataError
from motifs.augment import random_reverse_complement, random_shift
from motifs.encode import decode, encode, gc_content, has_unknown, reverse_complement, sequence_codes


def test_one_hot_round_trip_and_channels():
    sequences = ["ACGTNACGTT", "ttgcaACGTA"]
    x = encode(sequences)
    assert x.shape == (2, 4, 10) and x.dtype == torch.float32
    assert x[0, :, 0].tolist() == [1, 0, 0, 0] and x[0, :, 3].tolist() == [0, 0, 0, 1]
    assert x[0, :, 4].tolist() == [0, 0, 0, 0]  # N is an all-zero column
    assert decode(x) == ["ACGTNACGTT", "TTGCAACGTA"]  # lower case (soft-masked) accepted


def test_iupac_codes_are_unknown_and_flagged():
    codes = sequence_codes(["ACGRYN", "ACGTAC"])
    assert codes[0].tolist() == [0, 1, 2, 4, 4, 4]
    assert has_unknown(codes).tolist() == [True, False]


def test_non_dna_letters_name_record_and_position():
    with pytest.raises(DataError, match=r"record 'peak2', position 3: 'X' is not a DNA letter"):
        sequence_codes(["ACGT", "ACXT"], ["peak1", "peak2"])


def test_windows_of_the_wrong_length_name_the_record():
    with pytest.raises(DataError, match=r"record 'short' is 3 bp long, but the windows must all be 4 bp"):
        sequence_codes(["ACGT", "ACG"], ["long", "short"])


def test_spaces_in_a_sequence_are_named_as_such():
    """A FASTA line with a trailing blank: the sequence reads 1 bp longer (or with a ' ' letter), which misleads."""
    for sequences in (["ACGT", "ACG "], ["ACGT", "ACGT "]):
        with pytest.raises(DataError, match=r"record 'spaced' holds spaces or tabs in its sequence lines"):
            sequence_codes(sequences, ["fine", "spaced"], length=4)


def test_reverse_complement():
    x = encode(["AACGTN"])
    assert decode(reverse_complement(x)) == ["NACGTT"]
    assert torch.equal(reverse_complement(reverse_complement(x)), x)


def test_gc_content_ignores_unknown_bases():
    assert gc_content(sequence_codes(["GCAT", "GGNN"])).tolist() == [0.5, 1.0]


def test_random_shift_moves_windows_and_pads_with_n():
    x = encode(["ACGTACGTAC"] * 50)
    shifted = random_shift(x, 2, torch.Generator().manual_seed(0))
    assert shifted.shape == x.shape
    texts = decode(shifted)
    assert len(set(texts)) == 5  # shifts -2..2 all occur in 50 windows
    for text in texts:
        core = text.strip("N")
        assert core in "ACGTACGTAC" and len(text) - len(core) <= 2


def test_random_reverse_complement_flips_about_half():
    x = encode(["AAAAACCCCC"] * 200)
    flipped = random_reverse_complement(x, torch.Generator().manual_seed(0))
    texts = decode(flipped)
    assert set(texts) == {"AAAAACCCCC", "GGGGGTTTTT"}
    assert 60 < texts.count("GGGGGTTTTT") < 140
