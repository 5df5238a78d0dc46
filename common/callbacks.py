"""Callbacks every task uses: checkpoints (with random state), progress bar, CPU threads, heap reuse, eval casts, run info, CSV."""
from __future__ import annotations

import csv
import json
import math
import random
import shutil
import time
from contextlib import ExitStack
from pathlib import Path

import lightning as L
import numpy as np
import torch
from lightning.pytorch.accelerators import CPUAccelerator
from lightning.pytorch.callbacks import BasePredictionWriter, ModelCheckpoint, TQDMProgressBar
from torch import nn

from common.cpu_linear import onednn_linear_inference
from common.cpu_memory import heap_reuse, heap_reuse_enabled
from common.devices import AUTOCAST_DTYPES
from common.pooling import CompiledPooling, HalvingMaxPool
from common.summary import count_parameters


class ResumedBestCheckpoint(ModelCheckpoint):
    """ModelCheckpoint that, resumed into a new run folder, still knows the best model so far and its score.

    A fit resumed with --ckpt_path writes into a new version folder. Lightning then forgets the
    best score, so the first epoch after resuming became "best" even when worse than the best
    before; here it must beat it. The earlier best file stays where it is (outside the new
    folder, Lightning never deletes it).
    """

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the best-k record, also when the run folder changed (last.ckpt's path stays the new one's)."""
        if state_dict.get("dirpath", self.dirpath) == self.dirpath:
            super().load_state_dict(state_dict)
            return
        best_k_models = {path: score for path, score in state_dict.get("best_k_models", {}).items()
                         if Path(path).is_file()}  # a best file deleted since cannot be the best any more
        if state_dict["best_model_path"] in best_k_models:
            self.best_model_path, self.best_model_score = state_dict["best_model_path"], state_dict["best_model_score"]
            self.best_k_models = best_k_models
            self.kth_best_model_path = state_dict.get("kth_best_model_path", "")
            self.kth_value = state_dict.get("kth_value", self.kth_value)


def best_and_last_checkpoint(monitor: str = "val_loss", mode: str = "min") -> ModelCheckpoint:
    """Return a checkpoint callback keeping the best model by `monitor` plus last.ckpt for resuming."""
    return ResumedBestCheckpoint(
        monitor=monitor,
        mode=mode,
        save_top_k=1,
        save_last=True,
        filename="best-{epoch:03d}-{" + monitor + ":.5f}",
        auto_insert_metric_name=True,
    )


class TimedProgressBar(TQDMProgressBar):
    """Lightning's tqdm progress bar, redrawn at most every `interval` seconds and at the end of each loop.

    Lightning redraws every `refresh_rate` batches, and while training also reads the logged
    metrics back each time: for a fast loop (the sqrt net predicts ~1,000 batches a second)
    that drawing took 10-25% of the run. A person reading the bar needs no more than 4 redraws a second.
    """

    def __init__(self, interval: float = 0.25) -> None:
        super().__init__(refresh_rate=1)
        self.interval = interval
        self.last_drawn = -math.inf  # the first batch is drawn, also on a machine booted under `interval` ago

    def _should_update(self, current: int, total: int | float) -> bool:
        """Return True at the last batch or when `interval` seconds have passed since the last redraw."""
        now = time.monotonic()
        if not self.is_enabled or (current != total and now - self.last_drawn < self.interval):
            return False
        self.last_drawn = now
        return True


TINY_MODEL_PARAMETERS = 100_000


class TinyModelThreads(L.Callback):
    """Train models under 100,000 parameters on one CPU thread, restoring the thread count afterwards.

    Their training batches are so small that a second OpenMP thread only adds waiting: the
    course's sqrt net (12,441 parameters, batch 32) trains ~8-20% faster on one thread of two,
    and on a shared machine threads stalling each other slow it 10-100x (benchmarks/README.md).
    Prediction keeps every thread: it runs thousands of rows per batch, where threads pay.
    """

    def __init__(self) -> None:
        self.restore_threads: int | None = None

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Choose one thread to train a tiny model on the CPU (before RunInfo states the thread count)."""
        tiny = stage == "fit" and count_parameters(pl_module) < TINY_MODEL_PARAMETERS
        if tiny and isinstance(trainer.accelerator, CPUAccelerator) and torch.get_num_threads() > 1:
            self.restore_threads = torch.get_num_threads()
            torch.set_num_threads(1)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Give the process its thread count back."""
        if self.restore_threads:
            torch.set_num_threads(self.restore_threads)
            self.restore_threads = None

    on_exception = teardown  # Lightning calls no teardown hook when a run fails


class ReuseFreedMemory(L.Callback):
    """On the CPU, keep freed memory in the heap for the run (common.cpu_memory), restoring glibc's limits afterwards.

    The image CNN's first activations are reused every batch instead of page-faulting anew;
    the cost is that the process keeps its peak heap until the run ends.
    """

    def __init__(self) -> None:
        self.exit_stack = ExitStack()

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Turn heap reuse on for a CPU run (before RunInfo states it)."""
        if isinstance(trainer.accelerator, CPUAccelerator):
            self.exit_stack.enter_context(heap_reuse())

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Give freed memory back to the system again, as glibc does by default."""
        self.exit_stack.close()

    on_exception = teardown  # Lightning calls no teardown hook when a run fails


class CompilePoolingWherePays(L.Callback):
    """Let CPU training compile max-pooling (common.pooling.CompiledPooling) for this run, as `setting` says.

    None ("auto"): a pooling shape is compiled where the run's training steps pay the compiler
    back (~4-5 s a shape cold; the course image CNN's first pooling from ~560 steps of 100 frames).
    True: compile every pooling shape (long runs, benchmarks); False: never. States its choice.
    """

    def __init__(self, setting: bool | None = None) -> None:
        self.setting = setting

    def on_train_start(self, trainer: L.Trainer, pl_module: L.LightningModule) -> None:
        """Publish the number of training steps to the model's pooling layers, if any (after the data is set up)."""
        pools = any(isinstance(layer, HalvingMaxPool) for layer in pl_module.modules())
        if not pools or not isinstance(trainer.accelerator, CPUAccelerator):
            return
        steps = trainer.estimated_stepping_batches * trainer.accumulate_grad_batches
        CompiledPooling.training_steps = {None: float(steps), True: math.inf, False: 0.0}[self.setting]
        if trainer.is_global_zero:
            choice = {None: f"auto (only layers that {steps:,.0f} training steps pay back)", True: "on",
                      False: "off"}[self.setting]
            failure = f"; unavailable: {CompiledPooling.failure}" if CompiledPooling.failure else ""
            print(f"deepbio run: compiled max-pooling {choice}{failure}", flush=True)

    def teardown(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Outside a run, nothing compiles."""
        CompiledPooling.training_steps = 0.0

    on_exception = teardown  # Lightning calls no teardown hook when a run fails


AUTOCAST_CAST_LAYERS = (nn.Linear, nn.Conv1d, nn.Conv2d, nn.Conv3d,
                        nn.ConvTranspose1d, nn.ConvTranspose2d, nn.ConvTranspose3d)


class CastWeightsOnceForEval(L.Callback):
    """Under mixed precision, cast linear and conv weights to the autocast dtype once per evaluation loop, not per batch.

    Lightning's autocast has its weight cache off, so every batch copied each weight to bf16
    again: the dense baseline (4.3 M weights, batch 100) predicted 28.5k frames/s with it, 33.6k without.
    Autocast casts exactly these layers' weights and biases to that dtype, so the outputs are
    bit-identical. The weights are cast at the loop's first batch and the float32 ones come back
    at its epoch end (before other callbacks' epoch-end hooks: build_trainer lists this callback
    first; checkpoints are saved in float32) or when the loop fails. A callback that runs the model
    outside autocast between two batches of an evaluation loop would see the cast weights.
    """

    def __init__(self) -> None:
        self.float_weights: list[tuple[nn.Parameter, torch.Tensor]] = []

    def cast(self, trainer: L.Trainer, pl_module: L.LightningModule, *_) -> None:
        """Swap the float32 weights of autocast-cast layers for copies in the run's autocast dtype (once per loop)."""
        dtype = AUTOCAST_DTYPES.get(str(trainer.precision))
        if dtype is None or self.float_weights:
            return
        for layer in pl_module.modules():
            if isinstance(layer, AUTOCAST_CAST_LAYERS):
                for parameter in layer.parameters(recurse=False):
                    self.float_weights.append((parameter, parameter.data))
                    parameter.data = parameter.data.to(dtype)

    def restore(self, *_) -> None:
        """Give every swapped parameter its float32 weights back."""
        for parameter, weights in self.float_weights:
            parameter.data = weights
        self.float_weights = []

    on_validation_batch_start = on_test_batch_start = on_predict_batch_start = cast
    on_validation_epoch_end = on_test_epoch_end = on_predict_epoch_end = on_exception = restore


class ResumeRandomState(L.Callback):
    """Keep the random generators' states in checkpoints, so that a resumed fit draws what an unbroken one would.

    Shuffling and dropout draw from torch's global generator, which Lightning's checkpoints do not
    hold: without this, a fit resumed from last.ckpt trains on other batches than one never stopped.
    (Persistent DataLoader workers keep generators of their own, which start afresh on resuming.)
    Stored as tensors and plain numbers, so checkpoints still load with weights_only=True.
    """

    def state_dict(self) -> dict:
        """Return the states of Python's, NumPy's and torch's generators (the GPU's too, where used)."""
        kind, keys, position, has_gauss, gauss = np.random.get_state()
        state = {"python": random.getstate(), "numpy": (kind, torch.from_numpy(keys.astype(np.int64)), position,
                                                         has_gauss, gauss), "torch": torch.get_rng_state()}
        if torch.cuda.is_initialized():  # the run's own device: another machine may have fewer GPUs
            state["cuda"] = torch.cuda.get_rng_state()
        if torch.backends.mps.is_available():
            state["mps"] = torch.mps.get_rng_state()
        return state

    def load_state_dict(self, state_dict: dict) -> None:
        """Restore the generators' states a checkpoint holds (those it lacks are left as they are)."""
        if "python" in state_dict:
            version, internal, gauss = state_dict["python"]
            random.setstate((version, tuple(internal), gauss))
        if "numpy" in state_dict:
            kind, keys, position, has_gauss, gauss = state_dict["numpy"]
            np.random.set_state((kind, keys.numpy().astype(np.uint32), position, has_gauss, gauss))
        if "torch" in state_dict:
            torch.set_rng_state(state_dict["torch"])
        if "cuda" in state_dict and torch.cuda.is_available():
            torch.cuda.set_rng_state(state_dict["cuda"])
        if "mps" in state_dict and torch.backends.mps.is_available():
            torch.mps.set_rng_state(state_dict["mps"])


class RunInfo(L.Callback):
    """Log and save (run_info.json) the device, precision and data source (and predict input) a run really used.

    A run that fails before writing anything else (a missing data file, a refused checkpoint) leaves
    no run folder: Lightning creates it before the data is read, and the next run would skip its version.
    """

    def setup(self, trainer: L.Trainer, pl_module: L.LightningModule, stage: str) -> None:
        """Record what this run uses, once, on the main process."""
        datamodule = trainer.datamodule
        info = {
            "stage": getattr(stage, "value", stage),
            "accelerator": type(trainer.accelerator).__name__.replace("Accelerator", "").lower(),
            "devices": trainer.num_devices,
            "nodes": trainer.num_nodes,
            "strategy": type(trainer.strategy).__name__,
            "precision": str(trainer.precision),
            "channels_last": bool(getattr(pl_module, "channels_last", False)),
            "torch_threads": torch.get_num_threads(),
            "cpu_heap_reuse": heap_reuse_enabled(),
            "onednn_linear_inference": isinstance(trainer.accelerator, CPUAccelerator) and onednn_linear_inference(),
            "data_source": getattr(datamodule, "data_source", "given by the caller"),
            **({"predict_source": getattr(datamodule, "predict_source", "given by the caller")}
               if stage == "predict" else {}),
            "run_dir": trainer.log_dir,
        }
        # trainer.log_dir is a collective under DDP: read it once, on every rank (above).
        if trainer.is_global_zero:
            print("deepbio run: " + ", ".join(f"{k}={v}" for k, v in info.items()), flush=True)
            if info["run_dir"]:
                Path(info["run_dir"]).mkdir(parents=True, exist_ok=True)
                (Path(info["run_dir"]) / f"run_info_{info['stage']}.json").write_text(json.dumps(info, indent=2))

    def on_exception(self, trainer: L.Trainer, pl_module: L.LightningModule, exception: BaseException) -> None:
        """Remove the run folder of a failed run that holds only the files written at its start."""
        logger = trainer.logger  # its log_dir, unlike the trainer's, is no collective: one rank may fail alone
        if not trainer.is_global_zero or logger is None or not logger.log_dir:
            return
        run_dir = Path(logger.log_dir)
        files = [path for path in run_dir.rglob("*") if path.is_file()] if run_dir.is_dir() else None
        if files is not None and all(path.parent == run_dir and (path.name in ("config.yaml", "hparams.yaml")
                                                                  or path.name.startswith("run_info_"))
                                     for path in files):
            shutil.rmtree(run_dir)


def gather_predictions(trainer, predictions: list[torch.Tensor],
                       batch_indices: list) -> tuple[list[int], torch.Tensor] | None:
    """Return every rank's predicted rows (dataset row numbers, outputs), each row once, in dataset order.

    Under DDP every rank predicts its share of the rows (some twice: DistributedSampler pads the
    shares to one length); the shares are gathered, so every rank must call this. Returns None
    where nothing was predicted and on ranks other than global zero. The row numbers are [] where
    Lightning tracked none (one process, a loader without a batch sampler): outputs are then in loader order.
    """
    # Lightning passes dataloaders x batches x samples.
    rows = [int(row) for loader in batch_indices for batch in loader for row in batch]
    batches = [p.float().cpu() for p in predictions]
    if trainer.world_size > 1:
        parts = [None] * trainer.world_size
        torch.distributed.all_gather_object(parts, (rows, batches))
        rows = [row for part_rows, _ in parts for row in part_rows]
        batches = [batch for _, part_batches in parts for batch in part_batches]
    predicted = sum(len(batch) for batch in batches)
    if (rows or trainer.world_size > 1) and len(rows) != predicted:
        raise RuntimeError(f"Lightning gave {len(rows)} dataset indices for {predicted} predicted rows, so rows "
                           "cannot be matched to their inputs (every process predicts its own share under DDP): "
                           "predict from a torch DataLoader, as deepbio's data modules do, or on one device")
    if not batches or not trainer.is_global_zero:
        return None
    outputs = torch.cat(batches)
    if not rows:
        return [], outputs
    index = torch.tensor(rows)
    order = torch.argsort(index, stable=True)
    index, outputs = index[order], outputs[order]
    first = torch.ones(len(index), dtype=torch.bool)
    first[1:] = index[1:] != index[:-1]  # the padded repeats
    return index[first].tolist(), outputs[first]


class PredictionsCSV(BasePredictionWriter):
    """Write predictions.csv into the run folder: an id column, one prob_<class> column per output, label.

    The datamodule names the rows (`predict_ids`, `predict_id_column`); the model turns
    probabilities into hard labels (`class_names`, `hard_labels`). Other tools read this file:
    keep its columns stable. Under DDP, global rank zero writes every rank's rows (gather_predictions).
    """

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")
        self.written: tuple[list[str], torch.Tensor, list[str]] | None = None  # rank zero's (ids, probs, labels)

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        """Gather every batch's (every rank's) probabilities and write them in the datamodule's row order."""
        if not hasattr(pl_module, "output_names"):
            return  # a model without class outputs (an autoencoder)
        path = Path(trainer.log_dir or ".") / "predictions.csv"  # a collective under DDP: read on every rank
        gathered = gather_predictions(trainer, predictions, batch_indices)
        if gathered is None:
            return  # nothing predicted, or another rank writes the file
        rows, probs = gathered
        ids = [trainer.datamodule.predict_ids[row] for row in rows] if rows else trainer.datamodule.predict_ids
        labels = pl_module.hard_labels(probs)
        self.written = (ids, probs, labels)
        write_predictions_csv(path, trainer.datamodule.predict_id_column, ids, pl_module.output_names, probs, labels)
        print(f"predictions written to {path}", flush=True)


def write_predictions_csv(path: Path, id_column: str, ids: list[str], output_names: list[str],
                          probs: torch.Tensor, labels: list[str]) -> Path:
    """Write rows (id, prob_<output>..., label) to `path` and return it."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([id_column, *[f"prob_{name}" for name in output_names], "label"])
        for row_id, row, label in zip(ids, probs.tolist(), labels):
            writer.writerow([row_id, *[f"{p:.6f}" for p in row], label])
    return path
