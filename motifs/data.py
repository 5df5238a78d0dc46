"""MotifData: DNA windows per class (FASTA, BED + genome, or built-in synthetic), negatives, splits, augmentation."""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch

from common.data import BatchTensors, batch_loader, group_split_indices, input_dtype_of
from common.errors import ConfigError, DataError
from common.paths import shown_path
from motifs.augment import random_reverse_complement, random_shift
from motifs.background import random_genomic_windows
from motifs.encode import gc_content, has_unknown, one_hot, sequence_codes
from motifs.io import bed_windows, chromosome_lengths, open_fasta, parse_region, read_bed, read_fasta
from motifs.shuffle import shuffle_all
from motifs.synthetic import synthetic_windows

log = logging.getLogger(__name__)
BED_SUFFIXES = (".bed", ".narrowPeak", ".broadPeak")


@dataclass
class Windows:
    """DNA windows of one split: names, (N, L) codes, labels, chromosomes and, for synthetic data, implant masks."""

    names: list[str]
    codes: np.ndarray
    labels: np.ndarray
    chromosomes: np.ndarray
    implant_mask: np.ndarray | None = None

    def subset(self, index: np.ndarray) -> "Windows":
        """Return the windows at `index`."""
        mask = None if self.implant_mask is None else self.implant_mask[index]
        return Windows([self.names[i] for i in index], self.codes[index], self.labels[index], self.chromosomes[index],
                       mask)

    def tensors(self, dtype: torch.dtype = torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (x, y): one-hot (N, 4, L) in `dtype` (float32) and labels (int64 class index or float 0/1)."""
        return one_hot(self.codes, dtype), torch.from_numpy(self.labels)


def _concat(parts: list[Windows]) -> Windows:
    masks = [p.implant_mask for p in parts]
    return Windows([n for p in parts for n in p.names], np.concatenate([p.codes for p in parts]),
                   np.concatenate([p.labels for p in parts]), np.concatenate([p.chromosomes for p in parts]),
                   None if any(m is None for m in masks) else np.concatenate(masks))


SHUFFLED = "_shuffled"  # a shuffled negative's name: its positive's name and this


def overlap_groups(names: list[str]) -> np.ndarray:
    """Return a group per window for the random split: overlapping regions share one, shuffled copies their positive's.

    Windows named 'chrom:start-end' that overlap hold the same bases, so they must not land in
    training and test apart; other names are groups of their own.
    """
    bases = [name.removesuffix(SHUFFLED) for name in names]
    regions = [parse_region(base) for base in bases]
    group_of: dict[tuple[str, int, int], int] = {}
    group, open_chrom, open_end = -1, "", 0  # the open cluster of overlapping regions
    for chrom, start, end in sorted({region for region in regions if region}):
        if chrom != open_chrom or start >= open_end:  # ends are exclusive: touching is not overlapping
            group, open_chrom, open_end = group + 1, chrom, end
        open_end = max(open_end, end)
        group_of[(chrom, start, end)] = group
    return np.array([f"region {group_of[region]}" if region else f"name {base}"
                     for base, region in zip(bases, regions)])


def chromosomes_of(names: list[str]) -> np.ndarray:
    """Return the chromosome of each 'chrom:start-end' name ('' where a name has another form)."""
    return np.array([(parse_region(n) or ("",))[0] for n in names], dtype=object)


class MotifData(L.LightningDataModule):
    """Windows of DNA labelled by the factor bound there, for binary, multiclass or multilabel training.

    Classes come from `sources` (class name -> FASTA file, or BED file cut from `genome` at the
    peak centre +/- length/2), from one `labelled_bed` (labels in column `label_column`, comma-
    separated for co-bound regions), or, with neither, from built-in synthetic data (SOX17, PRDM1
    and random windows, implants recorded). `negatives` adds a negative class: 'shuffle'
    (dinucleotide-shuffled copies of the positives, kept in their positive's chromosome so splits
    stay clean) and/or 'genome' (random windows avoiding the peaks, `gc_matched` optional; under the
    chromosome split each part's are drawn from its own chromosomes, as many as its positives).
    binary: one source plus negatives, or two sources (the first is the negative class).
    multilabel: one output per source; negatives have no label.
    Split by chromosome (default; names 'chrom:start-end') or at random, where overlapping regions
    and a positive's shuffled copy stay in one part. Any file may be given as
    "course:<relative>", a file inside the course data ($DEEPBIO_DATA, else ../shared/data).
    Loaders hand out one-hot windows as uint8; on_after_batch_transfer makes them float.
    """

    def __init__(
        self,
        sources: dict[str, str] | None = None,
        genome: str | None = None,
        labelled_bed: str | None = None,
        label_column: int = 4,
        task: Literal["binary", "multiclass", "multilabel"] = "multiclass",
        negatives: list[Literal["shuffle", "genome"]] | None = None,
        negative_class: str = "background",
        gc_matched: bool = False,
        length: int = 200,
        unknown_bases: Literal["drop", "zero"] = "drop",
        split: Literal["chromosome", "random"] = "chromosome",
        val_chromosomes: list[str] | None = None,
        test_chromosomes: list[str] | None = None,
        val_fraction: float = 0.1,
        test_fraction: float = 0.1,
        max_per_class: int | None = None,
        synthetic_per_class: int = 1000,
        synthetic_sites: int = 3,
        shift: int = 0,
        reverse_complement: bool = False,
        predict_fasta: str | None = None,
        batch_size: int = 128,
        index_dir: str | None = None,
        seed: int = 0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.negatives = list(negatives or [])
        self.val_chromosomes = list(val_chromosomes or ["chr7"])
        self.test_chromosomes = list(test_chromosomes or ["chr10"])
        self.task = task
        self.class_names = self._class_names()
        self.input_shape = (4, length)
        self.predict_id_column = "name"
        self.predict_ids: list[str] = []
        self.splits: dict[str, Windows] = {}
        self.dropped: dict[str, int] = {}
        self.peak_regions: list[tuple[str, int, int]] = []  # what random genome windows must avoid
        self.data_source = self._describe()

    # ---- configuration -------------------------------------------------------------------------
    def _source_classes(self) -> list[str]:
        hp = self.hparams
        if hp.sources and hp.labelled_bed:
            raise ConfigError("give either sources (one file per class) or labelled_bed, not both")
        if hp.labelled_bed and hp.max_per_class is not None:
            raise ConfigError("max_per_class subsamples sources (one file per class); a labelled_bed's windows may "
                              "hold several classes: cut the BED file instead")
        if hp.labelled_bed:
            labels = {label for interval in read_bed(hp.labelled_bed) for label in self._bed_labels(interval)}
            return sorted(labels)
        if hp.sources:
            return list(hp.sources)
        return ["SOX17"] if self.task == "binary" else ["SOX17", "PRDM1"]

    def _bed_labels(self, interval) -> list[str]:
        column = self.hparams.label_column - 4  # BED columns 1-3 are chrom, start, end
        if column < 0 or column >= len(interval.extra):
            raise DataError(f"{self.hparams.labelled_bed}, line {interval.line}: no label in column "
                            f"{self.hparams.label_column}")
        return [label.strip() for label in interval.extra[column].split(",") if label.strip()]

    def _class_names(self) -> list[str]:
        hp = self.hparams
        classes = self._source_classes()
        synthetic = not hp.sources and not hp.labelled_bed
        negative = "random" if synthetic else hp.negative_class
        has_negatives = bool(self.negatives) or (synthetic and self.task != "multilabel")
        if synthetic and self.negatives:
            raise ConfigError("the built-in synthetic data has its own 'random' class: negatives apply to sources "
                              "or labelled_bed")
        if "genome" in self.negatives and not hp.genome:
            raise ConfigError("negatives 'genome' draws random genome windows: give genome (a FASTA file)")
        if self.task == "multilabel":
            return classes
        if self.task == "binary":
            if has_negatives and len(classes) == 1:
                return [negative, classes[0]]
            if not has_negatives and len(classes) == 2:
                return classes
            raise ConfigError(f"a binary task needs one class plus negatives, or two classes; got {classes} "
                              f"and negatives {self.negatives}")
        return classes + ([negative] if has_negatives else [])

    def _describe(self) -> str:
        hp = self.hparams
        if hp.labelled_bed:
            what = f"labelled BED {shown_path(hp.labelled_bed)} on {shown_path(hp.genome)}"
        elif hp.sources:
            what = ", ".join(f"{name}: {shown_path(path)}" for name, path in hp.sources.items())
        else:
            what = (f"synthetic (built-in, JASPAR SOX17/PRDM1 implants, {hp.synthetic_per_class} per class, "
                    f"seed {hp.seed})")
        negatives = f"; negatives: {', '.join(self.negatives)}" if self.negatives else ""
        split = (f"chromosome split (val {self.val_chromosomes}, test {self.test_chromosomes})"
                 if hp.split == "chromosome" else f"random split (val {hp.val_fraction}, test {hp.test_fraction})")
        return f"{what}{negatives}; {split}"

    # ---- loading -------------------------------------------------------------------------------
    def _read_source(self, path: str) -> tuple[list[str], list[str]]:
        hp = self.hparams
        if path.endswith(BED_SUFFIXES):
            names, sequences, _ = self._cut_bed(path)
            return names, sequences
        names, sequences = read_fasta(path, hp.index_dir)
        self.peak_regions += [region for region in map(parse_region, names) if region]
        return names, sequences

    def _cut_bed(self, path: str) -> tuple[list[str], list[str], list]:
        """Return the full-length centre windows of a BED file's peaks (those clipped at a chromosome end dropped)."""
        hp = self.hparams
        if not hp.genome:
            raise ConfigError(f"{path} is a BED file: give genome (a FASTA file) to cut windows from")
        names, sequences, intervals = bed_windows(path, hp.genome, hp.length, hp.index_dir)
        self.peak_regions += [(i.chrom, i.start, i.end) for i in intervals]
        full = [i for i, s in enumerate(sequences) if len(s) == hp.length]
        self.dropped[f"{path}: clipped at a chromosome end"] = len(sequences) - len(full)
        if sequences and not full:
            raise DataError(f"{path}: none of its {len(sequences)} peaks has a full {hp.length} bp window inside its "
                            f"chromosome of {shown_path(hp.genome)}: check that BED and genome are the same build")
        return [names[i] for i in full], [sequences[i] for i in full], [intervals[i] for i in full]

    def _positives(self) -> Windows:
        hp = self.hparams
        if not hp.sources and not hp.labelled_bed:
            return self._synthetic()
        if hp.labelled_bed:
            names, sequences, intervals = self._cut_bed(hp.labelled_bed)
            labels_per_window = [self._bed_labels(i) for i in intervals]
            unlabelled = next((i for i, labels in zip(intervals, labels_per_window) if not labels), None)
            if unlabelled is not None and self.task != "multilabel":  # multilabel: bound by none of the classes
                raise DataError(f"{hp.labelled_bed}, line {unlabelled.line}: the label column "
                                f"{hp.label_column} is empty; every peak of a {self.task} task needs its class")
            codes = self._encode(hp.labelled_bed, sequences, names)
        else:
            names, parts, labels_per_window = [], [], []
            for class_name, path in hp.sources.items():
                class_names, class_sequences = self._read_source(str(path))
                keep = self._subsample(len(class_names))
                names += [class_names[i] for i in keep]
                parts.append(self._encode(path, [class_sequences[i] for i in keep], [class_names[i] for i in keep]))
                labels_per_window += [[class_name]] * len(keep)
            codes = np.concatenate(parts)
        return self._labelled(names, codes, labels_per_window)

    def _encode(self, source: str, sequences: list[str], names: list[str]) -> np.ndarray:
        """Return (N, length) codes of one file's windows; errors name the file."""
        if not sequences:
            return np.zeros((0, self.hparams.length), dtype=np.uint8)
        try:
            return sequence_codes(sequences, names, self.hparams.length)
        except DataError as error:
            raise DataError(f"{source}: {error}") from error

    def _subsample(self, n: int) -> np.ndarray:
        limit = self.hparams.max_per_class
        if limit is None or n <= limit:
            return np.arange(n)
        return np.sort(np.random.default_rng(self.hparams.seed).choice(n, limit, replace=False))

    def _labelled(self, names: list[str], codes: np.ndarray, labels_per_window: list[list[str]]) -> Windows:
        """Merge windows that share a name (co-bound regions) and encode their labels for the task."""
        outputs = [c for c in self.class_names if c != self.hparams.negative_class] if self.negatives \
            else self.class_names
        labels_of: dict[str, set[str]] = {}
        first: dict[str, int] = {}
        for i, (name, labels) in enumerate(zip(names, labels_per_window)):
            if name in first and not np.array_equal(codes[first[name]], codes[i]):
                raise DataError(f"the record name {name!r} stands for two different sequences (classes "
                                f"{sorted(labels_of[name])} and {sorted(labels)}): only the same region may appear "
                                "in several files (it is then co-bound); give the others unique names")
            labels_of.setdefault(name, set()).update(labels)
            first.setdefault(name, i)
        keep = np.array(list(first.values()))
        present = list(labels_of.values())
        matrix = np.array([[c in labels for c in outputs] for labels in present], dtype=np.float32)
        if self.task == "multilabel":
            y = matrix
        else:
            if (matrix.sum(1) > 1).any():
                row = int(np.argmax(matrix.sum(1) > 1))
                raise DataError(f"record {names[keep[row]]!r} belongs to several classes {sorted(present[row])}: "
                                "use task multilabel for co-bound regions")
            y = matrix.argmax(1).astype(np.int64)
            if self.task == "binary":
                y = (np.array([self.class_names.index(outputs[i]) for i in y]) == 1).astype(np.float32)
        kept_names = [names[i] for i in keep]
        return Windows(kept_names, codes[keep], y, chromosomes_of(kept_names))

    def _synthetic(self) -> Windows:
        hp = self.hparams
        factors = tuple(c for c in self.class_names if c != "random")
        task = "multilabel" if self.task == "multilabel" else "multiclass"
        data = synthetic_windows(hp.synthetic_per_class, hp.length, factors, task, hp.synthetic_sites, hp.seed)
        labels = data.labels
        if self.task == "binary":  # synthetic classes are (SOX17, random); binary wants (random, SOX17)
            labels = (labels == 0).astype(np.float32)
        return Windows(data.names, data.codes, labels, chromosomes_of(data.names), data.implant_mask)

    def _negatives(self, positives: Windows) -> list[Windows]:
        hp = self.hparams
        if not self.negatives:
            return []
        negative_label = self._negative_label(positives)
        parts = []
        if "shuffle" in self.negatives:
            codes = shuffle_all(positives.codes, hp.seed)
            names = [f"{n}{SHUFFLED}" for n in positives.names]
            parts.append(Windows(names, codes, np.repeat(negative_label, len(names), axis=0), positives.chromosomes))
        if "genome" in self.negatives:
            genome = open_fasta(hp.genome, hp.index_dir)
            for offset, (chromosomes, rows) in enumerate(self._genome_parts(positives, genome)):
                # Each part's negatives come from its own chromosomes, matched to its own peaks: no
                # statistic of test peaks shapes training negatives, and each part is balanced.
                targets = gc_content(positives.codes[rows]) if hp.gc_matched else None
                names, codes = random_genomic_windows(genome, len(rows), hp.length, self.peak_regions, targets,
                                                      hp.seed + offset, chromosomes=chromosomes)
                parts.append(Windows(names, codes, np.repeat(negative_label, len(names), axis=0),
                                     chromosomes_of(names)))
        return parts

    def _genome_parts(self, positives: Windows, genome) -> list[tuple[list[str] | None, np.ndarray]]:
        """Return (chromosomes to draw from, positive rows) per part: train/val/test by chromosome, else one."""
        if self.hparams.split != "chromosome":
            return [(None, np.arange(len(positives.names)))]
        in_genome = chromosome_lengths(genome)
        missing = sorted(set(positives.chromosomes) - set(in_genome))
        if missing:  # their part would get no negatives from them
            raise DataError(f"peaks lie on chromosomes the genome FASTA {shown_path(self.hparams.genome)} lacks "
                            f"({', '.join(missing[:5])}; it has {', '.join(list(in_genome)[:5])}...): check the "
                            "genome build and chromosome naming")
        held_out = set(self.val_chromosomes + self.test_chromosomes)
        train = [c for c in in_genome if c not in held_out]
        parts = [(chromosomes, np.flatnonzero(np.isin(positives.chromosomes, chromosomes)))
                 for chromosomes in (train, self.val_chromosomes, self.test_chromosomes)]
        return [(chromosomes, rows) for chromosomes, rows in parts if len(rows)]

    def _negative_label(self, positives: Windows) -> np.ndarray:
        if self.task == "multilabel":
            return np.zeros((1, positives.labels.shape[1]), dtype=np.float32)
        if self.task == "binary":
            return np.zeros(1, dtype=np.float32)
        return np.array([self.class_names.index(self.hparams.negative_class)], dtype=np.int64)

    def load(self) -> Windows:
        """Return every window (positives, then negatives) after the N policy; cached."""
        if "all" not in self.splits:
            positives = self._positives()
            unknown = has_unknown(positives.codes)
            if self.hparams.unknown_bases == "drop" and unknown.any():
                self.dropped["windows with N (course: dropped)"] = int(unknown.sum())
                if unknown.all():
                    raise DataError(f"no windows left to learn from ({self._describe()}): every window holds N "
                                    "(unknown) bases, which unknown_bases 'drop' removes; set unknown_bases: zero "
                                    "to keep them as all-zero columns")
                positives = positives.subset(np.flatnonzero(~unknown))
            self.splits["all"] = _concat([positives, *self._negatives(positives)])
            for reason, count in self.dropped.items():
                if count:
                    log.warning("dropped %d windows: %s", count, reason)
        return self.splits["all"]

    def split_indices(self, windows: Windows) -> dict[str, np.ndarray]:
        """Return {'train', 'val', 'test'} index arrays: by chromosome (default) or at random."""
        hp = self.hparams
        if hp.split == "random":
            test, val, train = group_split_indices(overlap_groups(windows.names),
                                                   [hp.test_fraction, hp.val_fraction,
                                                    1 - hp.test_fraction - hp.val_fraction], hp.seed)
            return {"train": train, "val": val, "test": test}
        if hp.split != "chromosome":
            raise ConfigError(f"unknown split {hp.split!r}; choose chromosome or random")
        unnamed = np.flatnonzero(windows.chromosomes == "")
        if len(unnamed):
            raise DataError(f"record {windows.names[unnamed[0]]!r} is not named 'chrom:start-end', so the "
                            "chromosome split cannot place it: use split: random")
        val = np.isin(windows.chromosomes, self.val_chromosomes)
        test = np.isin(windows.chromosomes, self.test_chromosomes)
        for part, chosen, mask in (("validation", self.val_chromosomes, val), ("test", self.test_chromosomes, test)):
            if not mask.any():
                present = ", ".join(sorted(set(windows.chromosomes))[:25])
                raise DataError(f"no window lies on the {part} chromosomes {chosen}; the data has {present}")
        return {"train": np.flatnonzero(~val & ~test), "val": np.flatnonzero(val), "test": np.flatnonzero(test)}

    def setup(self, stage: str | None = None) -> None:
        """Load the windows and split them (train/val/test), or read predict_fasta for prediction."""
        if stage == "predict":
            self._setup_predict()
            return
        if "train" not in self.splits:
            windows = self.load()
            for part, index in self.split_indices(windows).items():
                self.splits[part] = windows.subset(index)

    def _setup_predict(self) -> None:
        hp = self.hparams
        if not hp.predict_fasta:
            raise ConfigError("predict needs data.predict_fasta: a FASTA file of windows to classify")
        self.predict_ids, self.predict_x = self.read_windows_file(hp.predict_fasta)

    # ---- loaders, labels, augmentation ----------------------------------------------------------
    def train_label_counts(self) -> np.ndarray:
        """Return training label counts: per class (multiclass), [neg, pos] (binary), (k, 2) (multilabel)."""
        labels = self.splits["train"].labels
        if self.task == "multiclass":
            return np.bincount(labels, minlength=len(self.class_names))
        labels = labels.reshape(len(labels), -1)
        positives = labels.sum(0)
        counts = np.stack([len(labels) - positives, positives], axis=1)
        return counts[0] if self.task == "binary" else counts

    def _loader(self, part: str, shuffle: bool = False):
        # uint8 one-hot: a quarter of float32's bytes to gather per batch (on_after_batch_transfer makes it float)
        windows = self.splits[part].tensors(torch.uint8)
        return batch_loader(BatchTensors(*windows), self.hparams.batch_size, shuffle=shuffle)

    def train_dataloader(self):
        """Return training batches (x, y), shuffled; x uint8 one-hot, made float by on_after_batch_transfer."""
        return self._loader("train", shuffle=True)

    def val_dataloader(self):
        """Return validation batches (x, y); x uint8 one-hot, made float by on_after_batch_transfer."""
        return self._loader("val")

    def test_dataloader(self):
        """Return test batches (x, y); x uint8 one-hot, made float by on_after_batch_transfer."""
        return self._loader("test")

    @property
    def predict_source(self) -> str | None:
        """Say what predict runs on (logged with a predict run): predict_fasta."""
        return shown_path(self.hparams.predict_fasta) if self.hparams.predict_fasta else None

    def predict_dataloader(self):
        """Return batches (x,) of predict_fasta, in file order."""
        return batch_loader(BatchTensors(self.predict_x), self.hparams.batch_size)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Make windows float on the device, in the dtype the module takes; augment training batches as configured.

        float32, or the run's autocast dtype for a Classifier whose backbone takes it (Classifier.input_dtype):
        0s and 1s are exact in either. Training batches then get a random shift and reverse complement.
        """
        x, *rest = batch
        x = x.to(input_dtype_of(self.trainer))
        if self.trainer is not None and self.trainer.training:
            x = random_shift(x, self.hparams.shift)
            if self.hparams.reverse_complement:
                x = random_reverse_complement(x)
        return (x, *rest)

    def read_windows_file(self, path: str | Path) -> tuple[list[str], torch.Tensor]:
        """Return (names, one-hot (N, 4, L)) of a FASTA file of windows of this data's length (N -> zeros)."""
        names, sequences = read_fasta(path, self.hparams.index_dir)
        return names, one_hot(self._encode(str(path), sequences, names))
