"""Data helpers shared by the tasks: CSV tables, whole-batch tensor loading and reproducible splits."""
from __future__ import annotations

import csv
import io
from functools import partial
from pathlib import Path
from typing import Sequence

import numpy as np
import torch
from torch.utils.data import BatchSampler, DataLoader, Dataset, RandomSampler, SequentialSampler, get_worker_info

from common.errors import DataError


def read_csv_table(path: Path) -> tuple[list[str] | None, list[tuple[int, dict[str, str | None]]]]:
    """Return a CSV file's column names (None if the file is empty) and (line number, row) pairs; missing fields are None.

    Read as spreadsheet programs write CSV: a leading byte-order mark is dropped, and spaces around
    names and after commas are ignored. Files that are not UTF-8, headers naming a column twice and
    rows with more fields than the header are refused.
    """
    reader = csv.DictReader(io.StringIO(_utf8_text(path), newline=""), skipinitialspace=True)
    if reader.fieldnames is None:
        return None, []
    header = [name.strip() for name in reader.fieldnames]
    # Blank names (a spreadsheet's trailing empty columns) cannot be asked for, so only named columns must be unique.
    repeated = sorted({name for name in header if name and header.count(name) > 1})
    if repeated:
        raise DataError(f"{path}: the header names the column(s) {repeated} more than once, and only one of each "
                        "could be read: give every column its own name")
    reader.fieldnames = header
    rows = []
    # Line numbers from the reader: blank lines are skipped, so counting rows would misname lines after one.
    for row in reader:
        if None in row:  # DictReader files a long row's extra fields under the key None
            raise DataError(f"{path}, line {reader.line_num}: {len(header) + len(row[None])} fields, more than the "
                            f"header's {len(header)}; a decimal comma (1,5 for 1.5) or a separator inside a value "
                            "splits it: use decimal points, or quote values that contain commas")
        rows.append((reader.line_num, row))
    return header, rows


def _utf8_text(path: Path) -> str:
    """Return a file's text decoded as UTF-8 (a leading byte-order mark dropped); other encodings are a DataError."""
    try:
        return Path(path).read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError as error:
        # Offsets are into error.object: the bytes after any byte-order mark.
        line = error.object.count(b"\n", 0, error.start) + 1
        raise DataError(f"{path}, line {line}: not UTF-8 text (byte {error.object[error.start:error.end]!r}, as in "
                        "Latin-1 or UTF-16 files): save the file as UTF-8 (in Excel: Save As, 'CSV UTF-8')") from error


class BatchTensors(Dataset):
    """Tensors indexed together; a batch is fetched with one slice, not per sample.

    DataLoader calls `__getitems__` with the whole list of batch indices, so no Python work is
    done per sample. Consecutive indices (unshuffled loaders: validation, test, prediction) give
    views of the tensors, nothing copied, so batches must not be modified in place. Works with
    Lightning's DistributedSampler under DDP.
    """

    def __init__(self, *tensors: torch.Tensor) -> None:
        lengths = {len(t) for t in tensors}
        if len(lengths) != 1:
            raise ValueError(f"tensors of different lengths {sorted(lengths)} cannot be batched together")
        self.tensors = tensors

    def __len__(self) -> int:
        return len(self.tensors[0])

    def __getitem__(self, index: int) -> tuple[torch.Tensor, ...]:
        return tuple(t[index] for t in self.tensors)

    def __getitems__(self, indices: Sequence[int] | torch.Tensor) -> tuple[torch.Tensor, ...]:
        if isinstance(indices, range) and indices.step == 1:
            return self._rows(indices.start, indices.stop)
        if not isinstance(indices, torch.Tensor):
            if indices and list(indices) == list(range(indices[0], indices[0] + len(indices))):
                return self._rows(indices[0], indices[0] + len(indices))
        index = torch.as_tensor(indices, device=self.tensors[0].device)  # a GPU index for data held there
        return tuple(gather_rows(t, index) for t in self.tensors)

    def _rows(self, start: int, stop: int) -> tuple[torch.Tensor, ...]:
        rows = tuple(t[start:stop] for t in self.tensors)
        # From a DataLoader worker a view would ship its whole storage (the data set) to the main process.
        return rows if get_worker_info() is None else tuple(r.clone() for r in rows)


def gather_rows(t: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """Return the rows `index` of t, whole rows copied at once, in t's own memory layout (channels-fastest stays so).

    index_select copies whole rows; t[index] went element by element (100 uint8 frames: 1.2 ms ->
    0.13 ms). On a permuted view it reads strided and writes the default layout: 1,000 DNA windows
    held channels-fastest took ~2 ms and a copy back; gathered from the dense memory underneath, ~0.05 ms.
    """
    order = sorted(range(1, t.dim()), key=lambda dim: -t.stride(dim))
    dense = t.permute(0, *order)
    if order == sorted(order) or not dense.is_contiguous():
        return t.index_select(0, index)
    return dense.index_select(0, index).permute(0, *(order.index(dim) + 1 for dim in range(1, t.dim())))


def input_dtype_of(trainer) -> torch.dtype:
    """Return the dtype the trainer's module takes inputs in (its `input_dtype()`, as Classifier's), else float32."""
    module = trainer.lightning_module if trainer is not None else None
    return module.input_dtype() if hasattr(module, "input_dtype") else torch.float32


def keep_batch(batch):
    """Collate function for BatchTensors: the batch is already stacked."""
    return batch


class RangeBatchSampler(BatchSampler):
    """BatchSampler handing out whole batches: ranges where its sampler goes in order, index tensors where it shuffles.

    Building a 4,096-entry index list per batch costs ~0.1 ms, as much as a tiny net's forward
    pass on it; a range is free and BatchTensors slices it. A RandomSampler's permutation is cut
    into index tensors: the batches and their order of BatchSampler's lists with the same seed,
    without a Python int per sample (1,000 DNA windows: 0.30 -> 0.15 ms a batch). Other samplers
    (Lightning swaps a distributed one in under DDP) get BatchSampler's lists.
    """

    def __iter__(self):
        if isinstance(self.sampler, SequentialSampler):
            yield from self._cut(range(len(self.sampler)))
        elif (type(self.sampler) is RandomSampler and self.sampler.generator is None and not self.sampler.replacement
              and self.sampler.num_samples == len(self.sampler.data_source)):
            # as RandomSampler draws: a seed from the global generator, then a permutation by a generator of its own
            generator = torch.Generator().manual_seed(int(torch.empty((), dtype=torch.int64).random_().item()))
            yield from self._cut(torch.randperm(len(self.sampler), generator=generator))
        else:
            yield from super().__iter__()

    def _cut(self, order: range | torch.Tensor):
        """Yield consecutive batch_size slices of `order` (the last one shorter unless drop_last)."""
        size = len(order)
        stop = size - size % self.batch_size if self.drop_last else size
        for start in range(0, stop, self.batch_size):
            yield order[start:min(start + self.batch_size, stop)]


def batch_loader(dataset: BatchTensors, batch_size: int, shuffle: bool = False, drop_last: bool = False,
                 num_workers: int = 0) -> DataLoader:
    """Return a DataLoader that fetches each batch of a BatchTensors with one slice."""
    sampler = RandomSampler(dataset) if shuffle else SequentialSampler(dataset)
    return DataLoader(dataset, batch_sampler=RangeBatchSampler(sampler, batch_size, drop_last),
                      collate_fn=keep_batch, num_workers=num_workers)


class StepBatches(list):
    """Consecutive training batches that one Lightning step runs as one optimiser step each (keras' steps_per_execution)."""


def split_into_steps(batch: tuple[torch.Tensor, ...], batch_size: int) -> StepBatches:
    """Collate function: cut one fetched batch of tensors into StepBatches of `batch_size` rows each."""
    return StepBatches(zip(*(t.split(batch_size) for t in batch)))


def step_batches_loader(dataset: BatchTensors, batch_size: int, steps_per_execution: int,
                        shuffle: bool = False) -> DataLoader:
    """Return a DataLoader whose items are StepBatches of up to `steps_per_execution` batches of `batch_size`.

    One slice fetches a whole group and the Lightning loop's per-step cost (hooks, logging,
    progress bar) is paid once per group: for tiny nets such as the course's sqrt net that cost is
    most of the time. The batches and their order are those of `batch_loader` with the same seed.
    """
    return DataLoader(dataset, batch_size=batch_size * steps_per_execution, shuffle=shuffle,
                      collate_fn=partial(split_into_steps, batch_size=batch_size))


def random_split_indices(n: int, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Split range(n) at random into parts of the given fractions (the last part takes the rest)."""
    order = np.random.default_rng(seed).permutation(n)
    cuts = np.cumsum([round(f * n) for f in fractions[:-1]])
    return [np.sort(part) for part in np.split(order, cuts)]


def group_split_indices(groups: Sequence, fractions: Sequence[float], seed: int = 0) -> list[np.ndarray]:
    """Split sample indices so that every group (scene, chromosome...) lands wholly in one part.

    Groups are shuffled and assigned greedily until each part holds about its fraction of samples.
    """
    groups = np.asarray(groups)
    unique, counts = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    targets = np.cumsum(fractions) * len(groups)
    part_of_group = {}
    filled, part = 0, 0
    for g in order:
        while part < len(fractions) - 1 and filled >= targets[part]:
            part += 1
        part_of_group[unique[g]] = part
        filled += counts[g]
    assignment = np.array([part_of_group[g] for g in groups])
    return [np.flatnonzero(assignment == p) for p in range(len(fractions))]
