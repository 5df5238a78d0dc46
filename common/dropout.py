"""Dropout whose CPU training mask is drawn with torch.rand where torch's bernoulli_ draws one value at a time."""
from __future__ import annotations

import functools

import torch
from torch import nn

from common.cpu_linear import cpu_vendor


@functools.cache
def serial_bernoulli() -> bool:
    """Return True where torch's CPU bernoulli_(p) runs value by value: its parallel MKL sampler serves Intel only."""
    return cpu_vendor() != "GenuineIntel" or not torch.backends.mkl.is_available()


class Dropout(nn.Dropout):
    """nn.Dropout (same arguments, no state) whose CPU training mask comes from torch.rand where bernoulli_ is serial.

    nn.Dropout's mask is torch's bernoulli_, which on AMD CPUs draws value by value: 0.65 ms for
    the motif CNN's 100,000 dense outputs against 0.22 ms for torch.rand (Zen 5 EPYC), ~3% of a
    bf16 training step. Here a value is kept where a uniform draw is >= p (probability 1 - p, to
    float32's 2**-24) and scaled by 1 / (1 - p) in its own dtype, as nn.Dropout scales it; the
    random stream is another than nn.Dropout's (a seed still fixes every mask). Elsewhere, in
    place, at p 0 or 1 and in evaluation it is nn.Dropout.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x with a random share p of its values zeroed and the rest scaled by 1 / (1 - p) (training only)."""
        if not (self.training and 0 < self.p < 1 and not self.inplace and x.device.type == "cpu"
                and x.is_floating_point() and serial_bernoulli()):
            return super().forward(x)
        keep = torch.rand(x.shape, device=x.device) >= self.p
        return x * keep.to(x.dtype).div_(1 - self.p)
