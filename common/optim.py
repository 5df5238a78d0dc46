"""Optimiser choice by name, as the course's compile(optimizer=...) step."""
from __future__ import annotations

from typing import Iterable

import torch
import torch.optim.optimizer as optimizer_hooks

from common.errors import ConfigError

OPTIMIZERS = ("adam", "adamw", "sgd", "rmsprop")
LR_SCHEDULES = ("constant", "one_cycle")


def make_optimizer(params: Iterable, name: str = "adam", lr: float = 1e-3, weight_decay: float = 0.0,
                   momentum: float = 0.9) -> torch.optim.Optimizer:
    """Return the named torch optimiser over `params`; Adam and AdamW use the fused kernels where the device has them."""
    params = list(params)
    if name == "adam":
        return DirectFusedAdam(params, lr=lr, weight_decay=weight_decay, fused=can_fuse(params))
    if name == "adamw":
        return DirectFusedAdamW(params, lr=lr, weight_decay=weight_decay, fused=can_fuse(params))
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, weight_decay=weight_decay, momentum=momentum)
    if name == "rmsprop":
        return torch.optim.RMSprop(params, lr=lr, weight_decay=weight_decay)
    raise ConfigError(f"unknown optimizer {name!r}; choose one of {', '.join(OPTIMIZERS)}")


def can_fuse(params: list) -> bool | None:
    """Return True when every parameter is a float tensor on the CPU or CUDA, where fused Adam runs.

    One fused kernel per parameter instead of about six passes: ~1.6x faster optimiser steps for
    the 4.3M-parameter dense baseline on CPU. None lets torch choose (MPS, parameter groups).
    """
    tensors = [p for p in params if isinstance(p, torch.Tensor)]
    if not tensors or len(tensors) != len(params):
        return None
    fusable = all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in tensors)
    return True if fusable else None


def step_watched(optimizer: torch.optim.Optimizer) -> bool:
    """Return True where a profiler records or step hooks listen: torch's own step serves them."""
    hooks = (optimizer_hooks._global_optimizer_pre_hooks, optimizer_hooks._global_optimizer_post_hooks,
             optimizer._optimizer_step_pre_hooks, optimizer._optimizer_step_post_hooks)
    return torch.autograd.profiler._is_profiler_enabled or any(hooks)


class DirectFusedAdam(torch.optim.Adam):
    """torch.optim.Adam whose fused steps call the fused kernel directly, without Optimizer.step's bookkeeping.

    That bookkeeping (a profiler record, hook loops, device checks, grouping by device) costs more
    than the kernel for a small net: the sqrt net's step (forward, backward, Adam) ran 1.22x
    faster on a 2-core AVX2 EPYC (session 13), with the same weights bit for bit. Steps that
    need more (a profiler or step hooks, amsgrad, maximize, capturable or differentiable groups,
    a tensor learning rate, gradient scaling, mixed devices or dtypes, torch.compile) are torch's.
    Same state dict as torch.optim.Adam.
    """

    def step(self, closure=None):
        """Take one Adam step (after calling `closure`, if given) and return the closure's loss."""
        if step_watched(self) or torch.compiler.is_compiling():
            return self.torch_step(closure)
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        if not self.direct_step():
            self.torch_step()
        return loss

    step.hooked = True  # keeps torch from wrapping it in its profiler record and hooks: torch_step adds them

    def torch_step(self, closure=None):
        """Take torch's own step, profiler record and hooks included."""
        step = torch.optim.Adam.step
        if getattr(step, "hooked", False):  # torch wraps it once a plain Adam exists: unwrap that layer only
            step = step.__wrapped__
        return self.profile_hook_step(step)(self, closure)

    @torch.no_grad()
    def direct_step(self) -> bool:
        """Update every group with torch's fused kernel and return True, or change nothing and return False."""
        if getattr(self, "grad_scale", None) is not None or getattr(self, "found_inf", None) is not None:
            return False  # a GradScaler's step: torch's unscales and skips steps with inf gradients
        updates = []
        for group in self.param_groups:
            lists = [], [], [], [], [], []  # params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, steps
            has_complex = self._init_group(group, *lists)  # creates missing state as torch's step would
            simple = (group["fused"] and not (group["amsgrad"] or group["maximize"] or group["capturable"]
                                              or group["differentiable"] or has_complex)
                      and not any(torch.is_tensor(value) for value in (group["lr"], *group["betas"])))
            if not simple or len({(p.device, p.dtype) for p in lists[0]}) > 1:
                return False
            if lists[0]:
                updates.append((group, lists))
        for group, (params, grads, exp_avgs, exp_avg_sqs, _, steps) in updates:
            kernel = torch._fused_adamw_ if group["decoupled_weight_decay"] else torch._fused_adam_
            torch._foreach_add_(steps, 1)
            kernel(params, grads, exp_avgs, exp_avg_sqs, [], steps, amsgrad=False, lr=group["lr"],
                   beta1=group["betas"][0], beta2=group["betas"][1], weight_decay=group["weight_decay"],
                   eps=group["eps"], maximize=False, grad_scale=None, found_inf=None)
        return True


class DirectFusedAdamW(DirectFusedAdam, torch.optim.AdamW):
    """torch.optim.AdamW (decoupled weight decay) with DirectFusedAdam's direct steps."""


def check_lr_schedule(schedule: str) -> None:
    """Raise ConfigError unless `schedule` is one of LR_SCHEDULES."""
    if schedule not in LR_SCHEDULES:
        raise ConfigError(f"unknown lr_schedule {schedule!r}; choose one of {', '.join(LR_SCHEDULES)}")


def with_lr_schedule(optimizer: torch.optim.Optimizer, schedule: str, total_steps: int, warmup_fraction: float = 0.2):
    """Return what configure_optimizers returns: the optimiser alone ("constant") or with a per-step schedule.

    "one_cycle" warms the learning rate up from lr/25 to lr over the first `warmup_fraction` of
    the steps, then anneals it (cosine) to about zero: the last epochs train at a small rate, so the
    final weights are stable and a late validation score is not a lucky fluctuation.
    """
    check_lr_schedule(schedule)
    if schedule == "constant":
        return optimizer
    max_lr = [group["lr"] for group in optimizer.param_groups]
    steps = max(total_steps, 1)
    # OneCycleLR divides by the warm-up's length in steps minus one: a one-step warm-up (5 steps at 0.2) gets two.
    warmup = warmup_fraction if warmup_fraction * steps != 1 else 2 / steps
    scheduler = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=max_lr, total_steps=steps, pct_start=warmup,
                                                    cycle_momentum=False)
    return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
