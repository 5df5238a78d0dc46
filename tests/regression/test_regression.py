"""Regression task: real (tiny) training runs asserting outcomes."""
from __future__ import annotations

import numpy as np
import pytest
import torch
import lightning as L

from common.seeding import seed_everything
from common.summary import count_parameters, summarize
from common.trainer import build_trainer
from regression import DenseRegressor, RegressionData, fit_linear, predict_array
from regression.evaluate import compare_in_range
from regression.experiment import summarize_fit


def quiet_trainer(tmp_path, **kwargs):
    kwargs.setdefault("monitor", "val_mse")
    return build_trainer(default_root_dir=str(tmp_path), enable_progress_bar=False, accelerator="cpu", **kwargs)


def test_course_network_has_12441_parameters_and_small_variant_261():
    assert count_parameters(DenseRegressor()) == 12_441
    assert count_parameters(DenseRegressor(hidden=[10, 20])) == 261
    table = summarize(DenseRegressor(), (1,))
    assert "Total params: 12,441" in table and "(None, 120)" in table


def test_gap_experiment_net_beats_linear_inside_the_gap(tmp_path):
    seed_everything(0)
    data = RegressionData(n_train=5000, n_val=2000, high=200.0, gaps=[[80.0, 120.0]])
    assert not ((data.x_train > 80) & (data.x_train < 120)).any(), "training data must avoid the gap"
    # Validation chooses the epoch, so it avoids the gap too; the gap is scored on its own sample.
    assert not ((data.x_val > 80) & (data.x_val < 120)).any(), "validation must avoid the gap"
    assert len(data.x_gap) == 2000 and ((data.x_gap >= 80) & (data.x_gap <= 120)).all()
    model = DenseRegressor()
    quiet_trainer(tmp_path, max_epochs=6).fit(model, data)
    result = compare_in_range(model, fit_linear(data.x_train, data.y_train), data.x_gap, data.y_gap, 80, 120)
    assert result["n"] == 2000
    assert result["net_mse"] < 0.75 * result["linear_mse"]
    results = summarize_fit(model, data, tmp_path)  # what results.json and the tour report
    assert results["gap_80_120_net_mse"] == result["net_mse"] and results["gap_80_120_n"] == 2000


class RecordPredictions(L.Callback):
    """Keep the model's predictions on fixed inputs after every validation epoch."""

    def __init__(self, x):
        self.x, self.by_epoch = x, {}

    def on_validation_epoch_end(self, trainer, pl_module):
        if not trainer.sanity_checking:
            self.by_epoch[trainer.current_epoch] = predict_array(pl_module, self.x)


def test_best_checkpoint_has_lowest_val_mse_and_reloads_to_same_predictions(tmp_path):
    seed_everything(1)
    data = RegressionData(n_train=200, n_val=100)
    recorder = RecordPredictions(data.x_val)
    trainer = quiet_trainer(tmp_path, max_epochs=8, callbacks=[recorder], log_every_n_steps=1)
    trainer.fit(DenseRegressor(lr=0.01), data)
    checkpoint = trainer.checkpoint_callback
    history = {e: float(np.mean((p - data.y_val) ** 2)) for e, p in recorder.by_epoch.items()}
    best_epoch = min(history, key=history.get)
    assert f"epoch={best_epoch:03d}" in checkpoint.best_model_path
    assert float(checkpoint.best_model_score) == pytest.approx(history[best_epoch], rel=1e-4)
    reloaded = DenseRegressor.load_from_checkpoint(checkpoint.best_model_path, map_location="cpu")
    np.testing.assert_allclose(predict_array(reloaded, data.x_val), recorder.by_epoch[best_epoch], rtol=1e-6)
    assert (tmp_path / "deepbio" / "version_0" / "checkpoints" / "last.ckpt").is_file()


def _train_weights(tmp_path, seed, steps_per_execution=16):
    seed_everything(seed)
    data = RegressionData(n_train=300, n_val=50, seed=seed, steps_per_execution=steps_per_execution)
    model = DenseRegressor()
    trainer = quiet_trainer(tmp_path, max_epochs=2, deterministic=True)
    trainer.fit(model, data)
    assert trainer.global_step == 2 * 10, "one optimiser step per batch of 32 (300 rows: 10 per epoch)"
    return torch.cat([p.detach().flatten() for p in model.parameters()])


def test_same_seed_gives_identical_weights(tmp_path):
    first = _train_weights(tmp_path / "a", 3)
    second = _train_weights(tmp_path / "b", 3)
    other = _train_weights(tmp_path / "c", 4)
    assert torch.equal(first, second)
    assert not torch.equal(first, other)


def test_steps_per_execution_groups_batches_of_32():
    """One loader item holds up to 4 consecutive batches of 32; the last group keeps the remainder."""
    data = RegressionData(n_train=300, n_val=50, steps_per_execution=4)
    groups = list(data.train_dataloader())
    assert [len(g) for g in groups] == [4, 4, 2] and [len(x) for x, _ in groups[-1]] == [32, 12]


@pytest.mark.parametrize("steps_per_execution", [4, 64])
def test_grouped_steps_train_to_identical_weights(tmp_path, steps_per_execution):
    one = _train_weights(tmp_path / "one", 3, steps_per_execution=1)
    assert torch.equal(one, _train_weights(tmp_path / "many", 3, steps_per_execution=steps_per_execution))


class CountBackwardPasses(L.Callback):
    """Count on_before_backward and on_after_backward calls: a callback that listens to the backward passes."""

    def __init__(self):
        self.before = self.after = 0

    def on_before_backward(self, trainer, pl_module, loss):
        self.before += 1

    def on_after_backward(self, trainer, pl_module):
        self.after += 1


def test_backward_hooks_fire_at_every_optimiser_step_and_skipping_them_changes_no_weight(tmp_path, monkeypatch):
    from regression import model as regression_model

    listener = CountBackwardPasses()
    seed_everything(3)
    trainer = quiet_trainer(tmp_path / "hooked", max_epochs=2, deterministic=True, callbacks=[listener])
    assert not regression_model.backward_hooks_unused(trainer)
    hooked = DenseRegressor()
    trainer.fit(hooked, RegressionData(n_train=300, n_val=50, seed=3))
    assert listener.before == listener.after == trainer.global_step == 20  # 16 optimiser steps per Lightning step

    lightning_backward = []
    monkeypatch.setattr(regression_model.DenseRegressor, "manual_backward",
                        lambda self, loss: lightning_backward.append(loss.backward()))
    direct = _train_weights(tmp_path / "direct", 3)  # no callback listens: loss.backward() directly
    assert lightning_backward == []
    assert torch.equal(direct, torch.cat([p.detach().flatten() for p in hooked.parameters()]))


class RecordOptimizerSteps(L.Callback):
    """Record the epoch of every optimiser step a fit takes (one Lightning batch may hold several)."""

    def __init__(self):
        self.epochs, self.handle = [], None

    def on_train_start(self, trainer, pl_module):
        self.handle = trainer.optimizers[0].register_step_post_hook(
            lambda *_: self.epochs.append(trainer.current_epoch))

    def on_train_end(self, trainer, pl_module):
        self.handle.remove()


def test_interrupted_run_resumes_from_last_ckpt_where_it_stopped(tmp_path):
    data = RegressionData(n_train=320, n_val=50)  # 10 optimiser steps an epoch
    seed_everything(0)
    full_steps = RecordOptimizerSteps()
    full_model = DenseRegressor()
    full = quiet_trainer(tmp_path / "full", max_epochs=5, callbacks=[full_steps])
    full.fit(full_model, data)
    seed_everything(0)
    interrupted = quiet_trainer(tmp_path / "resumed", max_epochs=2)
    interrupted.fit(DenseRegressor(), data)
    assert interrupted.global_step == 2 * 10
    torch.manual_seed(123)  # another state than the interrupted fit's: the checkpoint must bring back its own
    resumed_model = DenseRegressor()
    last = tmp_path / "resumed" / "deepbio" / "version_0" / "checkpoints" / "last.ckpt"
    resumed_steps = RecordOptimizerSteps()
    resumed = quiet_trainer(tmp_path / "resumed", max_epochs=5, callbacks=[resumed_steps])
    resumed.fit(resumed_model, data, ckpt_path=str(last))
    assert full_steps.epochs == [epoch for epoch in range(5) for _ in range(10)]
    # Only the 3 epochs left run, numbered on from the checkpoint (starting over would run epochs 0-4).
    assert resumed_steps.epochs == [epoch for epoch in range(2, 5) for _ in range(10)]
    assert resumed.global_step == full.global_step == 5 * 10
    assert resumed.current_epoch == full.current_epoch
    # Weights, Adam's moments and the epoch count all restored: the same weights as never stopping, bit for bit.
    assert torch.equal(torch.cat([p.detach().flatten() for p in resumed_model.parameters()]),
                       torch.cat([p.detach().flatten() for p in full_model.parameters()]))


def test_linear_fit_recovers_a_line_exactly():
    x = np.linspace(0, 10, 50)[:, None]
    fit = fit_linear(x, 3 * x - 2)
    np.testing.assert_allclose(fit.coef, [[3.0]], atol=1e-9)
    np.testing.assert_allclose(fit.intercept, [-2.0], atol=1e-9)


def test_multi_input_multi_output_data_trains(tmp_path):
    seed_everything(0)
    data = RegressionData(function="course_multi", n_inputs=5, n_train=1000, n_val=200, high=10.0)
    assert data.x_train.shape == (1000, 5) and data.y_train.shape == (1000, 3)
    model = DenseRegressor(n_inputs=5, n_outputs=3)
    before = float(np.mean((predict_array(model, data.x_val) - data.y_val) ** 2))
    quiet_trainer(tmp_path, max_epochs=5).fit(model, data)
    after = float(np.mean((predict_array(model, data.x_val) - data.y_val) ** 2))
    assert after < before / 10


class ScheduledRegressor(DenseRegressor):
    """The course net with a halving learning rate, stepped per `interval` (what --lr_scheduler adds)."""

    def __init__(self, interval: str = "epoch", **kwargs):
        super().__init__(**kwargs)
        self.interval = interval

    def configure_optimizers(self):
        optimizer = super().configure_optimizers()
        schedule = torch.optim.lr_scheduler.StepLR(optimizer, step_size=1, gamma=0.5)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": self.interval}}


@pytest.mark.parametrize("interval, expected_steps", [("epoch", 3), ("step", 30)])
def test_learning_rate_schedules_move_although_the_net_steps_its_own_optimiser(tmp_path, interval, expected_steps):
    model = ScheduledRegressor(interval)
    trainer = quiet_trainer(tmp_path, max_epochs=3)
    trainer.fit(model, RegressionData(n_train=300, n_val=50))  # 10 optimiser steps an epoch, 16 per Lightning step
    assert trainer.optimizers[0].param_groups[0]["lr"] == pytest.approx(1e-3 * 0.5 ** expected_steps)


def test_max_steps_counts_optimiser_steps_inside_a_group(tmp_path):
    trainer = quiet_trainer(tmp_path, max_steps=5)
    trainer.fit(DenseRegressor(), RegressionData(n_train=300, n_val=50))  # one Lightning step holds 10
    assert trainer.global_step == 5
