"""Memory layouts that make convolutions fast on CPU: channels_last for 2D, and its 1D analogue for DNA."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from common.conv_weight_grad import conv1xk
from common.cpu_linear import linear


def channels_last(x: torch.Tensor) -> torch.Tensor:
    """Return x with channels varying fastest: NHWC strides for (N, C, H, W), NLC strides for (N, C, L).

    Shape and values are unchanged; oneDNN runs convolutions on such inputs without reordering
    (1D: Conv1d runs as a (1, k) Conv2d, which then sees an NHWC tensor). Other ranks pass through.
    """
    if x.dim() == 4:
        return x.contiguous(memory_format=torch.channels_last)
    if x.dim() == 3 and x.stride(1) != 1:
        return x.transpose(1, 2).contiguous().transpose(1, 2)
    return x


def convolutions_to_channels_last(module: nn.Module) -> nn.Module:
    """Put the weights of every 2D and 1D convolution of `module` in the channels-fastest layout, in place."""
    module.to(memory_format=torch.channels_last)
    for layer in module.modules():
        if isinstance(layer, nn.Conv1d):
            layer.weight.data = channels_last(layer.weight.data)
    return module


def cat_channels(tensors: list[torch.Tensor]) -> torch.Tensor:
    """Return tensors (N, C_i, ...) concatenated along channels, channels-fastest if the first one is.

    torch.cat gives (N, C, L) outputs the channels-first layout whatever its inputs; after it,
    1D max-pooling and the next convolution ran on channels-first data (the multi-kernel motif
    CNN's first pooling took 27 ms a batch instead of ~3). Concatenating the (N, L, C) views keeps it.
    """
    if tensors[0].dim() == 3 and tensors[0].stride(1) == 1:
        return torch.cat([t.transpose(1, 2) for t in tensors], dim=2).transpose(1, 2)
    return torch.cat(tensors, dim=1)


class ChannelsLastConv1d(nn.Conv1d):
    """nn.Conv1d (same parameters) that runs a channels-fastest (N, C, L) input as a (1, k) Conv2d, without copies.

    PyTorch's Conv1d makes such an input channels-first before its own (1, k) Conv2d and oneDNN
    then makes it channels-last again: two copies of every activation. Same values; the motif
    CNN predicts ~13% faster, the multi-kernel CNN ~25% (benchmarks/README.md). Unpadded,
    unstrided ones train their weight gradient as conv1xk says (common/conv_weight_grad.py).
    Other inputs run through nn.Conv1d unchanged.
    """

    def _conv_forward(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
        if x.dim() != 3 or x.stride(1) != 1 or self.padding_mode != "zeros":
            return super()._conv_forward(x, weight, bias)
        if self.padding in ("valid", (0,)) and self.stride == (1,) and self.dilation == (1,) and self.groups == 1:
            return conv1xk(x.unsqueeze(2), weight.unsqueeze(2), bias).squeeze(2)
        padding = self.padding if isinstance(self.padding, str) else (0, self.padding[0])
        return F.conv2d(x.unsqueeze(2), weight.unsqueeze(2), bias, (1, self.stride[0]), padding,
                        (1, self.dilation[0]), self.groups).squeeze(2)


class FlattenLinear(nn.Linear):
    """nn.Flatten then nn.Linear on (N, C, L) features, in Flatten's channels-first order, whatever their layout.

    On channels-fastest (N, L, C) memory, flattening copies the features and then trains the
    ReLU before it against a gradient in the other layout (~4 ms a batch of 1,000 DNA windows).
    This reads them in place: the weight's columns, (C, L) as nn.Linear keeps them, are reordered
    instead. Same parameters and state dict as nn.Linear(C * L, out_features); same values
    (float rounding aside): the motif CNN trains ~17% faster.
    """

    def __init__(self, channels: int, length: int, out_features: int, bias: bool = True) -> None:
        super().__init__(channels * length, out_features, bias)
        self.channels, self.length = channels, length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return (N, out_features) for features (N, C, L)."""
        if x.dim() == 3 and x.stride(1) == 1 and x.shape[1] > 1:
            weight = self.weight.view(-1, self.channels, self.length).transpose(1, 2).reshape(self.out_features, -1)
            return linear(x.transpose(1, 2).reshape(len(x), -1), weight, self.bias)
        return linear(x.flatten(1), self.weight, self.bias)
