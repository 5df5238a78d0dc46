"""MotifData: classes from files or synthetic, negatives, chromosome split, multilabel, N policy, predict."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from common.errors import ConfigError, DataError
from motifs.background import merge_regions, overlaps
from motifs.data import MotifData
from motifs.encode import gc_content
from motifs.shuffle import dinucleotide_counts
from tests.conftest import bf16_fits_as_taken_and_in_float32


def random_dna(rng, n, gc=0.4):
    return "".join(rng.choice(list("ACGT"), size=n, p=[(1 - gc) / 2, gc / 2, gc / 2, (1 - gc) / 2]))


def write_fasta(path, records):
    path.write_text("".join(f">{name}\n{sequence}\n" for name, sequence in records))
    return str(path)


@pytest.fixture
def peaks(tmp_path):
    """Two small 'peak' FASTA files named chrN:start-end (the second shares one region with the first)."""
    rng = np.random.default_rng(0)
    a = [(f"chr{c}:{i * 100}-{i * 100 + 20}", random_dna(rng, 20)) for c in (1, 2, 3) for i in range(10)]
    b = [(f"chr{c}:{5000 + i * 100}-{5000 + i * 100 + 20}", random_dna(rng, 20)) for c in (1, 2, 3) for i in range(6)]
    b.append(a[0])  # a co-bound region
    return write_fasta(tmp_path / "a.fa", a), write_fasta(tmp_path / "b.fa", b)


def make(tmp_path, **kwargs):
    kwargs.setdefault("length", 20)
    kwargs.setdefault("val_chromosomes", ["chr2"])
    kwargs.setdefault("test_chromosomes", ["chr3"])
    data = MotifData(index_dir=str(tmp_path / "index"), **kwargs)
    data.setup("fit")
    return data


def test_synthetic_default_three_classes_split_by_chromosome():
    data = MotifData(synthetic_per_class=300)
    data.setup("fit")
    assert data.class_names == ["SOX17", "PRDM1", "random"] and data.task == "multiclass"
    chromosomes = {part: set(data.splits[part].chromosomes) for part in ("train", "val", "test")}
    assert chromosomes["val"] == {"chr7"} and chromosomes["test"] == {"chr10"}
    assert not chromosomes["train"] & {"chr7", "chr10"}
    x, y = next(iter(data.train_dataloader()))
    assert x.shape == (128, 4, 200) and y.dtype == torch.int64
    assert data.train_label_counts().sum() == len(data.splits["train"].names)
    assert "synthetic" in data.data_source


@pytest.mark.parametrize("backbone", ["course", "multi-kernel"])
def test_loaders_hold_uint8_windows_that_bf16_runs_take_in_bf16_and_train_as_with_float32(tmp_path, monkeypatch,
                                                                                           backbone):
    """uint8 one-hot in the loaders; made bf16 for the CNNs under bf16-mixed: weights and metrics as with float32."""
    from common.classifier import Classifier
    from motifs.models import CourseCNN, MultiKernelCNN

    data = MotifData(synthetic_per_class=40, batch_size=32, shift=3, reverse_complement=True)
    data.setup("fit")
    x, _ = next(iter(data.val_dataloader()))
    assert x.dtype == torch.uint8 and x.stride(1) == 1
    assert torch.equal(x.float(), data.splits["val"].tensors()[0][:32])
    def model():
        backbone_ = CourseCNN(dense=8) if backbone == "course" else MultiKernelCNN(filters_per_kernel=4, dense=8)
        return Classifier(backbone_, data.class_names, task="multiclass", channels_last=True)

    (seen, metrics, weights), (seen_float32, metrics_float32, weights_float32) = bf16_fits_as_taken_and_in_float32(
        model, data, tmp_path, monkeypatch)
    assert seen == {torch.bfloat16} and seen_float32 == {torch.float32}
    assert metrics == metrics_float32
    assert all(torch.equal(weights[name], weights_float32[name]) for name in weights)


def test_shuffled_negatives_stay_with_their_positive(tmp_path, peaks):
    data = make(tmp_path, sources={"A": peaks[0]}, task="binary", negatives=["shuffle"], negative_class="shuffled")
    assert data.class_names == ["shuffled", "A"]
    for part in ("train", "val", "test"):
        windows = data.splits[part]
        positives = {n: c for n, c, y in zip(windows.names, windows.codes, windows.labels) if y == 1}
        negatives = {n.removesuffix("_shuffled"): c for n, c, y in zip(windows.names, windows.codes, windows.labels)
                     if y == 0}
        assert positives.keys() == negatives.keys()  # each shuffle sits in its positive's split
        for name, codes in positives.items():
            assert np.array_equal(dinucleotide_counts(codes), dinucleotide_counts(negatives[name]))
    assert data.train_label_counts().tolist() == [10, 10]


def test_the_random_split_keeps_overlapping_windows_and_shuffled_copies_in_one_part(tmp_path):
    """Overlapping peaks share bases: apart in training and test they would leak; so would a shuffle of a test peak."""
    rng = np.random.default_rng(7)
    records = [(f"chr1:{i * 100 + shift}-{i * 100 + shift + 20}", random_dna(rng, 20))
               for i in range(20) for shift in (0, 10)]  # 20 pairs of overlapping windows
    data = make(tmp_path, sources={"A": write_fasta(tmp_path / "a.fa", records)}, task="binary",
                negatives=["shuffle"], split="random", val_fraction=0.2, test_fraction=0.2)
    part_of = {name: part for part in ("train", "val", "test") for name in data.splits[part].names}
    assert len(part_of) == 80 and all(len(data.splits[part].names) >= 8 for part in ("val", "test"))
    for i in range(20):
        pair = [f"chr1:{i * 100 + shift}-{i * 100 + shift + 20}" for shift in (0, 10)]
        assert len({part_of[name] for name in pair + [f"{n}_shuffled" for n in pair]}) == 1, pair


def test_multiclass_and_multilabel_from_several_files(tmp_path, peaks):
    multiclass = make(tmp_path, sources={"A": peaks[0], "B": peaks[1]}, task="multilabel", split="random")
    assert multiclass.class_names == ["A", "B"]
    everything = multiclass.load()
    assert everything.labels.shape == (48, 2)  # 30 + 19 records, one region shared
    assert everything.labels[everything.names.index("chr1:0-20")].tolist() == [1, 1]
    assert multiclass.train_label_counts().shape == (2, 2)
    with pytest.raises(DataError, match="chr1:0-20.*several classes.*multilabel"):
        make(tmp_path, sources={"A": peaks[0], "B": peaks[1]}, task="multiclass", negatives=["shuffle"])


def test_one_name_for_two_different_sequences_is_refused(tmp_path):
    """Generic names (seq1...) in two files are not one co-bound region: merging them would drop sequences."""
    rng = np.random.default_rng(6)
    a = write_fasta(tmp_path / "a.fa", [(f"seq{i}", random_dna(rng, 20)) for i in range(6)])
    b = write_fasta(tmp_path / "b.fa", [(f"seq{i}", random_dna(rng, 20)) for i in range(6)])
    with pytest.raises(DataError, match=r"'seq0' stands for two different sequences \(classes \['A'\] and \['B'\]\)"):
        make(tmp_path, sources={"A": a, "B": b}, task="multilabel", split="random")


def test_n_windows_dropped_or_zeroed(tmp_path):
    rng = np.random.default_rng(1)
    records = [(f"chr{1 + i % 3}:{i * 50}-{i * 50 + 20}", random_dna(rng, 20)) for i in range(12)]
    records[4] = (records[4][0], "ACGTNACGTACGTACGTACG")
    path = write_fasta(tmp_path / "n.fa", records)
    dropped = make(tmp_path, sources={"A": path}, task="binary", negatives=["shuffle"])
    assert len(dropped.load().names) == 22 and records[4][0] not in dropped.load().names
    kept = make(tmp_path, sources={"A": path}, task="binary", negatives=["shuffle"], unknown_bases="zero")
    windows = kept.load()
    x, _ = windows.subset(np.array([windows.names.index(records[4][0])])).tensors()
    assert x[0, :, 4].sum() == 0
    only_n = write_fasta(tmp_path / "only_n.fa", [(name, "ACGTN" * 4) for name, _ in records])
    with pytest.raises(DataError, match="every window holds N .*unknown_bases: zero"):
        make(tmp_path, sources={"A": only_n}, task="binary", negatives=["shuffle"])


def test_genome_negatives_avoid_peaks_without_n_and_match_gc(tmp_path):
    """An AT-rich genome (35% GC) whose peaks sit in GC-rich stretches (60% GC), as in real data, plus a GC-rich
    stretch without peaks (4700-6000 on each chromosome) where matched negatives can be found."""
    rng = np.random.default_rng(2)
    peak_list = [(f"chr{1 + i % 3}", 200 + i * 150, 260 + i * 150) for i in range(30)]
    chromosomes = {}
    for c in ("chr1", "chr2", "chr3"):
        sequence = list(random_dna(rng, 4700, gc=0.35) + random_dna(rng, 1300, gc=0.6))
        for chrom, start, end in peak_list:
            if chrom == c:
                sequence[start:end] = random_dna(rng, end - start, gc=0.6)
        chromosomes[c] = "".join(sequence)
    chromosomes["chr1"] = chromosomes["chr1"][:5000] + "N" * 500 + chromosomes["chr1"][5500:]
    genome = write_fasta(tmp_path / "genome.fa", chromosomes.items())
    bed = tmp_path / "peaks.bed"
    bed.write_text("".join(f"{chrom}\t{start}\t{end}\n" for chrom, start, end in peak_list))
    median_gc = {}
    for matched in (True, False):
        data = make(tmp_path, sources={"TF": str(bed)}, genome=genome, task="binary", negatives=["genome"],
                    gc_matched=matched, length=40)
        windows = data.load()
        positive = windows.labels == 1
        assert positive.sum() == 30 and (~positive).sum() == 30
        peak_regions = merge_regions(peak_list)
        for name in np.array(windows.names)[~positive]:
            chrom, span = name.split(":")
            start, end = map(int, span.split("-"))
            assert not overlaps(chrom, np.array([start]), np.array([end]), peak_regions)[0]
            assert end - start == 40 and not (chrom == "chr1" and start < 5500 and end > 5000)
        gc = gc_content(windows.codes)
        median_gc[matched] = np.median(gc[positive]), np.median(gc[~positive])
    # Measured (genome seeds 0-9): peaks 0.59-0.63; matched negatives within 0.025 of them, unmatched 0.20-0.30 below.
    (peaks_gc, matched_gc), (same_peaks_gc, unmatched_gc) = median_gc[True], median_gc[False]
    assert peaks_gc == same_peaks_gc and peaks_gc > 0.55  # the peaks are GC-rich
    assert abs(peaks_gc - matched_gc) < 0.05
    assert peaks_gc - unmatched_gc > 0.1  # without matching the AT-rich genome shows: the check above can fail


def test_genome_negatives_are_drawn_and_gc_matched_within_each_part(tmp_path):
    """Training peaks (chr1) are GC-rich, validation peaks (chr2) AT-rich: each part's negatives match its own."""
    rng = np.random.default_rng(4)
    peak_gc = {"chr1": 0.65, "chr2": 0.3, "chr3": 0.65}
    peak_list = [(chrom, 100 + i * 120, 140 + i * 120) for chrom in peak_gc for i in range(12)]
    chromosomes = {}
    for chrom, gc in peak_gc.items():
        sequence = list(random_dna(rng, 3000, gc=0.3) + random_dna(rng, 3000, gc=0.65))
        for c, start, end in peak_list:
            if c == chrom:
                sequence[start:end] = random_dna(rng, end - start, gc=gc)
        chromosomes[chrom] = "".join(sequence)
    genome = write_fasta(tmp_path / "genome.fa", chromosomes.items())
    bed = tmp_path / "peaks.bed"
    bed.write_text("".join(f"{chrom}\t{start}\t{end}\n" for chrom, start, end in peak_list))
    data = make(tmp_path, sources={"TF": str(bed)}, genome=genome, task="binary", negatives=["genome"],
                gc_matched=True, length=40)
    for part, chrom in (("train", "chr1"), ("val", "chr2"), ("test", "chr3")):
        windows = data.splits[part]
        positive = windows.labels == 1
        assert positive.sum() == (~positive).sum() == 12  # balanced within the part
        assert set(windows.chromosomes[~positive]) == {chrom}  # drawn from the part's own chromosomes
        gc = gc_content(windows.codes)
        assert abs(np.median(gc[~positive]) - np.median(gc[positive])) < 0.05, part
    renamed = write_fasta(tmp_path / "renamed.fa", [(c.removeprefix("chr"), s) for c, s in chromosomes.items()])
    fasta_peaks = write_fasta(tmp_path / "peaks.fa", [(f"{c}:{a}-{b}", chromosomes[c][a:b]) for c, a, b in peak_list])
    with pytest.raises(DataError, match=r"peaks lie on chromosomes the genome FASTA .*renamed\.fa lacks "
                                        r"\(chr1, chr2, chr3; it has 1, 2, 3\.\.\.\): check the genome build"):
        make(tmp_path, sources={"TF": fasta_peaks}, genome=renamed, task="binary", negatives=["genome"], length=40)


def test_labelled_bed_classes_from_a_column(tmp_path):
    rng = np.random.default_rng(3)
    genome = write_fasta(tmp_path / "genome.fa", [(f"chr{i}", random_dna(rng, 2000)) for i in (1, 2, 3)])
    bed = tmp_path / "labels.bed"
    labels = ["PRDM1,SOX17", "SOX17"]
    bed.write_text("".join(f"chr{1 + i % 3}\t{100 + i * 60}\t{120 + i * 60}\tpeak{i}\t{labels[i % 2]}\n"
                           for i in range(24)))
    data = make(tmp_path, labelled_bed=str(bed), genome=genome, label_column=5, task="multilabel", split="random")
    assert data.class_names == ["PRDM1", "SOX17"]
    assert data.load().labels.sum(0).tolist() == [12, 24]
    odd = make(tmp_path, labelled_bed=str(bed), genome=genome, label_column=5, task="multilabel", split="random",
               length=21)
    assert len(odd.load().names) == 24 and odd.load().codes.shape[1] == 21  # an odd length cuts whole windows
    bed.write_text(bed.read_text() + "chr2\t900\t920\tpeak24\t\n")
    with pytest.raises(DataError, match=r"labels\.bed, line 25: the label column 5 is empty"):
        make(tmp_path, labelled_bed=str(bed), genome=genome, label_column=5, task="multiclass", split="random")
    clipped = tmp_path / "clipped.bed"
    clipped.write_text("chr1\t0\t4\tedge\tSOX17\n")
    with pytest.raises(DataError, match="clipped.bed: none of its 1 peaks has a full 20 bp window"):
        make(tmp_path, labelled_bed=str(clipped), genome=genome, label_column=5, task="multilabel", split="random")


def test_chromosome_split_errors_are_clear(tmp_path):
    rng = np.random.default_rng(4)
    path = write_fasta(tmp_path / "plain.fa", [(f"seq{i}", random_dna(rng, 20)) for i in range(10)])
    with pytest.raises(DataError, match="'seq0' is not named 'chrom:start-end'.*split: random"):
        make(tmp_path, sources={"A": path}, task="binary", negatives=["shuffle"])
    named = write_fasta(tmp_path / "named.fa",
                        [(f"chr1:{i * 50}-{i * 50 + 20}", random_dna(rng, 20)) for i in range(10)])
    with pytest.raises(DataError, match=r"no window lies on the validation chromosomes \['chr2'\]"):
        make(tmp_path, sources={"A": named}, task="binary", negatives=["shuffle"])


def test_config_errors():
    with pytest.raises(ConfigError, match="binary task needs one class plus negatives"):
        MotifData(sources={"A": "a.fa", "B": "b.fa", "C": "c.fa"}, task="binary")
    with pytest.raises(ConfigError, match="give genome"):
        MotifData(sources={"A": "a.fa"}, negatives=["genome"])
    with pytest.raises(ConfigError, match="max_per_class subsamples sources"):
        MotifData(labelled_bed="peaks.bed", genome="genome.fa", max_per_class=100)


def test_predict_fasta_keeps_names_and_checks_length(tmp_path):
    rng = np.random.default_rng(5)
    good = write_fasta(tmp_path / "query.fa", [("first", random_dna(rng, 200)), ("second", "N" * 200)])
    data = MotifData(predict_fasta=good, index_dir=str(tmp_path / "index"))
    data.setup("predict")
    assert data.predict_ids == ["first", "second"] and data.predict_id_column == "name"
    (batch,) = next(iter(data.predict_dataloader()))
    assert batch.shape == (2, 4, 200) and batch[1].sum() == 0
    bad = write_fasta(tmp_path / "short.fa", [("ok", random_dna(rng, 200)), ("tiny", "ACGT")])
    with pytest.raises(DataError, match="'tiny' is 4 bp long.*200 bp"):
        MotifData(predict_fasta=bad, index_dir=str(tmp_path / "index")).setup("predict")


def test_a_source_with_a_window_of_another_length_is_named(tmp_path):
    rng = np.random.default_rng(0)
    good = write_fasta(tmp_path / "sox17.fa", [(f"chr1:{i}-{i + 200}", random_dna(rng, 200)) for i in range(0, 4000, 200)])
    bad = write_fasta(tmp_path / "prdm1.fa", [("chr2:0-200", random_dna(rng, 200)), ("chr2:300-450", random_dna(rng, 150))])
    data = MotifData(sources={"SOX17": good, "PRDM1": bad}, split="random", index_dir=str(tmp_path / "index"))
    with pytest.raises(DataError, match=r"prdm1\.fa: record 'chr2:300-450' is 150 bp long"):
        data.setup("fit")
