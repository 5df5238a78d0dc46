"""Convolution then max-pooling by 2 (and ReLU), run on the CPU as one convolution over blocks of the input.

Every pooling window's 2 (1D) or 2x2 (2D) convolution outputs come from one block of the input
cut into 2-wide blocks (space-to-depth): a convolution over those blocks, with 2**dims filters
made from each original one, gives all of a window's outputs as channels of one position, and
the pooling becomes a maximum over channel groups. oneDNN runs this form faster where the
convolution reads few channels: the course image CNN trains ~15% (in bf16) and predicts ~12% faster,
the motif CNN trains ~9% faster (benchmarks/README.md). In 1D, a convolution with fewer than
GROUP_MIN_CHANNELS filters takes 4-wide blocks (two pooling windows each) under bf16 autocast: its
channel groups are then two windows' filters wide, and the compiled pooling passes run over wide
rows (20 filters: 1.9x faster forward, 2.1x backward on a Zen 5 EPYC; the motif CNN's bf16 training
step ~3% faster; in float32 the wider block convolution cost more than that: 2.5% slower).
Same parameters and state dict as nn.Sequential(conv, HalvingMaxPool); for finite inputs the same
values and gradients up to float rounding (the products are summed in another order). An inf or
NaN input element also meets the zero taps of the block filters (0 x inf is NaN), so it spreads to
neighbouring outputs that the layers would keep finite.
"""
from __future__ import annotations

import itertools
import math

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from common.conv_weight_grad import conv1xk
from common.hooks import hooked, hooked_globally
from common.memory_format import channels_last
from common.pooling import CompiledPooling, HalvingMaxPool, coded_max_of_views, is_compiling, max_of_views

# The blocks pay where the convolution reads few channels, measured with oneDNN on this 2-core
# EPYC (bf16): in training for 3, 4 and 20 channels (image CNN 15%, motif CNN 9%), not for 48
# (the multi-kernel CNN's second convolution trains 14% slower); at inference for 3 (image CNN 12%),
# not for 4 (motif CNN 1% slower) or 20.
BLOCKS_MAX_CHANNELS = {"training": 32, "inference": 3}
# The compiled group pooling passes ran ~2x slower per byte over rows of 16-24 channels than over
# rows of 32-80 (bf16, cache flushed, Zen 5 EPYC): narrower 1D filter banks take 4-wide blocks in bf16.
GROUP_MIN_CHANNELS = 32


def cpu_bf16_autocast() -> bool:
    """Return True inside CPU bf16 autocast."""
    return torch.is_autocast_enabled("cpu") and torch.get_autocast_dtype("cpu") == torch.bfloat16


def blocks_pay_in_training(dims: int) -> bool:
    """Return True where blocks train faster: 1D convolutions, and 2D ones only under CPU bf16 autocast.

    In float32, on a 2-core AVX2 EPYC without bf16 (session 13), the 2D block convolution trained
    18-27% slower than the direct one (image CNN's first two layers); 1D blocks still won there.
    """
    return dims == 1 or cpu_bf16_autocast()


def block_kernel(kernel_size: int, width: int) -> int:
    """Return how many `width`-wide input blocks the outputs of one block of a `kernel_size` convolution read."""
    return (width + kernel_size - 2) // width + 1


def space_to_depth(x: torch.Tensor, kernel_size: tuple[int, ...], widths: tuple[int, ...]) -> torch.Tensor:
    """Return x (N, C, *spatial) channels-fastest as blocks (N, prod(widths) * C, *blocks), channels-fastest.

    A block's channels are its elements in scan order, each with its C channels (offsets first,
    then channel). Only the blocks that pooled outputs of a `kernel_size` convolution read are
    kept: sizes lose their last rows or columns, or, where the blocks reach past the input, gain
    zero ones that meet only zero weights. 1D input is only reshaped (no copy); 2D (2x2 blocks
    only) interleaves row pairs in one copy.
    """
    n, c, *sizes = x.shape
    blocks = [(size - k + 1) // 2 * 2 // w + block_kernel(k, w) - 1 for size, k, w in zip(sizes, kernel_size, widths)]
    rows = x.movedim(1, -1)[(slice(None), *(slice(0, w * b) for w, b in zip(widths, blocks)))]
    missing = [max(w * b - size, 0) for w, b, size in zip(widths, blocks, sizes)]
    if any(missing):
        rows = F.pad(rows, [0, 0, *itertools.chain.from_iterable((0, m) for m in reversed(missing))])
    if len(sizes) == 1:
        return rows.reshape(n, blocks[0], widths[0] * c).movedim(-1, 1)
    pairs = rows.reshape(n, blocks[0], 2, blocks[1], 2 * c)
    return torch.cat([pairs[:, :, 0], pairs[:, :, 1]], dim=-1).movedim(-1, 1)


def block_offsets(widths: tuple[int, ...]) -> list[tuple[int, ...]]:
    """Return the output offsets inside a block, by pooling-window position (scan order), then by window."""
    offsets = itertools.product(*(range(w) for w in widths))
    return sorted(offsets, key=lambda o: (tuple(i % 2 for i in o), tuple(i // 2 for i in o)))


def blockwise_weight(weight: torch.Tensor, widths: tuple[int, ...]) -> torch.Tensor:
    """Return the filters (B * O, B * C, *block kernel) over blocks of B elements giving a (O, C, *k) convolution.

    Output channels come in groups, one per pooling-window position (scan order); a group holds
    the filters of every window in the block (scan order), each filter shifted to its output's
    offset inside zero-padded blocks. With 2-wide blocks a group is one window's O filters.
    """
    out_channels, in_channels, *kernel = weight.shape
    dims, kernels = len(kernel), [block_kernel(k, w) for k, w in zip(kernel, widths)]
    filters = []
    for offsets in block_offsets(widths):
        pads = [(offset, w * b - k - offset) for offset, w, b, k in zip(offsets, widths, kernels, kernel)]
        padded = F.pad(weight, list(itertools.chain.from_iterable(reversed(pads))))
        split = padded.reshape(out_channels, in_channels,
                               *itertools.chain.from_iterable((b, w) for b, w in zip(kernels, widths)))
        # (O, C, b1, w1, b2, w2) -> (O, w1, w2, C, b1, b2): block offsets, then channels, as space_to_depth orders them
        order = [0, *range(3, 2 * dims + 2, 2), 1, *range(2, 2 * dims + 1, 2)]
        filters.append(split.permute(order).reshape(out_channels, math.prod(widths) * in_channels, *kernels))
    return torch.cat(filters)


def coded_group_max(y: torch.Tensor, groups: int, relu: bool) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the maximum over `groups` equal channel groups of y (N, G*C, *spatial) and the group that gave it.

    Codes, ties and ReLU as coded_max_of_views; the code is channels-fastest (N, *spatial, C).
    """
    values, code = coded_max_of_views([group.movedim(1, -1) for group in y.chunk(groups, dim=1)], relu)
    return values.movedim(-1, 1), code


def write_group_gradients(out: torch.Tensor, grad: torch.Tensor, code: torch.Tensor) -> None:
    """Write into out (N, positions * G, C) each group's gradient per position: grad where the code names it, else 0.

    grad and code are (N, *spatial, C). `out` comes with its groups as rows so that the
    compiled pass runs over channels in vectors (flattened groups x channels it did not).
    """
    n, channels = len(grad), grad.shape[-1]
    groups = out.shape[1] * channels // grad[0].numel()
    group = torch.arange(groups, dtype=code.dtype, device=code.device).reshape(1, 1, groups, 1)
    chosen = code.reshape(n, -1, 1, channels) == group
    out.copy_(torch.where(chosen, grad.reshape(n, -1, 1, channels), 0).reshape(out.shape))


def pooled_positions(values: torch.Tensor, out_channels: int) -> torch.Tensor:
    """Return 1D group-pooled values (N, windows * O, blocks) as (N, O, blocks * windows); others as they are.

    Channels-fastest values are only viewed: a group holds its windows' filters in order.
    """
    if values.dim() != 3 or values.shape[1] == out_channels:
        return values
    n, _, blocks = values.shape
    return values.movedim(1, -1).reshape(n, -1, out_channels).movedim(-1, 1)


class GroupMaxPool(torch.autograd.Function):
    """Maximum over channel groups (and ReLU) with max-pooling's gradient: compiled passes, a compact saved code."""

    @staticmethod
    def forward(ctx, y: torch.Tensor, groups: int, relu: bool) -> torch.Tensor:
        """Return y's maximum over `groups` channel groups (ReLU'd if relu), saving which group gave it."""
        values, code = CompiledPooling.run(coded_group_max, y, groups, relu)
        ctx.save_for_backward(code)
        ctx.groups = groups
        return values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        """Return y's gradient (and None for groups and relu) from the saved code."""
        (code,) = ctx.saved_tensors
        n, channels, *spatial = grad.shape
        result = grad.new_empty((n, *spatial, ctx.groups * channels))
        args = result.view(n, -1, channels), channels_last(grad).movedim(1, -1), code
        try:
            CompiledPooling.run(write_group_gradients, *args)
        except Exception as error:  # compiling failed: the same function, uncompiled, gives the same gradient
            CompiledPooling.fail(error)
            write_group_gradients(*args)
        return result.movedim(-1, 1), None, None


class ConvMaxPool(nn.Sequential):
    """nn.Sequential(conv, HalvingMaxPool(relu)) that runs, on the CPU, as one convolution over blocks (see the module).

    The blocks are taken for channels-fastest CPU input to a 'valid', unstrided convolution that
    reads at most BLOCKS_MAX_CHANNELS channels: in training where the run pays back compiling the
    pooling (CompiledPooling) and blocks_pay_in_training, at inference without those conditions. Otherwise, or
    where a forward or backward hook watches the convolution or the pooling (a model summary,
    feature maps), the two layers run as they are.
    """

    def __init__(self, conv: nn.Conv1d | nn.Conv2d, relu: bool = True) -> None:
        dims = len(conv.kernel_size)
        super().__init__(conv, HalvingMaxPool(dims, relu=relu))
        self.dims = dims

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return conv(x) max-pooled by 2 (and ReLU'd where the pooling has relu)."""
        if not self.takes_blocks(x):
            return super().forward(x)
        conv, pool = self[0], self[1]
        if torch.is_autocast_enabled("cpu") and x.is_floating_point() and x.dtype != torch.float64:
            x = x.to(torch.get_autocast_dtype("cpu"))  # as autocast would, before the 2D block copy: half the bytes
        widths = self.block_widths(x)
        weight = channels_last(blockwise_weight(conv.weight, widths))
        bias = None if conv.bias is None else conv.bias.repeat(math.prod(widths))
        blocks = space_to_depth(x, conv.kernel_size, widths)
        if self.dims == 1:  # as ChannelsLastConv1d: a (1, k) Conv2d reads channels-fastest input in place
            y = conv1xk(blocks.unsqueeze(2), weight.unsqueeze(2), bias).squeeze(2)
        else:
            y = F.conv2d(blocks, weight, bias)
        if not torch.is_grad_enabled() or not y.requires_grad:
            return pooled_positions(max_of_views(list(y.chunk(2 ** self.dims, dim=1)), pool.relu), conv.out_channels)
        try:
            return pooled_positions(GroupMaxPool.apply(y, 2 ** self.dims, pool.relu), conv.out_channels)
        except Exception as error:  # compiling failed (no C++ compiler): the two layers from now on
            CompiledPooling.fail(error)
            return super().forward(x)

    def block_widths(self, x: torch.Tensor) -> tuple[int, ...]:
        """Return the blocks' width per spatial dimension: 4 for a 1D bank of few filters in bf16 (module), or 2."""
        conv = self[0]
        pooled = (x.shape[-1] - conv.kernel_size[0] + 1) // 2
        if self.dims == 1 and conv.out_channels < GROUP_MIN_CHANNELS and pooled % 2 == 0 and cpu_bf16_autocast():
            return (4,)
        return (2,) * self.dims

    def takes_blocks(self, x: torch.Tensor) -> bool:
        """Return True where this input runs as one convolution over blocks (see the class)."""
        conv = self[0]
        plain = (all(s == 1 for s in conv.stride) and all(d == 1 for d in conv.dilation) and conv.groups == 1
                 and conv.padding in ("valid", (0,) * self.dims) and conv.padding_mode == "zeros")
        if not (plain and x.device.type == "cpu" and x.dim() == self.dims + 2 and x.stride(1) == 1
                and all(size > k for size, k in zip(x.shape[2:], conv.kernel_size)) and not is_compiling()):
            return False
        if any(hooked(layer) for layer in self) or hooked_globally():
            return False
        if torch.is_grad_enabled() and (x.requires_grad or any(p.requires_grad for p in conv.parameters())):
            conv_sizes = [size - k + 1 for size, k in zip(x.shape[2:], conv.kernel_size)]
            outputs = len(x) * conv.out_channels * math.prod(conv_sizes)
            return (conv.in_channels <= BLOCKS_MAX_CHANNELS["training"] and blocks_pay_in_training(self.dims)
                    and CompiledPooling.pays_back(outputs))
        return conv.in_channels <= BLOCKS_MAX_CHANNELS["inference"]
