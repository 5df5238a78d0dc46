"""The generic classifier: every label mode learns on toy data, class weights work, checkpoints rebuild."""
from __future__ import annotations

import logging
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch
from torch import nn

from common.callbacks import write_predictions_csv
from common.checkpoints import remember_init_args
from common.classifier import Classifier, balanced_weights, load_classifier
from common.data import BatchTensors, batch_loader
from common.errors import ConfigError, DataError
from common.optim import with_lr_schedule
from common.seeding import seed_everything
from common.trainer import build_trainer


@remember_init_args
class TinyBackbone(nn.Module):
    """Two-layer feature extractor for 8 inputs."""

    def __init__(self, n_inputs: int = 8, width: int = 32):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(n_inputs, width), nn.ReLU())
        self.out_features = width

    def forward(self, x):
        return self.net(x)


class OtherBackbone(TinyBackbone):
    """Another backbone class, as another config would build."""


class ToyData(L.LightningDataModule):
    """Labels that depend on the first two inputs."""

    data_source = "toy"

    def __init__(self, task: str, n: int = 1024):
        super().__init__()
        x = torch.randn(n, 8, generator=torch.Generator().manual_seed(0))
        if task == "binary":
            y = (x[:, 0] + x[:, 1] > 0).float()
        elif task == "multiclass":
            y = (x[:, 0] > 0).long() + (x[:, 1] > 0.5).long()
        else:
            y = torch.stack([x[:, 0] > 0, x[:, 1] > 0], 1).float()
        self.x, self.y, self.task = x, y, task

    def train_label_counts(self):
        if self.task == "multiclass":
            return torch.bincount(self.y, minlength=3)
        y = self.y.view(len(self.y), -1)
        return torch.stack([(y == 0).sum(0), (y == 1).sum(0)], 1)

    def train_dataloader(self):
        return batch_loader(BatchTensors(self.x[:768], self.y[:768]), 64, shuffle=True)

    def val_dataloader(self):
        return batch_loader(BatchTensors(self.x[768:], self.y[768:]), 256)


class ClassSortedValData(ToyData):
    """ToyData whose validation rows come sorted by class, as splits that keep file order do."""

    def val_dataloader(self):
        order = torch.argsort(self.y[768:], stable=True)
        return batch_loader(BatchTensors(self.x[768:][order], self.y[768:][order]), 32)


CASES = {"binary": ["negative", "positive"], "multiclass": ["low", "mid", "high"], "multilabel": ["a", "b"]}


@pytest.mark.parametrize("task", list(CASES))
def test_each_task_learns_and_its_best_checkpoint_rebuilds(task, tmp_path):
    seed_everything(0)
    model = Classifier(TinyBackbone(), CASES[task], task=task, lr=0.01,
                       class_weights="balanced" if task == "multiclass" else None)
    trainer = build_trainer(max_epochs=6, default_root_dir=str(tmp_path), monitor="val_acc", mode="max",
                            enable_progress_bar=False)
    trainer.fit(model, ToyData(task))
    assert float(trainer.callback_metrics["val_acc"]) > 0.8  # chance is at most 0.5
    assert float(trainer.callback_metrics["val_auroc"]) > 0.9
    assert "val_bal_acc" in trainer.callback_metrics
    rebuilt = load_classifier(trainer.checkpoint_callback.best_model_path)
    best = Classifier.load_from_checkpoint(trainer.checkpoint_callback.best_model_path,
                                           backbone=TinyBackbone(), map_location="cpu").eval()
    x = torch.randn(5, 8)
    torch.testing.assert_close(rebuilt(x), best(x))
    probs = rebuilt.probabilities(rebuilt(x))
    assert len(rebuilt.hard_labels(probs)) == 5
    if task == "multiclass":
        torch.testing.assert_close(probs.sum(-1), torch.ones(5))


@remember_init_args
class DropoutBackbone(TinyBackbone):
    """TinyBackbone with dropout: its masks, like the shuffling, come from torch's global generator."""

    def __init__(self, n_inputs: int = 8, width: int = 32):
        super().__init__(n_inputs, width)
        self.net.append(nn.Dropout(0.5))


def test_a_fit_resumed_from_last_checkpoint_ends_where_an_unbroken_one_does(tmp_path):
    def fit(folder, epochs, ckpt_path=None):
        model = Classifier(DropoutBackbone(), CASES["binary"], lr=0.01)
        trainer = build_trainer(max_epochs=epochs, default_root_dir=str(tmp_path / folder), enable_progress_bar=False,
                                logger=False)
        trainer.fit(model, ToyData("binary"), ckpt_path=ckpt_path)
        return torch.cat([p.detach().flatten() for p in model.parameters()])

    seed_everything(0)
    unbroken = fit("unbroken", 4)
    seed_everything(0)
    fit("stopped", 2)
    torch.manual_seed(123)  # the resumed process starts elsewhere: the checkpoint brings back the generators' state
    resumed = fit("stopped", 4, ckpt_path=str(tmp_path / "stopped" / "checkpoints" / "last.ckpt"))
    assert torch.equal(resumed, unbroken)


class ScriptedValLoss(L.LightningModule):
    """A module whose val_loss per epoch is given: 3, 1, 2, 4, 0.5 (best at epoch 1 until epoch 4)."""

    SCRIPT = (3.0, 1.0, 2.0, 4.0, 0.5)

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(1))

    def training_step(self, batch, batch_idx):
        return (self.weight * batch[0]).pow(2).mean()

    def validation_step(self, batch, batch_idx):
        self.log("val_loss", self.SCRIPT[self.current_epoch])

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.01)


def test_a_fit_resumed_into_a_new_run_folder_keeps_the_best_model_so_far(tmp_path):
    loader = batch_loader(BatchTensors(torch.rand(4, 1)), 2)

    def fit(epochs, ckpt_path=None):
        trainer = build_trainer(max_epochs=epochs, default_root_dir=str(tmp_path), run_name="scripted",
                                enable_progress_bar=False)
        trainer.fit(ScriptedValLoss(), loader, loader, ckpt_path=ckpt_path)
        return trainer.checkpoint_callback

    first = fit(2)
    assert "epoch=001" in first.best_model_path and "version_0" in first.best_model_path
    resumed = fit(4, ckpt_path=first.last_model_path)  # writes into version_1
    assert "version_1" in resumed.last_model_path
    # Epochs 2 and 3 (val_loss 2 and 4) are worse than epoch 1's 1: the best stays epoch 1's file.
    assert resumed.best_model_path == first.best_model_path and float(resumed.best_model_score) == 1.0
    better = fit(5, ckpt_path=resumed.last_model_path)  # epoch 4 beats it: the new best is in version_2
    assert "version_2" in better.best_model_path and "epoch=004" in better.best_model_path
    assert Path(first.best_model_path).is_file()  # the earlier run's folder is left as it was


class RecordLog(logging.Handler):
    """Keep the messages of the log records handled."""

    def __init__(self):
        super().__init__()
        self.messages = []

    def emit(self, record):
        self.messages.append(record.getMessage())


def test_a_fit_logs_nothing_a_user_cannot_act_on(tmp_path):
    model = Classifier(TinyBackbone(), CASES["multiclass"], task="multiclass")
    lightning_log, records = logging.getLogger("lightning.pytorch"), RecordLog()
    lightning_log.addHandler(records)
    try:
        with warnings.catch_warnings(record=True) as caught:
            trainer = build_trainer(max_epochs=1, default_root_dir=str(tmp_path), enable_progress_bar=False)
            trainer.fit(model, ClassSortedValData("multiclass"))
    finally:
        lightning_log.removeHandler(records)
    messages = [str(w.message) for w in caught]
    # The sanity check's two batches hold one class; Lightning's helper builds torch's deprecated LeafSpec.
    assert not [m for m in messages if "No positive samples" in m or "LeafSpec" in m], messages
    assert any("GPU available" in m for m in records.messages)  # Lightning's run log is kept...
    assert not [m for m in records.messages if "Tip" in m], records.messages  # ...without its advertisements
    assert int(model.last_metrics["val_confusion"].sum()) == 256  # the epoch's scores: every row, once


def test_a_checkpoint_of_another_task_is_refused_naming_both(tmp_path):
    trainer = build_trainer(max_epochs=1, default_root_dir=str(tmp_path), enable_progress_bar=False, logger=False)
    trainer.fit(Classifier(TinyBackbone(), CASES["binary"], task="binary"), ToyData("binary"))
    other = Classifier(TinyBackbone(), CASES["multiclass"], task="multiclass")
    frames = batch_loader(BatchTensors(torch.randn(4, 8)), 4)
    predictor = build_trainer(default_root_dir=str(tmp_path), logger=False, enable_progress_bar=False)
    with pytest.raises(ConfigError, match=r"trained for a binary task with classes \['negative', 'positive'\], but "
                                          r"this run builds multiclass with \['low', 'mid', 'high'\]"):
        predictor.predict(other, frames, ckpt_path=trainer.checkpoint_callback.last_model_path)
    with pytest.raises(ConfigError, match=r"holds a .*TinyBackbone backbone, but this run builds a .*OtherBackbone"):
        predictor.predict(Classifier(OtherBackbone(), CASES["binary"]), frames,
                          ckpt_path=trainer.checkpoint_callback.last_model_path)
    with pytest.raises(ConfigError, match=r"trained with other settings \(width: trained 32, this run 16\)"):
        predictor.predict(Classifier(TinyBackbone(width=16), CASES["binary"]), frames,
                          ckpt_path=trainer.checkpoint_callback.last_model_path)


def test_balanced_class_weights_without_a_deepbio_datamodule_say_what_to_do(tmp_path):
    model = Classifier(TinyBackbone(), CASES["multiclass"], task="multiclass", class_weights="balanced")
    loader = batch_loader(BatchTensors(torch.randn(8, 8), torch.randint(0, 3, (8,))), 4)
    trainer = build_trainer(max_epochs=1, default_root_dir=str(tmp_path), enable_progress_bar=False, logger=False)
    with pytest.raises(ConfigError, match="'balanced' counts the training labels of a deepbio DataModule"):
        trainer.fit(model, loader)


class UndecoratedBackbone(nn.Module):
    """A user's backbone without @remember_init_args; counts its forward passes."""

    def __init__(self):
        super().__init__()
        self.net, self.out_features, self.calls = nn.Linear(8, 4), 4, 0

    def forward(self, x):
        self.calls += 1
        return self.net(x)


def test_backbones_checkpoints_cannot_rebuild_are_refused_before_training(tmp_path):
    backbone = UndecoratedBackbone()
    trainer = build_trainer(max_epochs=1, default_root_dir=str(tmp_path), enable_progress_bar=False)
    with pytest.raises(ConfigError, match="UndecoratedBackbone does not remember its arguments.*@remember_init_args"):
        trainer.fit(Classifier(backbone, CASES["binary"]), ToyData("binary"))
    assert backbone.calls == 0  # before the sanity check, not at the first save an epoch later


def test_checkpoints_load_classifier_cannot_use_say_why(tmp_path):
    model = Classifier(TinyBackbone(), CASES["binary"])
    spec = {"class_path": "__main__.TrainingScriptBackbone", "init_args": {}}
    torch.save({"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams), "backbone_spec": spec},
               tmp_path / "script.ckpt")
    with pytest.raises(DataError, match=r"__main__\.TrainingScriptBackbone cannot be imported here.*not in the "
                                        "training script"):
        load_classifier(tmp_path / "script.ckpt")
    torch.save({"state_dict": {}, "hyper_parameters": {"hidden": [4]}}, tmp_path / "regression.ckpt")
    with pytest.raises(DataError, match="not a classifier's checkpoint"):
        load_classifier(tmp_path / "regression.ckpt")


class RecordLearningRate(L.Callback):
    """Record the optimiser's learning rate before every training batch."""

    def __init__(self):
        self.rates = []

    def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
        self.rates.append(trainer.optimizers[0].param_groups[0]["lr"])


def test_one_cycle_schedule_warms_up_then_anneals_and_learns(tmp_path):
    seed_everything(0)
    model = Classifier(TinyBackbone(), CASES["binary"], lr=0.02, lr_schedule="one_cycle")
    rates = RecordLearningRate()
    trainer = build_trainer(max_epochs=4, default_root_dir=str(tmp_path), enable_progress_bar=False,
                            callbacks=[rates])
    trainer.fit(model, ToyData("binary"))
    peak = rates.rates.index(max(rates.rates))
    assert len(rates.rates) == 4 * 12 and 0.1 < peak / len(rates.rates) < 0.3  # warm-up: the first fifth
    assert max(rates.rates) == pytest.approx(0.02, rel=0.01) and rates.rates[0] < 0.002 and rates.rates[-1] < 0.001
    assert float(trainer.callback_metrics["val_acc"]) > 0.8
    with pytest.raises(ConfigError, match="unknown lr_schedule"):
        Classifier(TinyBackbone(), CASES["binary"], lr_schedule="cosine")


@pytest.mark.parametrize("steps", [1, 2, 5, 10])
def test_one_cycle_schedule_runs_however_few_the_steps(steps):
    parameter = torch.nn.Parameter(torch.ones(1))
    optimizer = torch.optim.SGD([parameter], lr=0.1)
    scheduler = with_lr_schedule(optimizer, "one_cycle", steps)["lr_scheduler"]["scheduler"]
    for _ in range(steps - 1):  # 5 steps at the default fifth of warm-up divided by zero
        optimizer.step()
        scheduler.step()
    assert optimizer.param_groups[0]["lr"] < 0.1 / 25 or steps == 1


def test_balanced_weights_upweight_the_rare_class():
    weights = balanced_weights("multiclass", torch.tensor([90.0, 10.0]))
    assert weights[1] / weights[0] == pytest.approx(9.0)
    assert balanced_weights("binary", torch.tensor([80.0, 20.0])).tolist() == [4.0]


def test_bad_settings_are_clear_errors(tmp_path):
    with pytest.raises(ConfigError, match="unknown task"):
        Classifier(TinyBackbone(), ["a", "b"], task="regression")
    with pytest.raises(ConfigError, match="binary task needs two class names"):
        Classifier(TinyBackbone(), ["a", "b", "c"], task="binary")
    with pytest.raises(ConfigError, match="class_weights has 2 values for 3 classes"):
        Classifier(TinyBackbone(), ["a", "b", "c"], task="multiclass", class_weights=[1.0, 2.0])
    with pytest.raises(DataError, match="does not exist"):
        load_classifier(tmp_path / "missing.ckpt")
    (tmp_path / "broken.ckpt").write_bytes(b"not a checkpoint")
    with pytest.raises(DataError, match="could not be read"):
        load_classifier(tmp_path / "broken.ckpt")


def test_predictions_csv_columns(tmp_path):
    model = Classifier(TinyBackbone(), ["not_rick", "rick"], task="binary")
    probs = torch.tensor([[0.9], [0.2]])
    path = write_predictions_csv(tmp_path / "predictions.csv", "file", ["a.jpg", "b.jpg"], model.output_names,
                                 probs, model.hard_labels(probs))
    assert path.read_text().splitlines() == ["file,prob_rick,label", "a.jpg,0.900000,rick",
                                             "b.jpg,0.200000,not_rick"]


class MissingFileData(L.LightningDataModule):
    """A datamodule whose data file is missing: setup fails as a user's typo in a path would."""

    def setup(self, stage):
        raise DataError("peaks.fa does not exist")


def test_a_run_that_fails_before_writing_results_leaves_no_run_folder(tmp_path):
    """Lightning makes the folder before the data is read; left there, the next run would be version_1."""
    trainer = build_trainer(max_epochs=1, default_root_dir=str(tmp_path), run_name="typo", enable_progress_bar=False)
    with pytest.raises(DataError, match="peaks.fa does not exist"):
        trainer.fit(Classifier(TinyBackbone(), CASES["binary"]), MissingFileData())
    assert not (tmp_path / "typo" / "version_0").exists()
    trainer = build_trainer(max_epochs=1, default_root_dir=str(tmp_path), run_name="typo", enable_progress_bar=False)
    trainer.fit(Classifier(TinyBackbone(), CASES["binary"]), ToyData("binary"))
    assert (tmp_path / "typo" / "version_0" / "metrics.csv").is_file()  # the next run takes version_0
