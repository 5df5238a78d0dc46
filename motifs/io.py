"""Read DNA windows: FASTA records via pyfaidx; BED intervals cut from a genome FASTA (bedtools slop/getfasta)."""
from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

import pyfaidx

from common.errors import DataError
from common.paths import data_path

_REGION = re.compile(r"^(?P<chrom>[^:\s]+):(?P<start>\d+)-(?P<end>\d+)")


def default_index_dir() -> Path:
    """Return the folder for FASTA indexes that cannot sit beside their FASTA: $DEEPBIO_CACHE or ~/.cache/deepbio."""
    return Path(os.environ.get("DEEPBIO_CACHE", Path.home() / ".cache" / "deepbio")) / "fasta_index"


def plain_file(path: str | Path, kind: str) -> Path:
    """Return the path of an existing, uncompressed file (course: paths resolved); else raise DataError saying why."""
    path = data_path(path)
    if path.is_dir():
        raise DataError(f"{kind} file {path} is a folder: give the file itself")
    if not path.is_file():
        raise DataError(f"{kind} file {path} does not exist")
    with open(path, "rb") as handle:
        if handle.read(2) == b"\x1f\x8b":
            raise DataError(f"{kind} file {path} is gzip-compressed: decompress it first (gunzip -k {path.name})")
    return path


def open_fasta(path: str | Path, index_dir: str | Path | None = None) -> pyfaidx.Fasta:
    """Open an indexed FASTA (upper-cased, so soft-masked bases are accepted).

    An existing `<file>.fai` beside the FASTA is used; otherwise the index is written into
    `index_dir` (default: default_index_dir()), never into the data folder, which may be
    read-only or shared. Errors name the file and what to do. "course:ChIP/SOX17.fa" is a file
    of the course data (common.paths.data_path).
    """
    path = plain_file(path, "FASTA")
    if path.stat().st_size == 0:
        raise DataError(f"FASTA file {path} is empty: it holds no records")
    with open(path, "rb") as handle:
        head = handle.read(1 << 16)
    if b"\r" in head and b"\n" not in head:  # pyfaidx splits lines at \n only: the file would be one line
        raise DataError(f"FASTA file {path} ends its lines with CR only (old Mac text): convert them to newlines, "
                        f"e.g. `tr '\\r' '\\n' < {path.name} > fixed.fa`")
    beside = Path(f"{path}.fai")
    if beside.is_file():
        index = beside
    else:
        folder = Path(index_dir) if index_dir else default_index_dir()
        # Size and modification time in the key: a file replaced by an older-dated one (mv, cp -p,
        # rsync -a) would pass pyfaidx's newer-than-index check and be read through the stale index.
        status = path.stat()
        key = hashlib.sha1(f"{path.resolve()}:{status.st_size}:{status.st_mtime_ns}".encode()).hexdigest()[:16]
        index = folder / f"{path.name}.{key}.fai"
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as error:
            raise DataError(f"cannot write the index of {path}: the folder {folder} is not writable ({error}); "
                            "pass index_dir= a writable folder, or run `samtools faidx` where you may write") from None
    try:
        fasta = pyfaidx.Fasta(str(path), indexname=str(index), sequence_always_upper=True, as_raw=True,
                              read_long_names=False)
    except pyfaidx.FastaIndexingError as error:
        # pyfaidx needs every line of a record but its last to have one length.
        fix = " (rewrap it to one line length, e.g. `seqkit seq -w 60`)" if "Line length" in str(error) else ""
        raise DataError(f"{path} is not a valid FASTA file: {error}{fix}") from None
    except ValueError as error:  # pyfaidx reports duplicate names as ValueError
        duplicate = re.search(r"Duplicate key \"?([^\"\s]+)", str(error))
        name = duplicate.group(1) if duplicate else str(error)
        raise DataError(f"{path}: the record name {name!r} appears more than once; names must be unique") from None
    except OSError as error:
        raise DataError(f"cannot write the index {index} of {path} ({error}); "
                        "pass index_dir= a writable folder") from None
    except RuntimeError as error:  # pyfaidx's "Unhandled exception during fasta indexing", e.g. blank lines
        raise DataError(f"{path} could not be indexed as FASTA ({str(error).split('Please report')[0].strip()}): "
                        "blank lines between records or at the end of the file are the usual cause; "
                        "remove them") from None
    if not fasta.keys():
        raise DataError(f"FASTA file {path} holds no records (no line starting with '>')")
    return fasta


def read_fasta(path: str | Path, index_dir: str | Path | None = None) -> tuple[list[str], list[str]]:
    """Return (names, sequences) of every record of a FASTA file, in file order, upper case."""
    fasta = open_fasta(path, index_dir)
    names = list(fasta.keys())
    sequences = [str(fasta[name][:]) for name in names]
    empty = next((n for n, s in zip(names, sequences) if not s), None)
    if empty is not None:
        raise DataError(f"{path}: record {empty!r} has no sequence")
    return names, sequences


@dataclass(frozen=True)
class Interval:
    """A BED interval (0-based start, end exclusive), its line number and any further columns."""

    chrom: str
    start: int
    end: int
    line: int
    extra: tuple[str, ...] = ()


def read_bed(path: str | Path) -> list[Interval]:
    """Return the intervals of a BED file; header, comment and blank lines are skipped; errors name the line.

    "course:<relative>" is a file of the course data, as for open_fasta.
    """
    path = plain_file(path, "BED")
    intervals = []
    with open(path) as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip() or line.startswith(("#", "track", "browser")):
                continue
            fields = line.rstrip("\n").split("\t") if "\t" in line else line.split()
            if len(fields) < 3:
                raise DataError(f"{path}, line {number}: a BED line needs chrom, start and end, got {line.strip()!r}")
            try:
                start, end = int(fields[1]), int(fields[2])
            except ValueError:
                raise DataError(f"{path}, line {number}: start and end must be integers, got {fields[1:3]}") from None
            if not 0 <= start < end:
                raise DataError(f"{path}, line {number}: need 0 <= start < end, got {start}-{end}")
            intervals.append(Interval(fields[0], start, end, number, tuple(fields[3:])))
    if not intervals:
        raise DataError(f"BED file {path} holds no intervals")
    return intervals


def chromosome_lengths(genome: pyfaidx.Fasta) -> dict[str, int]:
    """Return {chromosome: length} of an open genome FASTA."""
    return {name: len(record) for name, record in genome.records.items()}


def check_intervals(intervals: list[Interval], lengths: dict[str, int], source: str) -> None:
    """Raise DataError naming the BED line of an interval on an unknown chromosome or beyond its end."""
    for interval in intervals:
        if interval.chrom not in lengths:
            known = ", ".join(list(lengths)[:5])
            raise DataError(f"{source}, line {interval.line}: chromosome {interval.chrom!r} is not in the genome "
                            f"FASTA (it has {known}...): check the genome build and chromosome naming")
        if interval.end > lengths[interval.chrom]:
            raise DataError(f"{source}, line {interval.line}: {interval.chrom}:{interval.start}-{interval.end} ends "
                            f"beyond the chromosome's end ({lengths[interval.chrom]} bp): wrong genome build?")


def centred_windows(intervals: list[Interval], lengths: dict[str, int], length: int) -> list[tuple[str, int, int]]:
    """Return (chrom, start, end) of each interval's `length` bp centre window, clipped to the chromosome.

    The window starts length // 2 before the centre, so an odd length keeps its extra base on the right.
    """
    windows = []
    for interval in intervals:
        start = (interval.start + interval.end) // 2 - length // 2
        windows.append((interval.chrom, max(0, start), min(lengths[interval.chrom], start + length)))
    return windows


def fetch_windows(genome: pyfaidx.Fasta, windows: list[tuple[str, int, int]]) -> tuple[list[str], list[str]]:
    """Return (names 'chrom:start-end', sequences) of windows, as bedtools getfasta names them."""
    names = [f"{c}:{s}-{e}" for c, s, e in windows]
    return names, [str(genome[c][s:e]) for c, s, e in windows]


def bed_windows(bed: str | Path, genome_fasta: str | Path, length: int = 200,
                index_dir: str | Path | None = None) -> tuple[list[str], list[str], list[Interval]]:
    """Return (names, sequences, intervals) of the `length` bp centre windows of a BED file's peaks."""
    genome = open_fasta(genome_fasta, index_dir)
    intervals = read_bed(bed)
    lengths = chromosome_lengths(genome)
    check_intervals(intervals, lengths, str(bed))
    names, sequences = fetch_windows(genome, centred_windows(intervals, lengths, length))
    return names, sequences, intervals


def parse_region(name: str) -> tuple[str, int, int] | None:
    """Return (chrom, start, end) from a 'chrom:start-end' record name, or None if it has another form."""
    match = _REGION.match(name)
    return (match["chrom"], int(match["start"]), int(match["end"])) if match else None
