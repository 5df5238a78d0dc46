"""Dense layers that predict in float32 through oneDNN on AMD CPUs, where PyTorch's default (MKL) runs at half speed."""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn


@functools.cache
def cpu_vendor() -> str:
    """Return the CPU vendor ('AuthenticAMD', 'GenuineIntel', ...), or '' where it cannot be read."""
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text(errors="replace").splitlines():
            if line.startswith("vendor_id"):
                return line.split(":", 1)[1].strip()
    return "AuthenticAMD" if "AuthenticAMD" in platform.processor() else ""


@functools.cache
def onednn_linear_inference() -> bool:
    """Return True where float32 dense layers should predict through oneDNN: AMD CPUs, with oneDNN built into torch.

    MKL, which PyTorch uses for float32 matrix products, takes a slow path on AMD CPUs: on this
    EPYC it multiplies at ~200 GFLOP/s where oneDNN (TensorFlow's library) reaches ~400; the sqrt
    net's 100->120 layer on 4,096 rows takes 0.50 ms through MKL, 0.28 ms through oneDNN.
    """
    if cpu_vendor() != "AuthenticAMD" or not torch.backends.mkldnn.is_available():
        return False
    try:  # an internal op of PyTorch's: use it only where it is there and gives F.linear's answer
        probe = torch.ops.mkldnn._linear_pointwise(torch.ones(2, 3), torch.ones(4, 3), torch.zeros(4), "none", [], "")
    except (AttributeError, RuntimeError):
        return False
    return bool(torch.equal(probe, torch.full((2, 4), 3.0)))


# Each oneDNN call spends ~12 us setting up; below ~1M multiply-adds MKL finishes sooner (measured on this EPYC).
ONEDNN_MIN_MULTIPLY_ADDS = 1 << 20


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Return F.linear(x, weight, bias), through oneDNN for big float32 inference products on AMD CPUs.

    Same values up to float rounding. Training (a gradient to compute), autocast, other dtypes,
    other devices and small products take F.linear.
    """
    no_gradient = not torch.is_grad_enabled() or not (x.requires_grad or weight.requires_grad)
    if (no_gradient and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and x.numel() * weight.shape[0] >= ONEDNN_MIN_MULTIPLY_ADDS
            and not torch.is_autocast_enabled("cpu") and onednn_linear_inference()):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, "none", [], "")
    return F.linear(x, weight, bias)


class OneDnnLinear(nn.Linear):
    """nn.Linear (same parameters, same state dict) that predicts in float32 through oneDNN on AMD CPUs (`linear`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x @ weight.T + bias."""
        return linear(x, self.weight, self.bias)
