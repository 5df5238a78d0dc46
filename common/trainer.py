"""The one Trainer factory: device and precision choice, checkpoints, loggers, progress bar, DDP pass-through."""
from __future__ import annotations

import atexit
import importlib.util
import logging
import warnings
from typing import Any

import lightning as L
import torch
from lightning.pytorch.callbacks import Callback
from lightning.pytorch.loggers import CSVLogger, Logger, TensorBoardLogger

from common.callbacks import (CastWeightsOnceForEval, CompilePoolingWherePays, ResumeRandomState, ReuseFreedMemory,
                              RunInfo, TimedProgressBar, TinyModelThreads, best_and_last_checkpoint)
from common.devices import resolve_accelerator, resolve_precision, skip_nvml_cuda_check_without_nvml
from common.gpu_data import HoldDataOnGpu


def close_process_group() -> None:
    """Destroy torch.distributed's process group if one is open (DDP), so that every rank exits cleanly."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


# Lightning closes only NCCL groups at exit. A gloo group (DDP on CPUs) left open is torn down
# among C++ static destructors, where a rank sometimes aborts ("terminate called without an
# active exception", ~1 run in 200 of a 2-process CPU fit) and Lightning then kills the others.
atexit.register(close_process_group)


def without_lightning_tips(record: logging.LogRecord) -> bool:
    """Drop Lightning's "💡 Tip:" records (advertisements for its cloud services, printed in every run)."""
    return not str(record.msg).startswith("💡 Tip")


def quiet_run_log() -> None:
    """Keep what no user can act on, or should not, out of the run log: Lightning's tips and three of its warnings."""
    # Set per build, not at import: a filter set while a test collects its module would not last.
    for name in ("lightning.pytorch.utilities.rank_zero", "lightning.fabric.utilities.rank_zero"):
        logging.getLogger(name).addFilter(without_lightning_tips)  # once: a logger keeps one copy of a filter
    # Lightning 2.6's pytree helper builds torch's deprecated LeafSpec in every fit.
    warnings.filterwarnings("ignore", message=r"`isinstance\(treespec, LeafSpec\)` is deprecated",
                            category=FutureWarning)
    # Lightning advises worker processes for every loader on machines with more than 2 cores. BatchTensors
    # loaders slice whole batches in the main process (workers would only add copies between processes);
    # the per-frame loaders that do gain from workers (FrameData's augmentation, streaming) say so themselves.
    warnings.filterwarnings("ignore", message=".*does not have many workers.*")
    # BackboneFinetuning leaves BatchNorm trainable (train_bn), so at the unfreeze epoch it finds those
    # parameters already in the optimiser, as they should be, and warns that the optimiser was built wrong.
    warnings.filterwarnings("ignore", message="The provided params to be frozen already exist within another group")


def default_loggers(save_dir: str, name: str) -> list[Logger]:
    """Return a CSV logger, plus TensorBoard when it is installed; both write into one run folder."""
    loggers: list[Logger] = [CSVLogger(save_dir, name=name)]
    if importlib.util.find_spec("tensorboard") or importlib.util.find_spec("tensorboardX"):
        loggers.append(TensorBoardLogger(save_dir, name=name, version=loggers[0].version))
    return loggers


def build_trainer(
    max_epochs: int | None = 10,
    max_steps: int = -1,
    accelerator: str = "auto",
    devices: int | str | list[int] = "auto",
    num_nodes: int = 1,
    strategy: str = "auto",
    precision: str = "auto",
    cpu_bf16: bool = False,
    compile_pooling: bool | None = None,
    deterministic: bool | str | None = None,
    default_root_dir: str = "runs",
    run_name: str = "deepbio",
    monitor: str = "val_loss",
    mode: str = "min",
    logger: bool = True,
    enable_checkpointing: bool = True,
    enable_progress_bar: bool = True,
    progress_interval: float = 0.25,
    log_every_n_steps: int = 10,
    check_val_every_n_epoch: int = 1,
    limit_train_batches: int | float | None = None,
    limit_val_batches: int | float | None = None,
    gradient_clip_val: float | None = None,
    accumulate_grad_batches: int = 1,
    callbacks: list[Callback] | None = None,
    **trainer_kwargs: Any,
) -> L.Trainer:
    """Return a Lightning Trainer set up the deepbio way for CUDA, Apple MPS or CPU.

    precision="auto" means bf16-mixed on CUDA, fp32 on MPS, and on CPU bf16-mixed only when
    `cpu_bf16` is set (conv nets) and the CPU has native bf16; otherwise 32-true.
    `compile_pooling` None compiles CPU max-pooling where the run is long enough to pay it back,
    True always, False never (CompilePoolingWherePays).
    On CUDA, in-memory BatchTensors data sets are held on the GPU for the run (HoldDataOnGpu).
    `devices`, `num_nodes` and `strategy` pass straight to Lightning, so `devices=2,
    strategy="ddp"` runs distributed data parallel unchanged.
    """
    skip_nvml_cuda_check_without_nvml()
    quiet_run_log()
    device_type = resolve_accelerator(accelerator)
    all_callbacks: list[Callback] = [CastWeightsOnceForEval(), TinyModelThreads(), ReuseFreedMemory(), RunInfo(),
                                     CompilePoolingWherePays(compile_pooling), ResumeRandomState(), HoldDataOnGpu()]
    if enable_checkpointing:
        all_callbacks.append(best_and_last_checkpoint(monitor, mode))
    if enable_progress_bar:
        all_callbacks.append(TimedProgressBar(progress_interval))
    all_callbacks.extend(callbacks or [])
    return L.Trainer(
        accelerator=device_type,
        devices=devices,
        num_nodes=num_nodes,
        strategy=strategy,
        precision=resolve_precision(device_type, precision, cpu_bf16),
        max_epochs=max_epochs,
        max_steps=max_steps,
        deterministic=deterministic,
        default_root_dir=default_root_dir,
        logger=default_loggers(default_root_dir, run_name) if logger else False,
        enable_checkpointing=enable_checkpointing,
        enable_progress_bar=enable_progress_bar,
        enable_model_summary=False,
        log_every_n_steps=log_every_n_steps,
        check_val_every_n_epoch=check_val_every_n_epoch,
        limit_train_batches=limit_train_batches,
        limit_val_batches=limit_val_batches,
        gradient_clip_val=gradient_clip_val,
        accumulate_grad_batches=accumulate_grad_batches,
        callbacks=all_callbacks,
        **trainer_kwargs,
    )
