"""Small in-memory data sets held on the GPU for a run, so that no batch is copied from host memory."""
from __future__ import annotations

from typing import Iterator

import lightning as L
import torch
from torch.utils.data import DataLoader

from common.data import BatchTensors

# CUDA only: free memory is read from torch.cuda, and holding data on MPS was never measured.
HELD_DEVICE_TYPES = ("cuda",)


def hold_on_device(dataset: BatchTensors, device: torch.device, budget_bytes: float) -> tuple[torch.Tensor, ...] | None:
    """Move a BatchTensors' tensors to `device` if they fit in `budget_bytes`; return the host ones it held before.

    None when they stay where they are: already on the device, or too big for the budget (their
    batches are then copied as usual).
    """
    if all(t.device == device for t in dataset.tensors):
        return None
    if sum(t.nbytes for t in dataset.tensors) > budget_bytes:
        return None
    host = dataset.tensors
    dataset.tensors = tuple(t.to(device) for t in host)
    return host


def free_device_memory(device: torch.device) -> int:
    """Return the bytes free on a CUDA device."""
    return torch.cuda.mem_get_info(device)[0]


def batch_tensor_sets(loaders) -> Iterator[BatchTensors]:
    """Yield the BatchTensors of single-process, unpinned DataLoaders in a loader, a list or a dict of them."""
    if isinstance(loaders, DataLoader):
        # Worker processes cannot share GPU memory, and pinning a batch already on the GPU fails.
        if isinstance(loaders.dataset, BatchTensors) and loaders.num_workers == 0 and not loaders.pin_memory:
            yield loaders.dataset
    elif isinstance(loaders, dict):
        for loader in loaders.values():
            yield from batch_tensor_sets(loader)
    elif isinstance(loaders, (list, tuple)):
        for loader in loaders:
            yield from batch_tensor_sets(loader)


class HoldDataOnGpu(L.Callback):
    """Keep the run's BatchTensors data sets on its CUDA device while it uses them, and release them after.

    Batches are then slices on the GPU, not gathered on the host and copied each step (image CNN
    on an H200: 17k instead of 14k frames/s training, 68k instead of 47k predicting; see
    benchmarks/README.md). All held sets together stay within `memory_fraction` of the GPU
    memory free before them, so activations keep room; a set that does not fit, and every set
    on other devices, is left as it is.
    """

    def __init__(self, memory_fraction: float = 0.25) -> None:
        self.memory_fraction = memory_fraction
        self.held: dict[str, list[tuple[BatchTensors, tuple[torch.Tensor, ...]]]] = {}

    def _hold(self, trainer: L.Trainer, loaders, stage: str) -> None:
        device = trainer.strategy.root_device
        if device.type not in HELD_DEVICE_TYPES:
            return
        current = list(batch_tensor_sets(loaders))
        previous, self.held[stage] = self.held.get(stage, []), []
        for dataset, host in previous:
            if any(dataset is d for d in current):
                self.held[stage].append((dataset, host))
            else:  # a reloaded loader brought new sets: release the old one, or each reload would keep a copy
                dataset.tensors = host
        moved = 0
        for dataset in current:
            held_bytes = sum(t.nbytes for pairs in self.held.values() for d, _ in pairs for t in d.tensors)
            budget = self.memory_fraction * (free_device_memory(device) + held_bytes) - held_bytes
            host = hold_on_device(dataset, device, budget)
            if host is not None:
                self.held[stage].append((dataset, host))
                moved += sum(t.nbytes for t in dataset.tensors)
        if moved and trainer.is_global_zero:
            print(f"deepbio run: {stage} data held on {device} ({moved / 1e6:.0f} MB): batches are not copied",
                  flush=True)

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hold the training data."""
        self._hold(trainer, trainer.train_dataloader, "training")

    def on_train_epoch_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Hold the training data of a loader reloaded for this epoch (reload_dataloaders_every_n_epochs)."""
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
        """Point the data sets at their host tensors again, so PyTorch can reuse the GPU memory they took."""
        for pairs in self.held.values():
            for dataset, host in pairs:
                dataset.tensors = host
        self.held.clear()

    on_exception = teardown  # Lightning calls no teardown hook when a run fails
