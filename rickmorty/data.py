"""FrameData: labelled frames (course folders, a folder-per-class tree, a CSV, or synthetic), audited and split by scene."""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path
from typing import Literal

import lightning as L
import numpy as np
import torch
from lightning.pytorch.utilities import rank_zero_warn
from torch.utils.data import DataLoader, Dataset

from common.data import BatchTensors, batch_loader, group_split_indices, input_dtype_of, random_split_indices
from common.devices import available_cpu_cores
from common.errors import ConfigError, DataError
from common.paths import course_data, data_path, shown_path
from rickmorty.audit import SCENE_THRESHOLD, Frames, collapse_duplicates, scene_groups
from rickmorty.augment import augmentation
from rickmorty.images import FRAME_SIZE, as_float, read_folder, read_frame, warn_issues
from rickmorty.sources import COURSE_LAYOUT, LabelledFiles, find_labelled_files, source_class_names
from rickmorty.synthetic import synthetic_frames

Task = Literal["binary", "multilabel", "multiclass"]


def target_tensor(targets: list, task: str) -> torch.Tensor:
    """Return targets as the Classifier wants them: float (N,) binary, float (N, k) multilabel, int64 (N,) multiclass."""
    if task == "multiclass":
        return torch.tensor(targets, dtype=torch.int64)
    return torch.tensor(targets, dtype=torch.float32)


def presence_targets(presence: torch.Tensor, task: str) -> tuple[list, np.ndarray]:
    """Return (targets, kept row indices) for synthetic [rick, morty] presence labels; 'both' is dropped for multiclass."""
    rows = presence.long().tolist()
    if task == "binary":
        return [r[0] for r in rows], np.arange(len(rows))
    if task == "multilabel":
        return [tuple(r) for r in rows], np.arange(len(rows))
    keep = np.array([i for i, r in enumerate(rows) if sum(r) < 2])
    return [0 if rows[i][0] else 1 if rows[i][1] else 2 for i in keep], keep


# Part of every cache key: raise it when decoding or the audit changes what a cache holds (2: palette and
# 16-bit PNGs decoded to their true colours, classes left without frames refused), so old caches are rebuilt.
FRAME_CACHE_VERSION = 2


def file_list_key(files: LabelledFiles, size: tuple[int, int], threshold: float) -> str:
    """Return a hash identifying labelled files (names, sizes, times, targets, those skipped) and the audit settings."""
    stats = [(str(p), stat.st_size, stat.st_mtime_ns) for p, stat in ((p, p.stat()) for p in files.paths)]
    # The skipped files count too: the cached audit reports them, so another list must not reuse it.
    skipped = [(i.path, i.problem) for i in files.skipped]
    text = json.dumps([FRAME_CACHE_VERSION, stats, [str(t) for t in files.targets], skipped, list(size), threshold])
    return hashlib.sha1(text.encode()).hexdigest()[:20]


def cached_frames(files: LabelledFiles, size: tuple[int, int], threshold: float, cache_dir: Path | None) -> Frames:
    """Return the audited distinct frames of labelled files, decoded once and kept in `cache_dir` (if given)."""
    if cache_dir is None:
        return collapse_duplicates(files, size, threshold)
    path = Path(cache_dir).expanduser() / f"frames-{file_list_key(files, size, threshold)}.pt"
    if path.is_file():
        try:
            return torch.load(path, weights_only=False)
        except Exception:  # a damaged cache file is rebuilt, not trusted
            path.unlink(missing_ok=True)
    frames = collapse_duplicates(files, size, threshold)
    path.parent.mkdir(parents=True, exist_ok=True)
    partial = path.with_suffix(f".{os.getpid()}.tmp")
    torch.save(frames, partial)
    partial.replace(path)  # atomic: parallel test workers never read half a file
    return frames


def take_groups(groups: np.ndarray, limit: int, seed: int) -> np.ndarray:
    """Return sorted indices of whole scene groups, picked at random, totalling at most about `limit` frames."""
    unique, counts = np.unique(groups, return_counts=True)
    order = np.random.default_rng(seed).permutation(len(unique))
    chosen = set(unique[order[np.cumsum(counts[order]) <= limit]].tolist())
    return np.flatnonzero([g in chosen for g in groups])


class FrameSamples(Dataset):
    """Frames fetched one at a time (decoded from file, or from the uint8 cache) and augmented, in DataLoader workers."""

    def __init__(self, targets: torch.Tensor, transform, images: torch.Tensor | None = None,
                 paths: list[Path] | None = None, size: tuple[int, int] = FRAME_SIZE) -> None:
        self.targets, self.transform, self.images, self.paths, self.size = targets, transform, images, paths, size

    def __len__(self) -> int:
        return len(self.targets)

    def __getitem__(self, index: int) -> tuple[torch.Tensor, torch.Tensor]:
        if self.images is not None:
            image = self.images[index]
        else:
            image, _ = read_frame(self.paths[index], self.size)
            if image is None:  # the file was readable at setup: it changed while training
                raise DataError(f"{self.paths[index]} can no longer be read; it changed after the audit")
        return self.transform(image), self.targets[index]


class FrameData(L.LightningDataModule):
    """Labelled 160x90 frames for binary (Rick?), multilabel ([rick, morty]) or multiclass (rick/morty/neither).

    data_dir: None for built-in synthetic frames, "course" for the course data (../shared/data or
    $DEEPBIO_DATA), or a folder (course layout, or one folder per class); labels_csv: a CSV of
    path,label instead (paths relative to data_dir if given, else to the CSV's folder). Any path
    here may be "course:<relative>", a path inside the course data. Distinct frames are kept
    (exact copies collapsed, contradictions excluded), grouped into scenes (frames whose grey
    thumbnails correlate above `scene_threshold`, linked transitively), and split by scene
    ("grouped") or at random ("random": the course's way, though the course split the files
    themselves, so byte-identical copies could also land on both sides).
    test_dir: a held-out folder of the same kind; frames sharing a scene with it leave train/val.
    loading: "cache" (all frames decoded once to uint8) or "stream" (decoded from files in workers).
    augment: random shear/rotation/shift/flip/jitter/noise on training frames (either loading).
    predict_dir: a folder of frames to predict.
    """

    predict_id_column = "file"

    def __init__(
        self,
        data_dir: str | None = None,
        task: Task = "binary",
        labels_csv: str | None = None,
        split: Literal["grouped", "random"] = "grouped",
        val_fraction: float = 0.2,
        test_fraction: float = 0.0,
        test_dir: str | None = None,
        loading: Literal["cache", "stream"] = "cache",
        augment: bool = False,
        batch_size: int = 32,
        num_workers: int = 0,
        predict_dir: str | None = None,
        synthetic_count: int = 2000,
        max_frames: int | None = None,
        scene_threshold: float = SCENE_THRESHOLD,
        cache_dir: str | None = "~/.cache/deepbio/rickmorty",
        seed: int = 0,
    ) -> None:
        super().__init__()
        if split not in ("grouped", "random"):
            raise ConfigError(f"unknown split {split!r}; choose grouped or random")
        if not 0 < val_fraction < 1 or not 0 <= test_fraction < 1 or val_fraction + test_fraction >= 1:
            raise ConfigError(f"val_fraction={val_fraction} and test_fraction={test_fraction} must leave training data")
        if loading == "stream" and data_dir is None and labels_csv is None:
            raise ConfigError("loading='stream' reads files: give data_dir or labels_csv (synthetic frames are "
                              "always cached)")
        self.root = self._resolve(data_dir)
        self.task = task
        self.labels_csv = data_path(labels_csv) if labels_csv else None
        self.class_names = source_class_names(self.root, task, self.labels_csv)
        self.split, self.val_fraction, self.test_fraction = split, val_fraction, test_fraction
        self.test_dir = data_path(test_dir) if test_dir else None
        self.loading, self.augment, self.batch_size, self.num_workers = loading, augment, batch_size, num_workers
        self.predict_dir = predict_dir
        self.synthetic_count, self.max_frames, self.seed = synthetic_count, max_frames, seed
        self.scene_threshold = scene_threshold
        self.cache_dir = Path(cache_dir).expanduser() if cache_dir else None
        self.input_shape = (3, *FRAME_SIZE)
        self.frames: Frames | None = None
        self.test_frames: Frames | None = None
        self.parts: dict[str, np.ndarray] = {}
        self.predict_ids: list[str] = []
        self.predict_images: torch.Tensor | None = None

    @staticmethod
    def _resolve(data_dir: str | None) -> Path | None:
        if data_dir is None:
            return None
        if data_dir == "course":
            return course_data("RickandMorty")
        return data_path(data_dir).expanduser()

    @property
    def synthetic(self) -> bool:
        """Whether the frames are the built-in synthetic ones (neither data_dir nor labels_csv given)."""
        return self.root is None and self.labels_csv is None

    @property
    def data_source(self) -> str:
        """Say where the frames come from and how they are split (logged with every run)."""
        source = f"synthetic frames (n={self.synthetic_count}, seed={self.seed})" if self.synthetic else str(
            self.labels_csv or self.root)
        return f"{source}; task {self.task}; {self.split} split; {self.loading} loading"

    @property
    def predict_source(self) -> str | None:
        """Say what predict runs on (logged with a predict run): predict_dir."""
        return shown_path(self.predict_dir) if self.predict_dir else None

    # ---- loading and splitting -------------------------------------------------------------
    def load_frames(self) -> Frames:
        """Return the audited distinct frames of the data source (built once per DataModule)."""
        if self.frames is None:
            self.frames = self._synthetic() if self.synthetic else self._from_files()
            if self.frames.audit is not None:
                print(f"data audit ({self.data_source}):\n{self.frames.audit.summary()}", flush=True)
                warn_issues(self.frames.audit.issues)
        return self.frames

    def _synthetic(self) -> Frames:
        images, presence, masks = synthetic_frames(self.synthetic_count, self.seed)
        targets, keep = presence_targets(presence, self.task)
        names = [f"synthetic_{i:05d}" for i in keep]
        class_names = list(COURSE_LAYOUT[self.task][0])
        return Frames(images[keep], targets, np.arange(len(keep)), names, class_names, masks=masks[keep])

    def _from_files(self) -> Frames:
        files = find_labelled_files(self.root, self.task, self.labels_csv)
        return cached_frames(files, FRAME_SIZE, self.scene_threshold, self.cache_dir)

    def setup(self, stage: str) -> None:
        """Load and split the frames (fit/validate/test) or read the prediction folder (predict)."""
        if stage == "predict":
            self._read_predict_dir()
            return
        if not self.parts:
            self.parts = self.split_indices()
            log_dir = self.trainer.log_dir if self.trainer is not None else None
            if log_dir and self.frames.audit is not None and self.trainer.is_global_zero:
                print(f"data audit saved to {self.frames.audit.save(log_dir)}", flush=True)

    def split_indices(self) -> dict[str, np.ndarray]:
        """Return frame indices per part: train, val, test (grouped by scene unless split='random')."""
        frames = self.load_frames()
        usable = np.arange(len(frames.targets))
        test = np.zeros(0, dtype=np.int64)
        if self.test_dir is not None:
            usable = self._outside_test_scenes(frames)
        if self.max_frames is not None and self.max_frames < len(usable):
            usable = usable[take_groups(frames.groups[usable], self.max_frames, self.seed)]
        fractions = [1 - self.val_fraction - self.test_fraction, self.val_fraction, self.test_fraction]
        if self.split == "grouped":
            parts = group_split_indices(frames.groups[usable], fractions, self.seed)
        else:
            parts = random_split_indices(len(usable), fractions, self.seed)
        train, val, inner_test = (usable[p] for p in parts)
        return {"train": train, "val": val, "test": inner_test if self.test_dir is None else test}

    def _outside_test_scenes(self, frames: Frames) -> np.ndarray:
        """Load test_dir as the test part; return the indices of frames sharing no scene with it."""
        test_frames = cached_frames(find_labelled_files(self.test_dir, self.task), FRAME_SIZE, self.scene_threshold,
                                    self.cache_dir)
        if test_frames.class_names != frames.class_names:
            raise DataError(f"test_dir {self.test_dir} has classes {test_frames.class_names}, the training data "
                            f"{frames.class_names}")
        joint = scene_groups(torch.cat([frames.images, test_frames.images]), self.scene_threshold)
        test_scenes = set(joint[len(frames.targets):].tolist())
        usable = np.flatnonzero([g not in test_scenes for g in joint[:len(frames.targets)]])
        print(f"held-out test folder {self.test_dir}: {len(test_frames.targets)} frames; "
              f"{len(frames.targets) - len(usable)} training frames share a scene with it and are left out", flush=True)
        self.test_frames = test_frames
        return usable

    def split_report(self) -> dict[str, int]:
        """Return the leakage between train and val: shared scene groups and frames in them (0 for a grouped split)."""
        frames, parts = self.load_frames(), self.parts or self.split_indices()
        shared = set(frames.groups[parts["train"]].tolist()) & set(frames.groups[parts["val"]].tolist())
        test = len(self.test_frames.targets) if self.test_frames is not None else len(parts["test"])  # test_dir
        return {"train": len(parts["train"]), "val": len(parts["val"]), "test": test,
                "scene_groups_shared": len(shared),
                "val_frames_in_shared_scenes": int(np.isin(frames.groups[parts["val"]], list(shared)).sum())}

    def _part(self, name: str, with_images: bool = True) -> tuple[torch.Tensor | None, torch.Tensor]:
        """Return a part's uint8 frames (a copy; None unless `with_images`) and its target tensor."""
        if name == "test" and self.test_dir is not None:
            return self.test_frames.images, target_tensor(self.test_frames.targets, self.task)
        index = self.parts[name]
        if len(index) == 0:
            raise ConfigError(f"the {name} part is empty: set data.{name}_fraction (or data.test_dir for test)")
        frames = self.load_frames()
        return (frames.images[index] if with_images else None,
                target_tensor([frames.targets[i] for i in index], self.task))

    def part_frames(self, name: str) -> tuple[torch.Tensor, torch.Tensor, list[str]]:
        """Return a part's frames uint8 (N, 3, H, W), targets and frame names (for galleries and checks)."""
        images, targets = self._part(name)
        if name == "test" and self.test_dir is not None:
            return images, targets, list(self.test_frames.names)
        return images, targets, [self.load_frames().names[i] for i in self.parts[name]]

    def train_label_counts(self) -> torch.Tensor:
        """Return training label counts: (k,) multiclass, [neg, pos] binary, (k, 2) [neg, pos] multilabel."""
        _, targets = self._part("train", with_images=False)
        if self.task == "multiclass":
            return torch.bincount(targets, minlength=len(self.class_names))
        positives = targets.view(len(targets), -1).sum(0)
        return torch.stack([len(targets) - positives, positives], -1).squeeze(0)

    # ---- loaders ---------------------------------------------------------------------------
    def train_dataloader(self) -> DataLoader:
        """Return the training loader: shuffled train frames, sliced per batch, or per sample if streamed/augmented."""
        # Streaming decodes each sample from its file: the cached frames are not copied.
        images, targets = self._part("train", with_images=self.loading == "cache")
        if not self.augment and self.loading == "cache":
            return batch_loader(BatchTensors(images, targets), self.batch_size, shuffle=True)
        transform = augmentation() if self.augment else augmentation(0, 0, 0, False, 0, 0)
        if self.loading == "stream":
            paths = [self.load_frames().paths[i] for i in self.parts["train"]]
            dataset = FrameSamples(targets, transform, paths=paths)
        else:
            dataset = FrameSamples(targets, transform, images=images)
        cores = available_cpu_cores()
        if self.num_workers == 0 and cores > 2:
            rank_zero_warn(f"{'augmentation' if self.augment else 'streaming'} prepares every training frame in the "
                           f"main process; this machine has {cores} cores: data.num_workers 1-{min(cores - 1, 4)} "
                           "would prepare them in parallel")
        return DataLoader(dataset, batch_size=self.batch_size, shuffle=True, num_workers=self.num_workers,
                          persistent_workers=self.num_workers > 0)

    def val_dataloader(self) -> DataLoader:
        """Return the validation loader: the val part's uint8 frames and targets in order, one slice per batch."""
        return batch_loader(BatchTensors(*self._part("val")), self.batch_size)

    def test_dataloader(self) -> DataLoader:
        """Return the test loader: the test part's (or test_dir's) uint8 frames and targets, one slice per batch."""
        return batch_loader(BatchTensors(*self._part("test")), self.batch_size)

    def predict_dataloader(self) -> DataLoader:
        """Return the prediction loader: batches (x,) of predict_dir's uint8 frames, in predict_ids order."""
        return batch_loader(BatchTensors(self.predict_images), self.batch_size)

    def on_after_batch_transfer(self, batch, dataloader_idx: int):
        """Scale uint8 frames to floats in [0, 1] on the device (less data to move), in the dtype the module takes.

        float32, or the run's autocast dtype for a Classifier whose backbone takes it (Classifier.input_dtype).
        """
        x, *rest = batch
        return (as_float(x, input_dtype_of(self.trainer)), *rest)

    def _read_predict_dir(self) -> None:
        if self.predict_dir is None:
            raise ConfigError("predict needs a folder of images: set data.predict_dir")
        self.predict_images, self.predict_ids = read_folder(data_path(self.predict_dir))
