"""Convolutions whose weight gradient is matrix products: PyTorch's gradients, taken only where measured to pay."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common.blockwise import ConvMaxPool
from common import conv_weight_grad
from common.conv_weight_grad import ProductGradConvTranspose2d, window_rows
from common.memory_format import ChannelsLastConv1d, channels_last
from common.pooling import CompiledPooling
from tests.common.test_blockwise import backward_nodes, integer_input, integer_layer

PRODUCTS = "ConvWeightGradByProductsBackward"


def integer_float32(layer: nn.Module) -> nn.Module:
    """Return `layer` in float32 with small integer weights and biases (test_blockwise's): every sum below is exact."""
    return integer_layer(layer).float()


def float32_input(shape: tuple[int, ...]) -> torch.Tensor:
    """Return channels-fastest float32 0s and 1s (test_blockwise's) that need a gradient."""
    return integer_input(shape, requires_grad=False).float().requires_grad_()


def gradients(function, conv: nn.Module, x: torch.Tensor) -> tuple[set[str], list[torch.Tensor]]:
    """Return function(x)'s backward node names, the output and the gradients of x, weight and bias."""
    x = x.detach().clone().requires_grad_()
    y = function(x)
    upstream = torch.randint(-3, 4, y.shape, generator=torch.Generator().manual_seed(1)).float()
    return backward_nodes(y), [y.detach(), *torch.autograd.grad(y, [x, conv.weight, conv.bias], upstream)]


def test_the_product_gives_pytorchs_values_and_gradients_exactly():
    """64 filters in float32: the product path is taken, and with exact sums every value is nn.Conv1d's."""
    conv = integer_float32(ChannelsLastConv1d(20, 64, 5))
    x = float32_input((6, 20, 37))
    nodes, got = gradients(conv, conv, x)
    _, expected = gradients(lambda t: F.conv1d(t, conv.weight, conv.bias), conv, x)
    assert PRODUCTS in nodes
    for value, wanted in zip(got, expected):
        assert value.shape == wanted.shape and torch.equal(value, wanted)


def test_window_rows_of_an_input_cut_from_longer_sequences():
    """Sequences cut short, from the second on (an offset, batch stride > L * C): each window of its own positions."""
    longer = channels_last(torch.arange(3 * 3 * 9, dtype=torch.float32).reshape(3, 3, 9))
    x = longer[1:, :, :6].unsqueeze(2)
    rows = window_rows(x, 2, 5)
    windows = torch.stack([x[n, :, 0, p:p + 2].t().reshape(-1) for n in range(2) for p in range(5)])
    assert torch.equal(rows, windows)


@pytest.mark.usefixtures("cxx_compiler")
def test_the_motif_block_convolution_trains_through_the_product_with_the_layers_gradients(monkeypatch):
    """ConvMaxPool's 1D block convolution (128 block filters from 64) takes the product; gradients stay the layers'."""
    monkeypatch.setattr(CompiledPooling, "training_steps", math.inf)
    monkeypatch.setattr(CompiledPooling, "failure", None)
    block = ConvMaxPool(integer_float32(ChannelsLastConv1d(20, 64, 5)))
    x = float32_input((4, 20, 60))
    nodes, got = gradients(block, block[0], x)
    assert {PRODUCTS, "GroupMaxPoolBackward"} <= nodes
    _, expected = gradients(lambda t: F.relu(F.max_pool1d(F.conv1d(t, block[0].weight, block[0].bias), 2)),
                            block[0], x)
    for value, wanted in zip(got, expected):
        assert torch.equal(value, wanted)


@pytest.mark.parametrize("case", ["16 filters", "float64", "bf16 autocast", "no gradient", "padded", "strided"])
def test_the_product_is_taken_only_where_it_was_measured_to_pay(case):
    """Fewer than 64 filters, other dtypes, autocast, inference and padded or strided convolutions keep PyTorch's."""
    conv = integer_float32(ChannelsLastConv1d(20, 16 if case == "16 filters" else 64, 5,
                                              padding=2 if case == "padded" else 0,
                                              stride=2 if case == "strided" else 1))
    x = float32_input((2, 20, 30))
    if case == "float64":
        conv, x = conv.double(), x.double()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "bf16 autocast"), \
            torch.set_grad_enabled(case != "no gradient"):
        y = conv(x)
    assert PRODUCTS not in backward_nodes(y)
    with torch.no_grad():
        assert torch.allclose(y.float(), F.conv1d(x.float(), conv.weight.float(), conv.bias.float(), conv.stride,
                                                  conv.padding), atol=0.1)


def test_the_transposed_tap_products_give_pytorchs_values_and_gradients_exactly(monkeypatch):
    """64 -> 64 channels-last in float32, chunks that end mid-row: taken, and every value is nn.ConvTranspose2d's."""
    monkeypatch.setattr(conv_weight_grad, "TAP_CHUNK_ROWS", 7)
    conv = integer_float32(ProductGradConvTranspose2d(64, 64, (3, 2)))
    reference = nn.ConvTranspose2d(64, 64, (3, 2))
    reference.load_state_dict(conv.state_dict())
    x = float32_input((3, 64, 5, 4))
    nodes, got = gradients(conv, conv, x)
    _, expected = gradients(reference, reference, x)
    assert PRODUCTS in nodes
    for value, wanted in zip(got, expected):
        assert value.shape == wanted.shape and torch.equal(value, wanted)


@pytest.mark.parametrize("case", ["20 input channels", "20 output channels", "channels first", "padded", "strided",
                                  "output size", "no gradient", "bf16 autocast"])
def test_the_transposed_tap_products_are_taken_only_where_they_pay(case):
    """Fewer channels, channels-first input, padding, stride, an output size, inference and autocast keep PyTorch's."""
    conv = integer_float32(ProductGradConvTranspose2d(20 if case == "20 input channels" else 64,
                                                      20 if case == "20 output channels" else 64, 3,
                                                      padding=1 if case == "padded" else 0,
                                                      stride=2 if case == "strided" else 1))
    x = float32_input((2, conv.in_channels, 6, 5))
    if case == "channels first":
        x = x.detach().contiguous().requires_grad_()
    output_size = [8, 7] if case == "output size" else None  # the size it has anyway
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=case == "bf16 autocast"), \
            torch.set_grad_enabled(case != "no gradient"):
        y = conv(x, output_size)
    assert PRODUCTS not in backward_nodes(y)
    with torch.no_grad():
        expected = F.conv_transpose2d(x, conv.weight, conv.bias, conv.stride, conv.padding)
    assert torch.allclose(y.float(), expected, atol=0.5)


BIAS_BY_SUM = "ConvTransposeBiasGradBySumBackward"


@pytest.mark.parametrize("layout", ["channels last", "channels first"])
def test_a_transposed_convolution_off_the_products_sums_its_bias_gradient_with_pytorchs_values(layout):
    """20 -> 20 (no products): the bias gradient is summed apart; with exact sums, every value is PyTorch's layer's."""
    conv = integer_float32(ProductGradConvTranspose2d(20, 20, 3))
    reference = nn.ConvTranspose2d(20, 20, 3)
    reference.load_state_dict(conv.state_dict())
    x = float32_input((3, 20, 6, 5))
    if layout == "channels first":
        x = x.detach().contiguous().requires_grad_()
    nodes, got = gradients(conv, conv, x)
    _, expected = gradients(reference, reference, x)
    assert BIAS_BY_SUM in nodes and PRODUCTS not in nodes
    for value, wanted in zip(got, expected):
        assert value.shape == wanted.shape and torch.equal(value, wanted)


def test_under_bf16_autocast_the_bias_sum_trains_as_autocast_and_its_layer_would():
    conv = ProductGradConvTranspose2d(64, 20, 3)
    reference = nn.ConvTranspose2d(64, 20, 3)
    reference.load_state_dict(conv.state_dict())
    x = channels_last(torch.rand(2, 64, 7, 6)).requires_grad_()
    results = []
    for layer in (conv, reference):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            y = layer(x)
        results.append((y, *torch.autograd.grad(y.float().square().sum(), [x, layer.weight, layer.bias])))
    assert BIAS_BY_SUM in backward_nodes(results[0][0]) and results[0][0].dtype == torch.bfloat16
    for value, wanted in zip(*results):
        assert value.dtype == wanted.dtype and torch.allclose(value.float(), wanted.float(), rtol=0.02, atol=0.05)


@pytest.mark.parametrize("case", ["no bias", "padded", "strided", "output size", "no gradient"])
def test_the_bias_sum_is_taken_only_for_plain_trained_layers_with_a_bias(case):
    conv = integer_float32(ProductGradConvTranspose2d(20, 20, 3, bias=case != "no bias", padding=int(case == "padded"),
                                                      stride=2 if case == "strided" else 1))
    x = float32_input((2, 20, 6, 5))
    with torch.set_grad_enabled(case != "no gradient"):
        y = conv(x, [8, 7] if case == "output size" else None)
    assert BIAS_BY_SUM not in backward_nodes(y)
    with torch.no_grad():
        assert torch.allclose(y, F.conv_transpose2d(x, conv.weight, conv.bias, conv.stride, conv.padding))
