"""FASTA and BED reading on small files the tests write, and the clear errors bad input must give."""
from __future__ import annotations

import gzip
import os
import stat

import pytest

from common.errors import DataError
from motifs.io import bed_windows, parse_region, read_bed, read_fasta


def write(path, text):
    path.write_text(text)
    return path


@pytest.fixture
def genome(tmp_path):
    """A two-chromosome genome: chr1 = 100 bp (lines of 30, soft-masked tail), chr2 = 40 bp."""
    chr1 = "ACGT" * 20 + "acgtacgtacgtacgtacgt"
    chr2 = "TTTTGGGGCCCCAAAA" * 2 + "ACGTACGT"
    lines = [chr1[i:i + 30] for i in range(0, 100, 30)]
    text = ">chr1 some description\n" + "\n".join(lines) + "\n>chr2\n" + chr2 + "\n"
    return write(tmp_path / "genome.fa", text), chr1, chr2


def test_fasta_records_in_order_upper_case(tmp_path):
    path = write(tmp_path / "a.fa", ">chr1:10-18\nACGTacgt\n>second\nNNNNACGT\n")
    names, sequences = read_fasta(path, index_dir=tmp_path / "index")
    assert names == ["chr1:10-18", "second"]
    assert sequences == ["ACGTACGT", "NNNNACGT"]


def test_course_paths_are_found_through_deepbio_data_from_any_folder(tmp_path, monkeypatch):
    course = tmp_path / "course"
    (course / "ChIP").mkdir(parents=True)
    write(course / "ChIP" / "peaks.fa", ">chr1:0-8\nACGTACGT\n")
    write(course / "ChIP" / "peaks.bed", "chr1\t0\t8\n")
    monkeypatch.setenv("DEEPBIO_DATA", str(course))
    (tmp_path / "elsewhere").mkdir()
    monkeypatch.chdir(tmp_path / "elsewhere")
    assert read_fasta("course:ChIP/peaks.fa", index_dir=tmp_path / "index") == (["chr1:0-8"], ["ACGTACGT"])
    assert [(i.chrom, i.start, i.end) for i in read_bed("course:ChIP/peaks.bed")] == [("chr1", 0, 8)]
    with pytest.raises(DataError, match="DEEPBIO_DATA=.* does not hold the course's 'ChIP/PRDM1.fa'"):
        read_fasta("course:ChIP/PRDM1.fa")


def test_bed_windows_are_the_centre_windows_of_the_length_clipped_like_bedtools(genome, tmp_path):
    path, chr1, chr2 = genome
    bed = write(tmp_path / "peaks.bed", "track name=x\nchr1\t40\t60\tpeakA\nchr1\t0\t6\nchr2\t30\t40\n")
    names, sequences, intervals = bed_windows(bed, path, length=20, index_dir=tmp_path / "index")
    # centre 50 -> 40..60; centre 3 -> 0..13 (clipped at the start); centre 35 -> 25..40 (clipped at the end)
    assert names == ["chr1:40-60", "chr1:0-13", "chr2:25-40"]
    assert sequences == [chr1[40:60].upper(), chr1[0:13], chr2[25:40]]
    assert [i.line for i in intervals] == [2, 3, 4] and intervals[0].extra == ("peakA",)
    assert parse_region(names[0]) == ("chr1", 40, 60)
    odd_names, odd_sequences, _ = bed_windows(bed, path, length=21, index_dir=tmp_path / "index")
    assert odd_names[0] == "chr1:40-61" and len(odd_sequences[0]) == 21  # the extra base on the right


def test_read_only_folder_keeps_the_index_elsewhere(tmp_path):
    folder = tmp_path / "readonly"
    folder.mkdir()
    write(folder / "a.fa", ">x\nACGT\n")
    os.chmod(folder, stat.S_IRUSR | stat.S_IXUSR)
    try:
        names, _ = read_fasta(folder / "a.fa", index_dir=tmp_path / "index")
        assert names == ["x"] and list(folder.iterdir()) == [folder / "a.fa"]  # nothing written beside the data
        assert any((tmp_path / "index").iterdir())
    finally:
        os.chmod(folder, stat.S_IRWXU)


@pytest.mark.parametrize("content, message", [
    ("", "is empty"),
    ("\n\n", "not a valid FASTA"),
    (">a\nACGT\n>b\nACGT\n>a\nACGT\n", "'a' appears more than once"),
    ("ACGT\n>a\nACGT\n", "not a valid FASTA"),
    (">a\nACGT\n>b\nACGT\n\n\n", "could not be indexed.*blank lines"),
])
def test_bad_fasta_files_give_clear_errors(tmp_path, content, message):
    path = write(tmp_path / "bad.fa", content)
    with pytest.raises(DataError, match=message) as error:
        read_fasta(path, index_dir=tmp_path / "index")
    assert "bad.fa" in str(error.value)


def test_compressed_folder_and_unevenly_wrapped_inputs_say_what_to_do(tmp_path):
    packed = tmp_path / "peaks.fa.gz"
    packed.write_bytes(gzip.compress(b">a\nACGT\n"))
    with pytest.raises(DataError, match=r"peaks\.fa\.gz is gzip-compressed: decompress it first"):
        read_fasta(packed, index_dir=tmp_path / "index")
    with pytest.raises(DataError, match="is a folder: give the file itself"):
        read_bed(tmp_path)
    uneven = write(tmp_path / "uneven.fa", ">a\nACGTACGT\nACG\nACGTACGT\n")
    with pytest.raises(DataError, match="rewrap it"):
        read_fasta(uneven, index_dir=tmp_path / "index")


def test_windows_line_endings_are_read_and_old_mac_ones_are_named(tmp_path):
    crlf = tmp_path / "crlf.fa"
    crlf.write_bytes(b">a\r\nACGTACGT\r\nACGT\r\n>b\r\nGGGG\r\n")
    assert read_fasta(crlf, index_dir=tmp_path / "index") == (["a", "b"], ["ACGTACGTACGT", "GGGG"])
    cr_only = tmp_path / "mac.fa"
    cr_only.write_bytes(b">a\rACGTACGT\rACGT\r>b\rGGGG\r")
    with pytest.raises(DataError, match=r"mac\.fa ends its lines with CR only .*tr '\\r' '\\n' < mac\.fa"):
        read_fasta(cr_only, index_dir=tmp_path / "index")


def test_an_unwritable_index_location_names_the_fasta_and_the_fix(tmp_path):
    path = write(tmp_path / "a.fa", ">x\nACGT\n")
    blocker = write(tmp_path / "not_a_folder", "")
    with pytest.raises(DataError, match=r"cannot write the index of .*a\.fa.*index_dir"):
        read_fasta(path, index_dir=blocker / "index")


@pytest.mark.parametrize("line, message", [
    ("chr1\t90\t120\n", r"line 1: chr1:90-120 ends beyond the chromosome's end \(100 bp\)"),
    ("chrUn\t10\t20\n", r"line 1: chromosome 'chrUn' is not in the genome"),
    ("chr1\t50\t40\n", r"line 1: need 0 <= start < end"),
    ("chr1\tten\t40\n", r"line 1: start and end must be integers"),
    ("chr1\t10\n", r"line 1: a BED line needs chrom, start and end"),
])
def test_bad_bed_intervals_name_the_line(genome, tmp_path, line, message):
    path, _, _ = genome
    bed = write(tmp_path / "bad.bed", line)
    with pytest.raises(DataError, match=message):
        bed_windows(bed, path, length=20, index_dir=tmp_path / "index")


def test_empty_bed_is_an_error(tmp_path):
    with pytest.raises(DataError, match="holds no intervals"):
        read_bed(write(tmp_path / "empty.bed", "# nothing\n"))


def test_a_fasta_replaced_by_an_older_file_is_indexed_afresh(tmp_path):
    """mv / cp -p / rsync -a keep an older modification time: the cached index must not be reused."""
    older = write(tmp_path / "older.fa", ">x\nAAAAAAAA\n>y\nCCCC\n")
    os.utime(older, (1_000_000_000, 1_000_000_000))
    path = write(tmp_path / "peaks.fa", ">x\nGGGGGGGG\n")
    assert read_fasta(path, index_dir=tmp_path / "index") == (["x"], ["GGGGGGGG"])
    os.replace(older, path)
    assert read_fasta(path, index_dir=tmp_path / "index") == (["x", "y"], ["AAAAAAAA", "CCCC"])
