"""DNA as tensors: byte codes, one-hot encoding (A, C, G, T channels) and reverse complement."""
from __future__ import annotations

import numpy as np
import torch

from common.errors import DataError

ALPHABET = "ACGT"
UNKNOWN = 4  # the code of N and the other IUPAC ambiguity letters
INVALID = 255

# One lookup table over all 256 bytes does the whole encoding: no per-base Python loop.
_CODES = np.full(256, INVALID, dtype=np.uint8)
for _code, _letter in enumerate(ALPHABET):
    _CODES[ord(_letter)] = _CODES[ord(_letter.lower())] = _code
for _letter in "NRYSWKMBDHVU":
    _CODES[ord(_letter)] = _CODES[ord(_letter.lower())] = UNKNOWN
_CODES[ord("U")] = _CODES[ord("u")] = 3  # RNA's U reads as T
_ONE_HOT = np.eye(5, 4, dtype=np.uint8)  # row 4 (unknown) is all zero


def sequence_codes(sequences: list[str], names: list[str] | None = None, length: int | None = None) -> np.ndarray:
    """Return (N, L) uint8 codes (0-3 = A, C, G, T; 4 = N or another IUPAC letter); lower case is accepted.

    Raises DataError naming the record for letters that are not DNA and for lengths other than `length`.
    """
    names = names or [f"record {i + 1}" for i in range(len(sequences))]
    if not sequences:
        raise DataError("no sequences to encode")
    length = length or len(sequences[0])
    for name, sequence in zip(names, sequences):
        if len(sequence) != length:
            check_no_spaces(name, sequence)  # trailing spaces would read as a wrong length
            raise DataError(f"record {name!r} is {len(sequence)} bp long, but the windows must all be {length} bp: "
                            "cut windows of one length (e.g. peak centre +/- 100 bp)")
    raw = np.frombuffer("".join(sequences).encode("latin-1", errors="replace"), dtype=np.uint8)
    codes = _CODES[raw].reshape(len(sequences), length)
    bad = np.argwhere(codes == INVALID)
    if len(bad):
        row, column = bad[0]
        check_no_spaces(names[row], sequences[row])
        raise DataError(f"record {names[row]!r}, position {column + 1}: {sequences[row][column]!r} is not a DNA letter "
                        "(A, C, G, T, N or an IUPAC code)")
    return codes


def check_no_spaces(name: str, sequence: str) -> None:
    """Raise DataError when a record's sequence holds spaces or tabs (FASTA lines with trailing blanks, say)."""
    if any(character.isspace() for character in sequence):
        raise DataError(f"record {name!r} holds spaces or tabs in its sequence lines (often trailing ones): remove "
                        "them, e.g. `sed 's/[[:space:]]*$//'`")


def one_hot(codes: np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return one-hot DNA (N, 4, L) of 0s and 1s (float32 or `dtype`) from (N, L) codes; unknown bases are all zero.

    The memory is channels-fastest ((N, L, 4) underneath), the layout the CNNs run in on the CPU:
    batches gathered from it need no copy into that layout (BatchTensors keeps it). uint8 holds
    the same values in a quarter of float32's bytes (MotifData's loaders).
    """
    return torch.from_numpy(_ONE_HOT[codes]).transpose(1, 2).to(dtype)


def encode(sequences: list[str], names: list[str] | None = None) -> torch.Tensor:
    """Return one-hot DNA, shape (N, 4, L), for strings of one length (N -> all-zero column)."""
    return one_hot(sequence_codes(sequences, names))


def decode(x: torch.Tensor) -> list[str]:
    """Return the strings of one-hot DNA, shape (N, 4, L); all-zero columns read as N."""
    letters = np.frombuffer(b"ACGTN", dtype=np.uint8)
    x = x.detach().cpu()
    index = torch.where(x.sum(1) > 0, x.argmax(1), UNKNOWN).numpy()
    return [row.tobytes().decode() for row in letters[index]]


def has_unknown(codes: np.ndarray) -> np.ndarray:
    """Return a (N,) bool mask of the windows that contain N or another ambiguous letter."""
    return (codes == UNKNOWN).any(axis=1)


def reverse_complement(x: torch.Tensor) -> torch.Tensor:
    """Return the reverse complement of one-hot DNA (..., 4, L): channels A,C,G,T reversed are T,G,C,A."""
    return x.flip(-1).flip(-2)


def gc_content(codes: np.ndarray) -> np.ndarray:
    """Return the (N,) fraction of G or C among the known bases of each window."""
    known = (codes < UNKNOWN).sum(1)
    return ((codes == 1) | (codes == 2)).sum(1) / np.maximum(known, 1)
