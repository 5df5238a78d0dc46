"""DenseRegressor: the course's dense network for y = f(x), trained with MSE and Adam."""
from __future__ import annotations

from typing import Sequence

import lightning as L
import torch
from lightning.pytorch.plugins.precision import Precision
from lightning.pytorch.strategies import SingleDeviceStrategy
from lightning.pytorch.utilities.model_helpers import is_overridden
from torch import nn
from torchmetrics import MeanAbsoluteError, MeanSquaredError, MetricCollection

from common.cpu_linear import DenseStack, OneDnnLinear
from common.data import StepBatches
from common.errors import ConfigError
from common.optim import make_optimizer

ACTIVATIONS = {"relu": nn.ReLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "elu": nn.ELU, "gelu": nn.GELU,
               "softplus": nn.Softplus, "linear": nn.Identity}


def activation_layer(name: str) -> nn.Module:
    """Return a fresh activation layer by its keras name; raise ConfigError for an unknown one."""
    if name not in ACTIVATIONS:
        raise ConfigError(f"unknown activation {name!r}; choose one of {', '.join(ACTIVATIONS)}")
    return ACTIVATIONS[name]()


def dense_stack(n_inputs: int, hidden: list[int], n_outputs: int, activation: str,
                output_activation: str) -> DenseStack:
    """Return Linear+activation layers n_inputs -> hidden... -> n_outputs (keras Dense layers in order)."""
    if any(w <= 0 for w in [n_inputs, n_outputs, *hidden]):
        raise ConfigError(f"layer widths must be positive: inputs {n_inputs}, hidden {hidden}, outputs {n_outputs}")
    layers: list[nn.Module] = []
    widths = [n_inputs, *hidden]
    for width_in, width_out in zip(widths, widths[1:]):
        layers += [OneDnnLinear(width_in, width_out), activation_layer(activation)]
    layers += [OneDnnLinear(widths[-1], n_outputs), activation_layer(output_activation)]
    return DenseStack(*layers)


BACKWARD_HOOKS = ("on_before_backward", "on_after_backward")


def backward_hooks_unused(trainer: L.Trainer) -> bool:
    """Return True where manual_backward would only call loss.backward(): one device, plain fp32, no backward hooks.

    That is Lightning's single-device strategy with its plain precision plugin, and neither the
    module nor a callback overriding on_before_backward / on_after_backward (nor the module's backward).
    """
    module = trainer.lightning_module
    if type(trainer.strategy) is not SingleDeviceStrategy or type(trainer.precision_plugin) is not Precision:
        return False
    if any(is_overridden(hook, module, L.LightningModule) for hook in (*BACKWARD_HOOKS, "backward")):
        return False
    return not any(is_overridden(hook, callback, L.Callback)
                   for callback in trainer.callbacks for hook in BACKWARD_HOOKS)


class DenseRegressor(L.LightningModule):
    """Dense net for regression; course: 1 -> 100 relu -> 120 relu -> 1 linear (12,441 parameters)."""

    def __init__(
        self,
        n_inputs: int = 1,
        n_outputs: int = 1,
        hidden: Sequence[int] = (100, 120),
        activation: str = "relu",
        output_activation: str = "linear",
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        # Manual steps: a training batch may be StepBatches, several optimiser steps in one Lightning step.
        self.automatic_optimization = False
        self.net = dense_stack(n_inputs, list(hidden), n_outputs, activation, output_activation)
        self.val_metrics = MetricCollection({"mse": MeanSquaredError(), "mae": MeanAbsoluteError()}, prefix="val_")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return predictions (N, n_outputs) for inputs (N, n_inputs)."""
        return self.net(x)

    def training_step(self, batch, batch_idx):
        """Take one optimiser step per batch (several for StepBatches); log train_mse averaged over their rows.

        The optimiser steps go through Lightning's optimiser (it counts them); the backward passes
        skip Lightning's wrapper where it would only call hooks that nothing overrides
        (`backward_hooks_unused`): for this tiny net that wrapper took ~13% of a step.
        """
        optimizer = self.optimizers()
        steps = batch if isinstance(batch, StepBatches) else [batch]
        backward = torch.Tensor.backward if backward_hooks_unused(self.trainer) else self.manual_backward
        squared_errors, rows = [], 0
        for x, y in steps:
            if squared_errors and 0 <= self.trainer.max_steps <= self.trainer.global_step:
                break  # max_steps counts optimiser steps, also inside a group
            loss = nn.functional.mse_loss(self(x).float(), y)
            optimizer.zero_grad()
            backward(loss)
            optimizer.step()
            self.step_lr_schedules("step")
            squared_errors.append(loss.detach() * len(x))
            rows += len(x)
        self.log("train_mse", torch.stack(squared_errors).sum() / rows, on_step=False, on_epoch=True, prog_bar=True,
                 batch_size=rows)

    def on_train_epoch_end(self) -> None:
        """Step the per-epoch learning-rate schedules."""
        self.step_lr_schedules("epoch")

    def step_lr_schedules(self, interval: str) -> None:
        """Step the schedules of this interval ('step' or 'epoch'): Lightning leaves that to manual optimisation.

        Without it a schedule given by configure_optimizers or the CLI's --lr_scheduler never moved.
        """
        done = self.trainer.global_step if interval == "step" else self.trainer.current_epoch + 1
        for config in self.trainer.lr_scheduler_configs:
            if config.interval != interval or done % config.frequency:
                continue
            if config.reduce_on_plateau:
                metric = self.trainer.callback_metrics.get(config.monitor)
                if metric is None:
                    raise ConfigError(f"the learning-rate schedule watches {config.monitor!r}, which this run does "
                                      f"not log; choose one of {', '.join(self.trainer.callback_metrics)}")
                config.scheduler.step(metric)
            else:
                config.scheduler.step()

    def validation_step(self, batch, batch_idx):
        """Log the batch's val_loss (MSE) and feed its predictions to the val_mse/val_mae metrics."""
        x, y = batch
        prediction = self(x).float()
        self.log("val_loss", nn.functional.mse_loss(prediction, y), prog_bar=True, batch_size=len(x),
                 sync_dist=True)
        self.val_metrics.update(prediction, y)

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's val_mse and val_mae, then reset them for the next epoch."""
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()

    def predict_step(self, batch, batch_idx):
        """Return predictions (N, n_outputs) for the batch's inputs (N, n_inputs)."""
        return self(batch[0])

    def configure_optimizers(self):
        """Return the configured optimiser (optimizer, lr, weight_decay) over all parameters; no schedule."""
        return make_optimizer(self.parameters(), self.hparams.optimizer, self.hparams.lr, self.hparams.weight_decay)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Raise ConfigError when the checkpoint's net has other input/output counts than this run's data."""
        saved = checkpoint.get("hyper_parameters", {})
        shapes = {key: (saved.get(key, 1), self.hparams[key]) for key in ("n_inputs", "n_outputs")}
        if any(trained != built for trained, built in shapes.values()):
            # Otherwise a layer shape mismatch surfaces as a size error deep in load_state_dict.
            raise ConfigError(f"the checkpoint's net has {shapes['n_inputs'][0]} input(s) and {shapes['n_outputs'][0]} "
                              f"output(s), but this run's data gives {shapes['n_inputs'][1]} and "
                              f"{shapes['n_outputs'][1]}: run it with the data config it was trained with "
                              "(config.yaml in its run folder)")
