"""Small in-memory data sets held on the GPU for a run, so that no batch is copied from host memory."""
from __future__ import annotations

from typing import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader

from common.data import BatchTensors


def hold_on_device(dataset: BatchTensors, device: torch.device, free_bytes: int,
                   memory_fraction: float = 0.25) -> tuple[torch.Tensor, ...] | None:
    """Move a BatchTensors' tensors to `device` if they fit in `memory_fraction` of `free_bytes`; return the host ones.

    None when they stay where they are: already on the device, or too big (a set larger than a
    quarter of the free memory would crowd out the activations; its batches are copied as usual).
    """
    if all(t.device == device for t in dataset.tensors):
        return None
    if sum(t.nbytes for t in dataset.tensors) > memory_fraction * free_bytes:
        return None
    host = dataset.tensors
    dataset.tensors = tuple(t.to(device) for t in host)
    return host


def free_device_memory(device: torch.device) -> int:
    """Return the bytes free on a CUDA device."""
    return torch.cuda.mem_get_info(device)[0]


def batch_tensor_sets(loaders) -> Iterator[BatchTensors]:
    """Yield the BatchTensors of single-process DataLoaders in a loader, a list or a dict of them."""
    if isinstance(loaders, DataLoader):
        if isinstance(loaders.dataset, BatchTensors) and loaders.num_workers == 0:  # workers cannot share GPU memory
            yield loaders.dataset
    elif isinstance(loaders, dict):
        for loader in loaders.values():
            yield from batch_tensor_sets(loader)
    elif isinstance(loaders, (list, tuple)):
        for loader in loaders:
            yield from batch_tensor_sets(loader)


class HoldDataOnGpu(L.Callback):
    """Keep the run's BatchTensors data sets on its CUDA device while it uses them, and give them back after.

    Batches are then slices on the GPU, not gathered on the host and copied each step (image CNN
    on an H200: 17k instead of 14k frames/s training, 68k instead of 47k predicting; see
    benchmarks/README.md). On other devices, or for data sets that do not fit, nothing changes.
    """

    def __init__(self, memory_fraction: float = 0.25, device_types: tuple[str, ...] = ("cuda",)) -> None:
        self.memory_fraction = memory_fraction
        self.device_types = device_types  # CUDA, where it was measured; MPS is untested
        self.held: list[tuple[BatchTensors, tuple[torch.Tensor, ...]]] = []

    def _hold(self, trainer: L.Trainer, loaders, stage: str) -> None:
        device = trainer.strategy.root_device
        if device.type not in self.device_types:
            return
        moved = 0
        for dataset in batch_tensor_sets(loaders):
            host = hold_on_device(dataset, device, free_device_memory(device), self.memory_fraction)
            if host is not None:
                self.held.append((dataset, host))
                moved += sum(t.nbytes for t in dataset.tensors)
        if moved and trainer.is_global_zero:
            print(f"deepbio run: {stage} data held on {device} ({moved / 1e6:.0f} MB): batches are not copied",
                  flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hold the training data."""
        self._hold(trainer, trainer.train_dataloader, "training")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hold the training data again if the loader is new (reloaded every n epochs)."""
        self._hold(trainer, trainer.train_dataloader, "training")

    def on_validation_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hold the validation data."""
        self._hold(trainer, trainer.val_dataloaders, "validation")

    def on_test_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hold the test data."""
        self._hold(trainer, trainer.test_dataloaders, "test")

    def on_predict_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hold the prediction inputs."""
        self._hold(trainer, trainer.predict_dataloaders, "prediction")

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Give the GPU memory back: the data sets point at their host tensors again."""
        for dataset, host in self.held:
            dataset.tensors = host
        self.held.clear()

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Give the GPU memory back when a run stops on an error, too."""
        self.teardown(trainer, pl_module, "exception")
