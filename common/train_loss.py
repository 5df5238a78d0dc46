"""The training loss logged at the steps the loggers write and as an epoch mean, without a log call per step."""
from __future__ import annotations

import lightning as L
import torch


class TrainLossLogging(L.LightningModule):
    """LightningModule base whose training_step calls `self.log_train_loss(loss, batch_size)`.

    Lightning's `self.log(on_step=True, on_epoch=True)` moves its result store to the loss's
    device on every call: for a net too small to matter the loop took 0.79 ms a step with it and
    0.58 ms without on a 2-core CPU (benchmarks/results/loop_overhead_cpu.md), and on a GPU the
    loop's CPU time is what limits the course models. Here the loss is summed on its device each
    step (no sync) and logged as `train_loss_step` only where the loggers write, and as
    `train_loss`, the epoch's batch-weighted mean (averaged over GPUs), when the epoch ends.
    Subclasses overriding on_train_batch_end or on_train_epoch_end call super().
    """

    def __init__(self) -> None:
        super().__init__()
        self._loss_sum: torch.Tensor | None = None
        self._loss_rows = 0
        self._last_loss: tuple[torch.Tensor, int] | None = None

    def log_train_loss(self, loss: torch.Tensor, batch_size: int) -> None:
        """Add a batch's loss to the epoch mean; it is logged as train_loss_step where the loggers write."""
        loss = loss.detach()
        self._loss_sum = loss * batch_size if self._loss_sum is None else self._loss_sum + loss * batch_size
        self._loss_rows += batch_size
        self._last_loss = (loss, batch_size)

    def on_train_batch_end(self, outputs, batch, batch_idx: int) -> None:
        """Log the batch's loss as train_loss_step if the loggers write this step (Lightning's own test)."""
        trainer = self._trainer  # None outside a Trainer (a training_step called by hand, Fabric)
        # Private, but it is exactly when Lightning writes: every log_every_n_steps, and at a stop.
        if self._last_loss is not None and trainer is not None and trainer._logger_connector.should_update_logs:
            loss, rows = self._last_loss
            self.log("train_loss_step", loss, on_step=True, on_epoch=False, prog_bar=True, batch_size=rows)
        self._last_loss = None

    def on_train_epoch_end(self) -> None:
        """Log the epoch's mean training loss as train_loss, and start the next epoch's afresh."""
        if self._loss_rows:
            self.log("train_loss", self._loss_sum / self._loss_rows, on_epoch=True, prog_bar=True, sync_dist=True)
        self._loss_sum, self._loss_rows = None, 0
