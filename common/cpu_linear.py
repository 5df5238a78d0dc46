"""Dense layers that predict big float32 products through oneDNN on x86 CPUs, with the ReLU after them in the same pass."""
from __future__ import annotations

import functools
import platform
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from common.hooks import hooked, hooked_globally


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
    """Return True where big float32 dense-layer predictions go through oneDNN: x86 CPUs, with oneDNN in torch.

    On AMD CPUs MKL, which PyTorch uses for float32 matrix products, takes a slow path: on an
    EPYC it multiplied at ~200 GFLOP/s where oneDNN (TensorFlow's library) reaches ~400. On Intel
    CPUs MKL is as fast, but oneDNN writes a big output once with its ReLU applied, where MKL's
    product and a separate ReLU pass write it twice (the sqrt net predicting 16,384 rows: 5.5M ->
    8.2M rows/s on a Xeon).
    """
    if cpu_vendor() not in X86_VENDORS or not torch.backends.mkldnn.is_available():
        return False
    try:  # an internal op of PyTorch's: use it only where it is there and gives F.linear's answer
        probe = torch.ops.mkldnn._linear_pointwise(torch.ones(2, 3), -torch.ones(4, 3), torch.zeros(4), "relu", [], "")
    except (AttributeError, RuntimeError):
        return False
    return bool(torch.equal(probe, torch.zeros(2, 4)))


X86_VENDORS = ("AuthenticAMD", "GenuineIntel")
# Each oneDNN call spends ~12-20 us setting up, where MKL's small products take 3-10 us (measured on an
# EPYC and a Xeon). On AMD oneDNN pays from ~1M multiply-adds; on Intel only where the output is big
# (from ~512k values, 2 MiB): there MKL's own speed is oneDNN's, and a 100-row, 43,200-input layer is
# faster through MKL.
ONEDNN_MIN_MULTIPLY_ADDS = 1 << 20
ONEDNN_MIN_OUTPUTS = 1 << 19
ACTIVATIONS = ("none", "relu")  # the ones oneDNN applies as it writes the output, in this module


def onednn_pays(x: torch.Tensor, weight: torch.Tensor) -> bool:
    """Return True where oneDNN computes x @ weight.T faster than MKL on this CPU (by its vendor and the sizes)."""
    outputs = x.numel() // max(weight.shape[1], 1) * weight.shape[0]
    if cpu_vendor() == "AuthenticAMD":
        return outputs * weight.shape[1] >= ONEDNN_MIN_MULTIPLY_ADDS
    return outputs >= ONEDNN_MIN_OUTPUTS


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None,
           activation: str = "none") -> torch.Tensor:
    """Return activation(F.linear(x, weight, bias)), through oneDNN for big float32 inference products on x86 CPUs.

    `activation` is "none" or "relu"; oneDNN applies it as it writes the output. Same values up to
    float rounding. Training (a gradient to compute), autocast, other dtypes, other devices and
    small products take F.linear.
    """
    if activation not in ACTIVATIONS:
        raise ValueError(f"activation must be one of {ACTIVATIONS}, not {activation!r}")
    no_gradient = not torch.is_grad_enabled() or not (  # a bias alone may be trained
        x.requires_grad or weight.requires_grad or (bias is not None and bias.requires_grad))
    if (no_gradient and x.device.type == "cpu" and x.dtype == weight.dtype == torch.float32
            and not torch.is_autocast_enabled("cpu") and onednn_linear_inference() and onednn_pays(x, weight)):
        return torch.ops.mkldnn._linear_pointwise(x, weight, bias, activation, [], "")
    y = F.linear(x, weight, bias)
    if activation == "none":
        return y
    return y.relu_() if no_gradient else F.relu(y)  # in place where no gradient needs the product


class OneDnnLinear(nn.Linear):
    """nn.Linear (same parameters, same state dict) that predicts big float32 products through oneDNN (`linear`)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x @ weight.T + bias."""
        return linear(x, self.weight, self.bias)


FUSABLE_LINEARS = (nn.Linear, OneDnnLinear)  # not subclasses that compute something else in their forward


# On AMD CPUs a prediction of many rows runs the whole stack over chunks of rows whose widest layer
# output takes at most this (a power of two of rows): the intermediates then stay in cache between
# layers. The sqrt net (widest 120) predicting 65,536 rows on a 2-core Zen 5 EPYC (32 MiB L3), 16
# alternating rounds: chunks of 16,384 rows 0.74x the one-pass time, 12,288 0.81x, 17,476 0.88x,
# 32,768 1.0x. On a Xeon (session 12) chunks of 2,048-16,384 rows were slower than one pass.
CHUNK_OUTPUT_BYTES = 8 << 20


class DenseStack(nn.Sequential):
    """nn.Sequential (same state dict) whose Linear + ReLU pairs run as one `linear(..., "relu")` call.

    At float32 inference on x86 CPUs each such pair writes its output once, through oneDNN;
    elsewhere the pair computes what the two layers compute. A pair that a hook watches runs as
    two layers, so the hooks see what they would. Predictions of many rows on AMD CPUs run in
    chunks of rows (chunk_rows), each through all the layers, into one output (the same values up
    to float rounding).
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the layers applied in order."""
        rows = self.chunk_rows(x)
        if rows is None:
            return self.layers_forward(x)
        first = self.layers_forward(x[:rows])
        out = first.new_empty((len(x), *first.shape[1:]))
        out[:rows] = first
        for start in range(rows, len(x), rows):
            out[start:start + rows] = self.layers_forward(x[start:start + rows])
        return out

    def chunk_rows(self, x: torch.Tensor) -> int | None:
        """Return the rows per pass of an AMD CPU prediction (eval, no gradient) too big for the cache, else None."""
        widest = max((layer.out_features for layer in self if isinstance(layer, nn.Linear)), default=0)
        needs_gradient = torch.is_grad_enabled() and (x.requires_grad
                                                      or any(p.requires_grad for p in self.parameters()))
        if (self.training or needs_gradient or x.device.type != "cpu" or cpu_vendor() != "AuthenticAMD" or x.dim() < 2
                or widest == 0 or any(hooked(layer) for layer in self) or hooked_globally()):
            return None
        rows = 1 << max(CHUNK_OUTPUT_BYTES // (widest * x.element_size()), 1).bit_length() - 1
        return rows if len(x) > rows else None

    def layers_forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return the layers applied in order to x, each Linear + ReLU pair in one call where nothing hooks them."""
        layers = list(self)
        i = 0
        while i < len(layers):
            layer = layers[i]
            follower = layers[i + 1] if i + 1 < len(layers) else None
            if (type(layer) in FUSABLE_LINEARS and type(follower) is nn.ReLU and not hooked(layer)
                    and not hooked(follower) and not hooked_globally()):
                x = linear(x, layer.weight, layer.bias, "relu")
                i += 2
            else:
                x = layer(x)
                i += 1
        return x
