"""The training loss: logged where the loggers write and as the epoch's batch-weighted mean, one log call per write."""
from __future__ import annotations

import csv

import lightning as L
import pytest
import torch
from lightning.pytorch.callbacks import ModelCheckpoint
from torch import nn

from common.classifier import Classifier
from common.data import BatchTensors, batch_loader
from common.trainer import build_trainer
from rickmorty.models import DenseBaseline


class LossRecorder(L.Callback):
    """Record every training batch's loss and size, per epoch."""

    def __init__(self) -> None:
        self.epochs: list[list[tuple[float, int]]] = []

    def on_train_epoch_start(self, trainer, pl_module) -> None:
        self.epochs.append([])

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        self.epochs[-1].append((outputs["loss"].item(), len(batch[0])))


def tiny_classifier() -> Classifier:
    """Return a binary Classifier over a Linear(6, 4) + ReLU backbone."""
    backbone = nn.Sequential(nn.Linear(6, 4), nn.ReLU())
    backbone.out_features = 4
    return Classifier(backbone, ["neg", "pos"])


def test_train_loss_is_logged_every_n_steps_and_as_the_epoch_mean(tmp_path, monkeypatch):
    """52 rows in batches of 8 (the last of 4), 2 epochs, log_every_n_steps=3: steps 2, 5, 8, 11 and two means."""
    x = torch.randn(52, 6)
    y = (x[:, 0] > 0).float()
    model = tiny_classifier()
    logged_names = []
    original_log = model.log

    def counting_log(name, *args, **kwargs):
        logged_names.append(name)
        return original_log(name, *args, **kwargs)

    monkeypatch.setattr(model, "log", counting_log)
    recorder = LossRecorder()
    trainer = build_trainer(max_epochs=2, default_root_dir=str(tmp_path), run_name="loss", log_every_n_steps=3,
                            enable_checkpointing=False, enable_progress_bar=False, callbacks=[recorder])
    trainer.fit(model, batch_loader(BatchTensors(x, y), 8))

    assert logged_names.count("train_loss_step") == 4  # one Lightning log call per written step, not per batch
    with open(tmp_path / "loss" / "version_0" / "metrics.csv") as handle:
        rows = list(csv.DictReader(handle))
    losses = [loss for epoch in recorder.epochs for loss, _ in epoch]
    logged = {int(r["step"]): float(r["train_loss_step"]) for r in rows if r.get("train_loss_step")}
    assert list(logged) == [2, 5, 8, 11]
    assert [logged[s] for s in logged] == pytest.approx([losses[s] for s in logged], rel=1e-6)
    means = [sum(loss * n for loss, n in epoch) / sum(n for _, n in epoch) for epoch in recorder.epochs]
    assert [float(r["train_loss"]) for r in rows if r.get("train_loss")] == pytest.approx(means, rel=1e-6)
    assert trainer.callback_metrics["train_loss"].item() == pytest.approx(means[-1], rel=1e-6)


def test_a_run_stopped_mid_epoch_logs_the_loss_of_its_last_step(tmp_path):
    """A callback stopping after the 5th batch (log_every_n_steps=3): Lightning writes step 4, with step 4's loss."""
    x = torch.randn(64, 6)
    y = (x[:, 0] > 0).float()

    class StopAfterFive(LossRecorder):
        def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
            super().on_train_batch_end(trainer, pl_module, outputs, batch, batch_idx)
            trainer.should_stop = batch_idx == 4

    recorder = StopAfterFive()
    trainer = build_trainer(max_epochs=3, default_root_dir=str(tmp_path), run_name="stop", log_every_n_steps=3,
                            enable_checkpointing=False, enable_progress_bar=False, callbacks=[recorder])
    trainer.fit(tiny_classifier(), batch_loader(BatchTensors(x, y), 8))
    with open(tmp_path / "stop" / "version_0" / "metrics.csv") as handle:
        logged = {int(r["step"]): float(r["train_loss_step"]) for r in csv.DictReader(handle) if r.get("train_loss_step")}
    losses = [loss for loss, _ in recorder.epochs[0]]
    assert list(logged) == [2, 4] and [logged[2], logged[4]] == pytest.approx([losses[2], losses[4]], rel=1e-6)


def test_the_loss_accumulates_outside_a_trainer_without_logging():
    """training_step called by hand (research code, no Trainer) returns the loss and does not fail."""
    model = tiny_classifier()
    x, y = torch.randn(8, 6), torch.ones(8)
    loss = model.training_step((x, y), 0)
    model.on_train_batch_end({"loss": loss}, (x, y), 0)
    assert loss.item() == pytest.approx(model.loss(model(x), y).item()) and model._loss_rows == 8


def test_a_checkpoint_can_monitor_the_epoch_training_loss(tmp_path):
    """ModelCheckpoint(monitor="train_loss") beside validation: train_loss is logged at epoch end, the best epoch kept."""
    x = torch.randn(48, 1, 2, 3)
    y = (x[:, 0, 0, 0] > 0).float()
    recorder = LossRecorder()
    best = ModelCheckpoint(monitor="train_loss", mode="min")
    trainer = build_trainer(max_epochs=3, default_root_dir=str(tmp_path), run_name="best", enable_progress_bar=False,
                            callbacks=[recorder, best])
    loader = batch_loader(BatchTensors(x, y), 8)
    trainer.fit(Classifier(DenseBaseline(input_shape=(1, 2, 3), units=(4,)), ["neg", "pos"]), loader, loader)
    means = [sum(loss * n for loss, n in epoch) / sum(n for _, n in epoch) for epoch in recorder.epochs]
    assert best.best_model_score.item() == pytest.approx(min(means), rel=1e-6)
    assert f"epoch={means.index(min(means))}" in best.best_model_path
