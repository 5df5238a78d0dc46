"""Whether hooks watch a module: fused fast paths then run layer by layer, so the hooks see what they expect."""
from __future__ import annotations

from torch import nn
from torch.nn.modules import module as torch_module


def hooked(layer: nn.Module) -> bool:
    """Return True where a forward or backward hook watches `layer`."""
    return bool(layer._forward_hooks or layer._forward_pre_hooks or layer._backward_hooks or layer._backward_pre_hooks)


def hooked_globally() -> bool:
    """Return True where a forward or backward hook is registered for every module (global hooks)."""
    return bool(torch_module._global_forward_hooks or torch_module._global_forward_pre_hooks
                or torch_module._global_backward_hooks or torch_module._global_backward_pre_hooks)
