"""Backbones for one-hot DNA (N, 4, L): the course's motif CNN and a multi-kernel variant (Classifier adds the head)."""
from __future__ import annotations

from typing import Literal

import torch
from torch import nn

from common.blockwise import ConvMaxPool
from common.checkpoints import remember_init_args
from common.dropout import Dropout
from common.errors import DataError
from common.memory_format import ChannelsLastConv1d, FlattenLinear, cat_channels
from common.pooling import HalvingMaxPool

ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU}


def dense_block(channels: int, length: int, units: int, activation: str, dropout: float) -> nn.Sequential:
    """Return Flatten -> Dense(units) -> activation -> Dropout on (N, channels, length) features, the course's last layers.

    Flatten and Dense are one FlattenLinear (no copy of channels-fastest features); the Identity
    keeps the Dense at index 1, where checkpoints and keras imports name it (dense.1.weight).
    """
    return nn.Sequential(nn.Identity(), FlattenLinear(channels, length, units), ACTIVATIONS[activation](),
                         Dropout(dropout))


def check_length(x: torch.Tensor, length: int) -> None:
    """Raise DataError unless the windows x (N, 4, L) are `length` bp: the dense layer fixes the window length.

    Without the check, windows up to 3 bp longer pass unnoticed (pooling drops their last bases)
    and shorter ones fail as a matrix-shape error.
    """
    if x.shape[-1] != length:
        raise DataError(f"the windows are {x.shape[-1]} bp, but this model reads {length} bp windows: cut them to "
                        f"{length} bp, or build the model for {x.shape[-1]} bp (config: --model.backbone.init_args."
                        f"length {x.shape[-1]})")


def conv_relu_pool(in_channels: int, filters: int, kernel_size: int) -> ConvMaxPool:
    """Return Conv1d ('valid', as keras) -> MaxPool(2) + ReLU: keras' Conv1D(relu) -> MaxPool values, ReLU on half the elements.

    The ReLU runs inside the pooling's pass (HalvingMaxPool relu=True); on the CPU the block runs
    as one convolution over 2-bp blocks (ConvMaxPool): the course CNN trains ~9% faster.
    """
    return ConvMaxPool(ChannelsLastConv1d(in_channels, filters, kernel_size))


@remember_init_args
class CourseCNN(nn.Module):
    """The course's motif CNN: Conv1d 20@5 relu pool2, Conv1d 64@5 relu pool2, Flatten (3,008), Dense 100, Dropout.

    The keras original (modelCNNTF.h5) has no activation on Dense(100): `dense_activation`
    "linear" is exact, "relu" an option. Output features: `dense` (the Classifier adds the head).
    """

    takes_autocast_input = True  # windows go only into the first convolution, cast as autocast would (Classifier)

    def __init__(self, length: int = 200, filters: tuple[int, int] = (20, 64), kernel_size: int = 5, dense: int = 100,
                 dropout: float = 0.3, dense_activation: Literal["linear", "relu"] = "linear") -> None:
        super().__init__()
        self.features = nn.Sequential(conv_relu_pool(4, filters[0], kernel_size),
                                      conv_relu_pool(filters[0], filters[1], kernel_size))
        positions = ((length - kernel_size + 1) // 2 - kernel_size + 1) // 2
        self.flat_features = positions * filters[1]
        self.dense = dense_block(filters[1], positions, dense, dense_activation, dropout)
        self.out_features, self.length = dense, length

    @property
    def first_layer(self) -> nn.Conv1d:
        """The first convolution, whose filters scan the DNA directly."""
        return self.features[0][0]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return features (N, dense) of one-hot DNA (N, 4, L)."""
        check_length(x, self.length)
        return self.dense(self.features(x))


@remember_init_args
class MultiKernelCNN(nn.Module):
    """Parallel first convolutions of several widths, concatenated (the course's functional-API idea), then conv+dense.

    Each width k gets `filters_per_kernel` filters with 'same' padding, so the branches line up;
    then MaxPool(2) and ReLU, Conv1d 64@5 with max-pool 2 and ReLU, Flatten, Dense, Dropout.
    """

    takes_autocast_input = True  # windows go only into the first convolutions, which autocast casts them for

    def __init__(self, length: int = 200, kernel_sizes: tuple[int, ...] = (5, 9, 15), filters_per_kernel: int = 16,
                 second_filters: int = 64, dense: int = 100, dropout: float = 0.3,
                 dense_activation: Literal["linear", "relu"] = "relu") -> None:
        super().__init__()
        self.branches = nn.ModuleList(ChannelsLastConv1d(4, filters_per_kernel, k, padding=k // 2) for k in kernel_sizes)
        width = filters_per_kernel * len(kernel_sizes)
        # The Identity keeps the second convolution at index 2, where checkpoints name it (features.2.0.weight).
        self.features = nn.Sequential(HalvingMaxPool(1, relu=True), nn.Identity(), conv_relu_pool(width, second_filters, 5))
        positions = (length // 2 - 4) // 2
        self.flat_features = positions * second_filters
        self.dense = dense_block(second_filters, positions, dense, dense_activation, dropout)
        self.out_features, self.length = dense, length

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return features (N, dense) of one-hot DNA (N, 4, L)."""
        check_length(x, self.length)
        return self.dense(self.features(cat_channels([branch(x) for branch in self.branches])))
