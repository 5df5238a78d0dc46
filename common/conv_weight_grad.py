"""Convolutions whose weight gradient is computed by matrix products, on CPUs where oneDNN's float32 one is slow.

On a 2-core AVX2 EPYC without bf16 (sessions 13-14) oneDNN's float32 weight gradients ran at a
third to a half of its forward speed. Here they are BLAS matrix products, as the dense layers':
- 1D ((1, k) Conv2d on channels-fastest input): each output position's input window copied into
  one row (the windows overlap: k times the input) and multiplied by the output gradient, in one
  product. The motif CNN's second (block) convolution: 33 -> 18 ms a batch of 1,000 windows.
- 2D transposed ((N, C, H, W) channels-last, the autoencoder's 64 -> 64 layer): a window copy
  would be 25 times the input, so each of the k x k taps is one product of the flattened input,
  placed on the output grid, with the output gradient shifted by that tap (1.4-1.8 s -> 1.0 s a
  batch of 32).
Whole training steps with and without: benchmarks/results/weight_grad_cpu.md.
The forward pass and the input gradient stay oneDNN's. Only where it measured faster: CPU float32
outside autocast, unpadded, unstrided convolutions with at least 64 filters (1D: with 16 or 32 the
long, thin product was slower than oneDNN) or 64 input and output channels (2D: with 20 on either
side the taps' products were slower).
Transposed convolutions that do not take the products still train with their bias gradient
computed apart, as a sum: oneDNN's, with its bf16 weight gradient, cost more than that gradient.
"""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

MIN_CHANNELS = 64  # 1D: filters; 2D transposed: input and output channels
TAP_CHUNK_ROWS = 16384  # rows per product of a tap: a chunk's rows are reread from cache by the k x k taps


def window_rows(x: torch.Tensor, kernel_size: int, out_length: int) -> torch.Tensor:
    """Return (N * out_length, kernel_size * C) rows: each output position's input window, taps then channels.

    x is (N, C, 1, L) with channels varying fastest along L (stride C), as oneDNN reads it.
    """
    n, channels = x.shape[0], x.shape[1]
    windows = x.as_strided((n, out_length, kernel_size * channels), (x.stride(0), channels, 1))
    return windows.reshape(n * out_length, kernel_size * channels)


def window_product_weight_grad(rows: torch.Tensor, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Return a (1, k) convolution's weight gradient (O, C, 1, k) from output-gradient rows (N * L_out, O) and x."""
    out_channels, in_channels, _, kernel_size = weight.shape
    product = rows.t() @ window_rows(x, kernel_size, len(rows) // len(x))  # (O, k * C)
    # (O, k, C) memory is the channels-fastest (O, C, 1, k) weight layout
    return product.view(out_channels, 1, kernel_size, in_channels).permute(0, 3, 1, 2)


def float32_training(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Return True where a CPU float32 weight gradient is wanted outside autocast and compiling."""
    return (torch.is_grad_enabled() and weight.requires_grad and x.device.type == "cpu"
            and x.dtype == weight.dtype == torch.float32 and (bias is None or bias.dtype == torch.float32)
            and not torch.is_autocast_enabled("cpu") and not torch.compiler.is_compiling())


def product_pays(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> bool:
    """Return True where ConvWeightGradByProducts trains this (1, k) convolution faster (see the module)."""
    return (float32_training(x, weight, bias) and x.dim() == 4 and x.shape[2] == 1 and weight.shape[2] == 1
            and x.stride(1) == 1 and x.stride(3) == x.shape[1] and x.shape[3] >= weight.shape[3]
            and weight.shape[0] >= MIN_CHANNELS)


def conv1xk(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
    """Return F.conv2d(x, weight, bias) ('valid', unstrided) of (N, C, 1, L) x; weight gradient as product_pays says."""
    if product_pays(x, weight, bias):
        return ConvWeightGradByProducts.apply(x, weight, bias, False)
    return F.conv2d(x, weight, bias)


def shifted_tap_products(a: torch.Tensor, b: torch.Tensor, row_width: int,
                         kernel_size: tuple[int, int]) -> torch.Tensor:
    """Return (kh, kw, A, B): for every tap (i, j), the sum over rows r of a[r]^T b[r + i * row_width + j].

    a (R, A) and b (R, B) are rows of one flattened channels-last grid `row_width` wide; rows past
    the end are taken as zero. Chunks of rows go through all taps while they are in cache.
    """
    rows = len(a)
    out = a.new_zeros(*kernel_size, a.shape[1], b.shape[1])
    for start in range(0, rows, TAP_CHUNK_ROWS):
        for i in range(kernel_size[0]):
            for j in range(kernel_size[1]):
                shift = i * row_width + j
                stop = min(start + TAP_CHUNK_ROWS, rows - shift)
                if stop > start:
                    out[i, j].addmm_(a[start:stop].t(), b[start + shift:stop + shift])
    return out


def on_grid(x: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """Return channels-last x (N, C, h, w) as rows (N * height * width, C) of a larger grid, zero outside x."""
    n, channels, h, w = x.shape
    grid = x.new_empty(n, height, width, channels)
    grid[:, h:].zero_()
    grid[:, :h, w:].zero_()
    grid[:, :h, :w] = x.permute(0, 2, 3, 1)
    return grid.view(-1, channels)


def tap_products_weight_grad(rows: torch.Tensor, x: torch.Tensor, weight: torch.Tensor,
                              grid: tuple[int, int]) -> torch.Tensor:
    """Return a transposed convolution's weight gradient (C_in, C_out, kh, kw) from output-gradient rows on `grid`."""
    # output (h + i, w + j) gets input (h, w) through tap (i, j): the input on the output's grid, shifted
    taps = shifted_tap_products(on_grid(x, *grid), rows, grid[1], tuple(weight.shape[2:]))
    return taps.permute(2, 3, 0, 1)


def onednn_gradients(grad: torch.Tensor, x: torch.Tensor, weight: torch.Tensor, transposed: bool,
                     wanted: tuple[bool, bool]) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    """Return the wanted (input, weight) gradients of an unstrided, unpadded (transposed) convolution, by oneDNN."""
    grad_x, grad_weight, _ = torch.ops.aten.convolution_backward(grad, x, weight, None, [1, 1], [0, 0], [1, 1],
                                                                 transposed, [0, 0], 1, [*wanted, False])
    return grad_x, grad_weight


class ConvWeightGradByProducts(torch.autograd.Function):
    """F.conv2d (1, k) or F.conv_transpose2d (2D) of channels-last x, unstrided, unpadded; weight gradient by products.

    Forward and input gradient are oneDNN's; the weight gradient is window_product_weight_grad for
    a convolution, tap_products_weight_grad for a transposed one.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None,
                transposed: bool) -> torch.Tensor:
        """Return the convolution (or the transposed one) through oneDNN, saving x and weight."""
        ctx.save_for_backward(x, weight)
        ctx.has_bias, ctx.transposed = bias is not None, transposed
        return (F.conv_transpose2d if transposed else F.conv2d)(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        """Return the gradients of x (oneDNN), weight (products) and bias (and None for `transposed`)."""
        x, weight = ctx.saved_tensors
        grad_x = grad_weight = grad_bias = None
        if ctx.needs_input_grad[0]:
            grad_x = onednn_gradients(grad, x, weight, ctx.transposed, (True, False))[0]
        rows = grad.permute(0, 2, 3, 1).reshape(-1, grad.shape[1])  # a view where grad is channels-last
        if ctx.needs_input_grad[1]:
            grad_weight = (tap_products_weight_grad(rows, x, weight, tuple(grad.shape[2:])) if ctx.transposed
                           else window_product_weight_grad(rows, x, weight))
        if ctx.has_bias and ctx.needs_input_grad[2]:
            grad_bias = rows.sum(0)
        return grad_x, grad_weight, grad_bias, None


class ConvTransposeBiasGradBySum(torch.autograd.Function):
    """F.conv_transpose2d of x, unstrided, unpadded, whose bias gradient is a sum over the output gradient.

    oneDNN's bias gradient, computed with its bf16 weight gradient, cost more than that weight
    gradient (the autoencoder's 64 -> 64 layer, a batch of 32 frames on a Zen 5 EPYC: 254 ms for its
    backward, 171 ms with the bias summed apart; each 20-filter layer ~10 ms less). Input and weight
    gradients stay oneDNN's. Under CPU autocast the inputs are cast as autocast would cast them.
    """

    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        """Return the transposed convolution through oneDNN, saving x and weight (in the autocast dtype, if any)."""
        if torch.is_autocast_enabled("cpu") and x.dtype != torch.float64:
            dtype = torch.get_autocast_dtype("cpu")
            x, weight, bias = x.to(dtype), weight.to(dtype), bias.to(dtype)
        ctx.save_for_backward(x, weight)
        return F.conv_transpose2d(x, weight, bias)

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        """Return the gradients of x and weight (oneDNN, one call) and of the bias (a sum)."""
        x, weight = ctx.saved_tensors
        grad_x, grad_weight = onednn_gradients(grad, x, weight, True, ctx.needs_input_grad[:2])
        return grad_x, grad_weight, grad.sum((0, 2, 3)) if ctx.needs_input_grad[2] else None


class ProductGradConvTranspose2d(nn.ConvTranspose2d):
    """nn.ConvTranspose2d (same parameters and state dict) whose CPU training computes gradients apart where that pays.

    The weight gradient is tap products where they pay (ConvWeightGradByProducts); otherwise, with a
    bias, the bias gradient is a sum (ConvTransposeBiasGradBySum). Unstrided, unpadded layers only.
    """

    def forward(self, x: torch.Tensor, output_size: list[int] | None = None) -> torch.Tensor:
        """Return the transposed convolution of x (N, C, H, W)."""
        if output_size is None and self.plain() and self.trains_on_cpu(x):
            if self.products_pay(x):
                return ConvWeightGradByProducts.apply(x, self.weight, self.bias, True)
            if self.bias is not None:
                return ConvTransposeBiasGradBySum.apply(x, self.weight, self.bias)
        return super().forward(x, output_size)

    def plain(self) -> bool:
        """Return True for an unstrided, unpadded, undilated, ungrouped layer."""
        return (self.stride == (1, 1) and self.padding == (0, 0) and self.output_padding == (0, 0)
                and self.dilation == (1, 1) and self.groups == 1 and self.padding_mode == "zeros")

    def trains_on_cpu(self, x: torch.Tensor) -> bool:
        """Return True where a gradient is wanted for a 4D CPU input, outside torch.compile."""
        return (torch.is_grad_enabled() and x.device.type == "cpu" and x.dim() == 4 and x.is_floating_point()
                and (x.requires_grad or any(p.requires_grad for p in self.parameters()))
                and not torch.compiler.is_compiling())

    def products_pay(self, x: torch.Tensor) -> bool:
        """Return True where the weight gradient by tap products trains faster (see the module)."""
        return (min(self.in_channels, self.out_channels) >= MIN_CHANNELS
                and x.is_contiguous(memory_format=torch.channels_last) and float32_training(x, self.weight, self.bias))
