"""The training loss logged at the steps the loggers write and as an epoch mean, without a log call per step."""
from __future__ import annotations

import lightning as L
import torch


class TrainLossLogging(L.LightningModule):
    """LightningModule base whose training_step calls `self.log_train_loss(loss, batch_size)`.

    Lightning's `self.log(on_step=True, on_epoch=True)` moves its result store to the loss's
    device on every call: ~0.3 ms of the loop's ~0.6 ms per step on a 2-core CPU, and on a GPU
    the loop's CPU time is what limits the course models (benchmarks/README.md). Here the loss
    is summed on its device each step (no sync) and logged as `train_loss_step` only where the
    loggers write (every `log_every_n_steps`), and as `train_loss`, the epoch's batch-weighted
    mean (averaged over GPUs), when the epoch ends.
    """

    def __init__(self) -> None:
        super().__init__()
        self._loss_sum: torch.Tensor | None = None
        self._loss_rows = 0

    def log_train_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """Add a batch's loss to the epoch mean; log it as train_loss_step on the steps the loggers write."""
        weighted = loss.detach() * batch_size
        self._loss_sum = weighted if self._loss_sum is None else self._loss_sum + weighted
        self._loss_rows += batch_size
        every = self.trainer.log_every_n_steps
        if every and (self.global_step + 1) % every == 0:
            self.log("train_loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=batch_size)

    def on_train_epoch_start(self) -> None:
        """Start the epoch's loss mean afresh."""
        self._loss_sum, self._loss_rows = None, 0

    def on_train_epoch_end(self) -> None:
        """Log the epoch's mean training loss as train_loss."""
        if self._loss_rows:
            self.log("train_loss", self._loss_sum / self._loss_rows, on_epoch=True, prog_bar=True, sync_dist=True)
