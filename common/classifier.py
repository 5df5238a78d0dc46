"""The one generic classifier LightningModule: binary, multi-label or multi-class, on any backbone."""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MetricCollection
from torchmetrics import classification as tm

from common.checkpoints import (accepted_hparams, build_from_spec, class_path, differing_args, module_spec,
                                read_checkpoint)
from common.cpu_linear import OneDnnLinear
from common.devices import AUTOCAST_DTYPES
from common.errors import ConfigError, DataError
from common.memory_format import channels_last, convolutions_to_channels_last
from common.optim import check_lr_schedule, make_optimizer, with_lr_schedule
from common.train_loss import TrainLossLogging

Task = Literal["binary", "multilabel", "multiclass"]


def output_count(task: str, n_classes: int) -> int:
    """Return how many logits a task needs: 1 for binary, one per class otherwise."""
    if task not in ("binary", "multilabel", "multiclass"):
        raise ConfigError(f"unknown task {task!r}; choose binary, multilabel or multiclass")
    return 1 if task == "binary" else n_classes


def classification_metrics(task: str, n: int) -> MetricCollection:
    """Return torchmetrics for a task: accuracy, balanced-accuracy parts, F1, AUROC and per-class recall."""
    if task == "binary":
        return MetricCollection({"acc": tm.BinaryAccuracy(), "recall": tm.BinaryRecall(),
                                 "specificity": tm.BinarySpecificity(), "f1": tm.BinaryF1Score(),
                                 "auroc": tm.BinaryAUROC(), "confusion": tm.BinaryConfusionMatrix()})
    if task == "multilabel":
        return MetricCollection({"acc": tm.MultilabelAccuracy(n), "recall": tm.MultilabelRecall(n),
                                 "specificity": tm.MultilabelSpecificity(n), "f1": tm.MultilabelF1Score(n),
                                 "auroc": tm.MultilabelAUROC(n),
                                 "class_acc": tm.MultilabelAccuracy(n, average=None),
                                 "confusion": tm.MultilabelConfusionMatrix(n)})
    return MetricCollection({"acc": tm.MulticlassAccuracy(n, average="micro"),
                             "bal_acc": tm.MulticlassAccuracy(n, average="macro"),
                             "f1": tm.MulticlassF1Score(n, average="macro"), "auroc": tm.MulticlassAUROC(n),
                             "class_recall": tm.MulticlassRecall(n, average=None),
                             "confusion": tm.MulticlassConfusionMatrix(n)})


def update_metrics(metrics: MetricCollection, task: str, probs: torch.Tensor, y: torch.Tensor) -> None:
    """Feed probabilities (N, outputs) and labels in the task's shape to metrics from `classification_metrics`."""
    target = y.long()
    if task == "binary":
        metrics.update(probs[:, 0], target.view(-1))
    else:
        metrics.update(probs, target)


def compute_scores(metrics: MetricCollection) -> dict[str, torch.Tensor]:
    """Compute and reset `metrics`; binary and multilabel also get balanced accuracy (mean of sensitivity and specificity)."""
    values = metrics.compute()
    metrics.reset()
    if "recall" in values:
        values["bal_acc"] = (values["recall"] + values["specificity"]) / 2
    return values


class Classifier(TrainLossLogging):
    """A backbone (features) plus a linear head, trained for binary, multi-label or multi-class labels.

    Batches are (x, y): y is float (N,) for binary, float (N, k) for multilabel, int64 (N,) for
    multiclass. `backbone` must expose `out_features` (the head maps those to the task's logits) and,
    for runs that save checkpoints, be of a class decorated with @remember_init_args to be rebuilt.
    class_weights: None, "balanced" (from the training labels) or one weight per class.
    channels_last: keep convolution inputs and weights channels-fastest (2D: NHWC; 1D: NLC), which
    oneDNN runs faster on CPU, most with bf16 (see benchmarks/README.md).
    lr_schedule: "constant" (the course's) or "one_cycle" (warm-up, then cosine decay to ~0 per step).
    """

    def __init__(
        self,
        backbone: nn.Module,
        class_names: list[str],
        task: Task = "binary",
        class_weights: list[float] | Literal["balanced"] | None = None,
        optimizer: Literal["adam", "adamw", "sgd", "rmsprop"] = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        momentum: float = 0.9,
        channels_last: bool = False,
        lr_schedule: Literal["constant", "one_cycle"] = "constant",
    ) -> None:
        super().__init__()
        self.save_hyperparameters(ignore=["backbone"])
        if task == "binary" and len(class_names) != 2:
            raise ConfigError(f"a binary task needs two class names (negative, positive), got {class_names}")
        self.n_outputs = output_count(task, len(class_names))
        check_lr_schedule(lr_schedule)
        if isinstance(class_weights, list) and len(class_weights) != len(class_names):
            raise ConfigError(f"class_weights has {len(class_weights)} values for {len(class_names)} classes")
        self.backbone = backbone
        self.head = OneDnnLinear(backbone.out_features, self.n_outputs)
        self.task = task
        self.class_names = list(class_names)
        self.channels_last = channels_last
        self.register_buffer("loss_weights", self._fixed_loss_weights(class_weights), persistent=True)
        n_metric_classes = 2 if task == "binary" else len(class_names)
        self.val_metrics = classification_metrics(task, n_metric_classes)
        self.test_metrics = classification_metrics(task, n_metric_classes)
        self.last_metrics: dict[str, torch.Tensor] = {}

    @property
    def output_names(self) -> list[str]:
        """Names of the model's outputs: the positive class for binary, every class otherwise."""
        return self.class_names[1:] if self.task == "binary" else self.class_names

    def _fixed_loss_weights(self, class_weights) -> torch.Tensor:
        if class_weights is None or class_weights == "balanced":
            return torch.ones(0)
        weights = torch.tensor(class_weights, dtype=torch.float32)
        # Binary BCE weighs the positive class relative to the negative one.
        return weights[1:] / weights[0] if self.task == "binary" else weights

    def setup(self, stage: str) -> None:
        """Derive 'balanced' class weights from the datamodule's training labels."""
        if self.hparams.class_weights == "balanced" and stage == "fit" and self.loss_weights.numel() == 0:
            datamodule = self.trainer.datamodule
            if not hasattr(datamodule, "train_label_counts"):
                raise ConfigError("class_weights 'balanced' counts the training labels of a deepbio DataModule "
                                  "(FrameData, MotifData): fit with one, or give the weights as a list per class")
            counts = torch.as_tensor(datamodule.train_label_counts(), dtype=torch.float32)
            self.loss_weights = balanced_weights(self.task, counts).to(self.device)
        if self.channels_last:
            convolutions_to_channels_last(self)

    def input_dtype(self) -> torch.dtype:
        """Return the dtype inputs may arrive in: the run's autocast dtype where the backbone takes it, else float32.

        A backbone with `takes_autocast_input` reads its input only through layers that autocast
        casts to that dtype: inputs given in it (uint8 frames scaled straight to bf16) give the same
        outputs bit for bit, with half the bytes to write and no float32 copy to cast (dense
        baseline on a 2-core Zen 5 EPYC, bf16: 0.76x the prediction time a batch, 0.93x the training time).
        """
        dtype = AUTOCAST_DTYPES.get(str(self._trainer.precision)) if self._trainer is not None else None
        return dtype if dtype is not None and getattr(self.backbone, "takes_autocast_input", False) else torch.float32

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return logits, shape (N, n_outputs)."""
        if self.channels_last:
            x = channels_last(x)
        return self.head(self.backbone(x))

    def probabilities(self, logits: torch.Tensor) -> torch.Tensor:
        """Return probabilities: sigmoid per output (binary, multilabel) or softmax (multiclass)."""
        logits = logits.float()
        return logits.softmax(-1) if self.task == "multiclass" else logits.sigmoid()

    def loss(self, logits: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """Return the task's loss: BCE-with-logits (binary, multilabel) or cross-entropy (multiclass)."""
        logits = logits.float()
        weights = self.loss_weights if self.loss_weights.numel() else None
        if self.task == "multiclass":
            return F.cross_entropy(logits, y, weight=weights)
        return F.binary_cross_entropy_with_logits(logits, y.float().view_as(logits), pos_weight=weights)

    def hard_labels(self, probs: torch.Tensor) -> list[str]:
        """Return a class name per row; multilabel rows join present labels with '+' ('none' if empty)."""
        if self.task == "multiclass":
            return [self.class_names[i] for i in probs.argmax(-1).tolist()]
        if self.task == "binary":
            return [self.class_names[int(p >= 0.5)] for p in probs[:, 0].tolist()]
        return ["+".join(n for n, p in zip(self.class_names, row) if p >= 0.5) or "none" for row in probs.tolist()]

    def training_step(self, batch, batch_idx):
        """Return the batch's task loss (class-weighted where set), logged as train_loss_step and train_loss."""
        x, y = batch[0], batch[1]
        loss = self.loss(self(x), y)
        self.log_train_loss(loss, len(x))
        return loss

    def _evaluate(self, batch, metrics: MetricCollection, prefix: str) -> None:
        x, y = batch[0], batch[1]
        logits = self(x)
        self.log(f"{prefix}_loss", self.loss(logits, y), on_epoch=True, prog_bar=True, batch_size=len(x),
                 sync_dist=True)
        update_metrics(metrics, self.task, self.probabilities(logits), y)

    def _log_epoch_metrics(self, metrics: MetricCollection, prefix: str) -> None:
        if self.trainer.sanity_checking:
            # Lightning's check runs two batches to catch errors before training. Splits keep file
            # order, so those often hold one class: their scores mean nothing and torchmetrics warns.
            metrics.reset()
            return
        values = compute_scores(metrics)
        self.last_metrics = {f"{prefix}_{k}": v.detach().cpu() for k, v in values.items()}
        values.pop("confusion")
        for per_class_key, stem in (("class_recall", "recall"), ("class_acc", "acc")):
            if per_class_key in values:
                values.update({f"{stem}_{name}": v for name, v in zip(self.class_names, values.pop(per_class_key))})
        self.log_dict({f"{prefix}_{k}": v.float() for k, v in values.items()}, prog_bar=False)

    def validation_step(self, batch, batch_idx):
        """Log the batch's val_loss and feed its probabilities to the val metrics."""
        self._evaluate(batch, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's val scores (per class by name), kept in last_metrics; none in the sanity check."""
        self._log_epoch_metrics(self.val_metrics, "val")

    def test_step(self, batch, batch_idx):
        """Log the batch's test_loss and feed its probabilities to the test metrics."""
        self._evaluate(batch, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        """Log the test scores (per class by name) and keep them, confusion matrix included, in last_metrics."""
        self._log_epoch_metrics(self.test_metrics, "test")

    def predict_step(self, batch, batch_idx):
        """Return probabilities (N, n_outputs) of a batch x or (x, ...): sigmoid per output, or softmax (multiclass)."""
        x = batch[0] if isinstance(batch, (tuple, list)) else batch
        return self.probabilities(self(x))

    def configure_optimizers(self):
        """Return the optimiser over the trainable parameters, with a per-step schedule if lr_schedule is one_cycle."""
        # Frozen parameters stay out, so a fine-tuning callback can add them later as their own group.
        optimizer = make_optimizer([p for p in self.parameters() if p.requires_grad], self.hparams.optimizer,
                                   self.hparams.lr, self.hparams.weight_decay, self.hparams.momentum)
        schedule = self.hparams.lr_schedule
        total_steps = 0 if schedule == "constant" else self.trainer.estimated_stepping_batches
        return with_lr_schedule(optimizer, schedule, total_steps)

    def on_fit_start(self) -> None:
        """Raise ConfigError before training if checkpoints are saved but the backbone could not be rebuilt from one."""
        if self.trainer.checkpoint_callback is not None:
            module_spec(self.backbone)  # checkpoints rebuild the backbone from it: fail now, not at the first save

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Save backbone_spec (the backbone's class path and init args), from which loading rebuilds it."""
        checkpoint["backbone_spec"] = module_spec(self.backbone)

    def on_load_checkpoint(self, checkpoint: dict) -> None:
        """Raise ConfigError for a checkpoint of another task, classes or backbone; else take its saved loss_weights."""
        saved = checkpoint.get("hyper_parameters", {})
        trained_for = (saved.get("task"), list(saved.get("class_names", [])))
        if "class_names" in saved and trained_for != (self.task, self.class_names):
            # Otherwise the head's shape mismatch surfaces as a size error deep in load_state_dict.
            raise ConfigError(f"the checkpoint was trained for a {trained_for[0]} task with classes {trained_for[1]}, "
                              f"but this run builds {self.task} with {self.class_names}: run it with the config it "
                              "was trained with (config.yaml in its run folder)")
        saved_spec = checkpoint.get("backbone_spec", {})
        built = class_path(type(self.backbone))
        if saved_spec.get("class_path") and saved_spec["class_path"] != built:
            raise ConfigError(f"the checkpoint holds a {saved_spec['class_path']} backbone, but this run builds a "
                              f"{built}: run it with the config it was trained with (config.yaml in its run folder)")
        differing = differing_args(saved_spec.get("init_args", {}), module_spec(self.backbone)["init_args"])
        if differing:
            # Settings that change layer sizes would fail deep in load_state_dict; others would predict differently.
            settings = "; ".join(f"{name}: trained {saved!r}, this run {built!r}" for name, (saved, built)
                                 in sorted(differing.items()))
            raise ConfigError(f"the checkpoint's backbone was trained with other settings ({settings}): run it with "
                              "the config it was trained with (config.yaml in its run folder)")
        # 'balanced' weights are derived from the training data, so the saved buffer decides its size.
        self.loss_weights = checkpoint["state_dict"]["loss_weights"].to(self.loss_weights.device)


def balanced_weights(task: str, counts: torch.Tensor) -> torch.Tensor:
    """Return loss weights from label counts: n/(k*count) per class, or neg/pos per output for BCE.

    counts: (k,) per class for multiclass; (2,) [negatives, positives] for binary;
    (k, 2) [negatives, positives] per label for multilabel.
    """
    if task == "multiclass":
        return counts.sum() / (len(counts) * counts.clamp(min=1))
    counts = counts.view(-1, 2)
    return counts[:, 0] / counts[:, 1].clamp(min=1)


def load_classifier(path: str | Path) -> Classifier:
    """Rebuild a Classifier (backbone included) from a checkpoint file, on the CPU."""
    checkpoint = read_checkpoint(path)
    if "backbone_spec" not in checkpoint:
        raise DataError(f"{path} is not a classifier's checkpoint (it names no backbone); a regression net's "
                        "loads with DenseRegressor.load_from_checkpoint, an autoencoder's with ConvAutoencoder's")
    hparams = accepted_hparams(Classifier, checkpoint["hyper_parameters"])
    model = Classifier(build_from_spec(checkpoint["backbone_spec"]), **hparams)
    model.on_load_checkpoint(checkpoint)
    model.load_state_dict(checkpoint["state_dict"])
    return model.eval()
