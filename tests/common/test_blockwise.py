"""ConvMaxPool: the convolution over blocks gives the layers' values and gradients, and runs only where it should."""
from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from common import blockwise
from common.blockwise import ConvMaxPool, coded_group_max, write_group_gradients
from common.memory_format import ChannelsLastConv1d, channels_last
from common.pooling import CompiledPooling
from common.summary import summarize


def integer_layer(conv: nn.Module) -> nn.Module:
    """Give conv small integer weights and biases in float64, so that every sum is exact and windows hold ties."""
    generator = torch.Generator().manual_seed(2)
    with torch.no_grad():
        for parameter in conv.parameters():
            parameter.copy_(torch.randint(-2, 3, parameter.shape, generator=generator))
    return conv.double()


def integer_input(shape: tuple[int, ...], requires_grad: bool = True) -> torch.Tensor:
    """Return channels-fastest float64 input of 0s and 1s (one-hot-like: many equal sums, many ties)."""
    x = channels_last(torch.randint(0, 2, shape, generator=torch.Generator().manual_seed(0)).double())
    return x.requires_grad_(requires_grad)


def backward_nodes(y: torch.Tensor) -> set[str]:
    """Return the names of every node of y's backward graph."""
    seen, todo = set(), [y.grad_fn]
    while todo:
        node = todo.pop()
        if node is not None and node not in seen:
            seen.add(node)
            todo += [parent for parent, _ in node.next_functions]
    return {type(node).__name__ for node in seen}


def layers(block: ConvMaxPool) -> nn.Sequential:
    """Return the same conv and pooling as plain layers: PyTorch's convolution, max-pooling and ReLU."""
    pool = F.max_pool1d if block.dims == 1 else F.max_pool2d
    return lambda x: (F.relu if block[1].relu else (lambda y: y))(pool(block[0](x), 2))


def outputs_and_gradients(function, block: ConvMaxPool, x: torch.Tensor) -> list[torch.Tensor]:
    """Return function(x) and the gradients of x, the weight and the bias for a fixed integer upstream gradient."""
    x = x.detach().clone().requires_grad_()
    y = function(x)
    upstream = torch.randint(-3, 4, y.shape, generator=torch.Generator().manual_seed(1)).to(y.dtype)
    return [y.detach(), *torch.autograd.grad(y, [x, block[0].weight, block[0].bias], upstream)]


CASES = [  # (conv, input shape): odd and even sizes, kernels of odd and even width, 1D and 2D
    (lambda: ChannelsLastConv1d(4, 6, 5), (3, 4, 200)),  # 1D: 4-wide blocks (few filters, even pooled length) ...
    (lambda: ChannelsLastConv1d(5, 7, 4), (2, 5, 15)),  # ... reaching past the input
    (lambda: ChannelsLastConv1d(4, 6, 3), (2, 4, 13)),  # 2-wide: odd pooled length
    (lambda: ChannelsLastConv1d(3, 32, 3), (2, 3, 18)),  # 2-wide: as many filters as GROUP_MIN_CHANNELS
    (lambda: nn.Conv2d(3, 5, 5), (2, 3, 18, 21)),
    (lambda: nn.Conv2d(4, 6, 3), (2, 4, 11, 10)),
]


@pytest.mark.usefixtures("cxx_compiler")
@pytest.mark.parametrize("case", CASES)
@pytest.mark.parametrize("relu", [True, False])
def test_training_through_blocks_gives_the_layers_values_and_gradients(case, relu, monkeypatch):
    """Compiled for real: with exact sums and ties everywhere, values and all three gradients are PyTorch's."""
    monkeypatch.setattr(CompiledPooling, "training_steps", math.inf)
    monkeypatch.setattr(blockwise, "cpu_bf16_autocast", lambda: True)  # 2D blocks and 4-wide 1D ones in float64 too
    monkeypatch.setattr(CompiledPooling, "failure", None)
    conv, shape = case
    block = ConvMaxPool(integer_layer(conv()), relu=relu)
    x = integer_input(shape)
    assert "GroupMaxPoolBackward" in backward_nodes(block(x))
    got, expected = outputs_and_gradients(block, block, x), outputs_and_gradients(layers(block), block, x)
    for value, reference in zip(got, expected):
        assert torch.equal(value, reference)
    assert CompiledPooling.failure is None


@pytest.mark.parametrize("case", CASES)
def test_prediction_through_blocks_gives_the_layers_values(case, monkeypatch):
    """At inference the blocks are taken without compiling (here for every channel count, to test each shape)."""
    monkeypatch.setitem(blockwise.BLOCKS_MAX_CHANNELS, "inference", 8)
    monkeypatch.setattr(blockwise, "cpu_bf16_autocast", lambda: True)  # 4-wide 1D blocks in float64 too
    conv, shape = case
    block = ConvMaxPool(integer_layer(conv()))
    x = integer_input(shape, requires_grad=False)
    with torch.no_grad():
        assert block.takes_blocks(x)
        assert torch.equal(block(x), layers(block)(x))


def test_the_group_pooling_functions_resolve_ties_zeros_and_nan_as_max_pool():
    """The functions GroupMaxPool compiles, run as they are, against max-pooling of the same windows in space."""
    windows = torch.randint(-2, 3, (2, 3, 10), generator=torch.Generator().manual_seed(0)).float()
    windows[0, 0, :2] = float("nan")  # NaN first and second in two windows
    windows[1, 2, 3] = float("nan")
    windows = windows.requires_grad_()
    expected = F.relu(F.max_pool1d(windows, 2))  # windows of 2 along the length
    groups = torch.cat([windows[:, :, 0::2], windows[:, :, 1::2]], dim=1)  # the same windows as 2 channel groups
    values, code = coded_group_max(channels_last(groups), 2, relu=True)
    assert torch.equal(values.isnan(), expected.isnan()) and torch.equal(values.nan_to_num(), expected.nan_to_num())
    upstream = torch.randn(expected.shape, generator=torch.Generator().manual_seed(1))
    (expected_grad,) = torch.autograd.grad(expected, windows, upstream)
    out = torch.empty(2, 5 * 2, 3)
    write_group_gradients(out, channels_last(upstream).movedim(1, -1), code)
    grad = out.view(2, 5, 2 * 3).movedim(-1, 1)  # (N, groups * C, positions)
    assert torch.equal(grad[:, :3], expected_grad[:, :, 0::2]) and torch.equal(grad[:, 3:], expected_grad[:, :, 1::2])


def test_a_group_pooling_backward_that_fails_to_compile_still_gives_the_layers_gradients(failing_compile):
    failing_compile(blockwise.write_group_gradients)
    block = ConvMaxPool(integer_layer(ChannelsLastConv1d(3, 4, 3)))  # 1D: blocks train in float64 too
    x = integer_input((2, 3, 19))
    with pytest.warns(RuntimeWarning, match="compile error"):
        got = outputs_and_gradients(block, block, x)
    for value, reference in zip(got, outputs_and_gradients(layers(block), block, x)):
        assert torch.equal(value, reference)


def test_blocks_are_taken_only_where_they_pay_and_nothing_watches_the_layers(monkeypatch):
    block = ConvMaxPool(nn.Conv2d(3, 8, 5))
    frames = channels_last(torch.rand(2, 3, 20, 24))
    with torch.no_grad():
        assert block.takes_blocks(frames)
        assert not block.takes_blocks(frames.contiguous())  # channels-first: the layers
        assert not ConvMaxPool(nn.Conv2d(4, 8, 5)).takes_blocks(channels_last(torch.rand(2, 4, 20, 24)))
        assert not ConvMaxPool(nn.Conv2d(3, 8, 5, stride=2)).takes_blocks(frames)
        assert not ConvMaxPool(nn.Conv2d(3, 8, 5, padding=2)).takes_blocks(frames)
        assert not block.takes_blocks(frames[:, :, :5])  # no pooled output
    assert CompiledPooling.training_steps == 0 and not block.takes_blocks(frames)  # training outside a long run
    monkeypatch.setattr(CompiledPooling, "training_steps", math.inf)
    assert not block.takes_blocks(frames)  # 2D in float32: the direct convolution trains faster
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert block.takes_blocks(frames)
    assert ConvMaxPool(ChannelsLastConv1d(4, 8, 5)).takes_blocks(channels_last(torch.rand(2, 4, 30)))  # 1D: any dtype
    assert not ConvMaxPool(ChannelsLastConv1d(48, 64, 5)).takes_blocks(channels_last(torch.rand(2, 48, 30)))
    seen = []
    handle = block[0].register_forward_hook(lambda module, inputs, output: seen.append(output.shape))
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert not block.takes_blocks(frames)
        block(frames)
    handle.remove()
    assert seen == [(2, 8, 16, 20)]  # a hook on the convolution sees its whole output



def test_a_1d_bank_of_few_filters_takes_4_wide_blocks_where_the_pooled_length_is_even():
    """In bf16 the motif CNN's 20 filters (pooled 98) take 4-wide blocks; its 64, odd lengths and float32: 2-wide."""
    from motifs.models import CourseCNN

    first, second = CourseCNN().features
    windows = channels_last(torch.rand(2, 4, 200))
    assert first.block_widths(windows) == (2,)  # float32
    with torch.autocast("cpu", dtype=torch.bfloat16):
        assert first.block_widths(windows) == (4,)
        assert first.block_widths(channels_last(torch.rand(2, 4, 198))) == (2,)  # 97 pooled positions
        assert second.block_widths(channels_last(torch.rand(2, 20, 98))) == (2,)
        assert ConvMaxPool(nn.Conv2d(3, 8, 5)).block_widths(torch.rand(2, 3, 20, 24)) == (2, 2)


def test_a_backward_hook_and_a_trainable_bias_keep_the_layers(monkeypatch):
    """A backward hook fires as on the layers; a bias-only fine-tune outside a long run compiles nothing."""
    block = ConvMaxPool(nn.Conv2d(3, 4, 3))
    frames = channels_last(torch.rand(2, 3, 9, 8))
    block[0].weight.requires_grad_(False)  # only the bias trains: still training, so no compiling at steps 0
    assert type(block(frames).grad_fn).__name__ != "GroupMaxPoolBackward" and not block.takes_blocks(frames)
    block[0].weight.requires_grad_(True)
    monkeypatch.setattr(CompiledPooling, "training_steps", math.inf)
    fired = []
    handle = block[0].register_full_backward_hook(lambda module, grad_in, grad_out: fired.append(module))
    with torch.autocast("cpu", dtype=torch.bfloat16):  # where blocks would otherwise train
        assert not block.takes_blocks(frames)
        block(frames.requires_grad_()).sum().backward()
    handle.remove()
    assert fired == [block[0]]


def test_a_float64_block_under_bf16_autocast_stays_float64():
    """Autocast leaves float64 alone; so does the block form (it casts only what autocast would)."""
    block = ConvMaxPool(integer_layer(nn.Conv2d(3, 4, 3)))
    x = integer_input((2, 3, 9, 8), requires_grad=False)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        assert block.takes_blocks(x)
        out = block(x)
    assert out.dtype == torch.float64 and torch.equal(out, layers(block)(x))

def test_a_model_summary_still_lists_the_convolution_and_the_pooling():
    """The summary hooks every layer: the image CNN's first block (3 colours, channels-fastest) runs as its layers."""
    from common.classifier import Classifier
    from rickmorty.models import CourseCNN

    text = summarize(Classifier(CourseCNN(), ["no", "yes"], channels_last=True), (3, 90, 160))
    assert "backbone.features.0.0 (Conv2d)" in text and "(None, 20, 86, 156)" in text
    assert "backbone.features.0.1 (HalvingMaxPool)" in text


@pytest.mark.usefixtures("cxx_compiler")
def test_the_course_cnns_keep_their_parameters_and_train_as_their_layers_do_in_bf16(monkeypatch):
    """Same state dict keys; in bf16 autocast, outputs and gradients match the layers' up to rounding."""
    from motifs.models import CourseCNN as MotifCNN
    from rickmorty.models import CourseCNN as ImageCNN

    monkeypatch.setattr(CompiledPooling, "training_steps", math.inf)
    for model, x in ((MotifCNN(), F.one_hot(torch.randint(0, 4, (8, 200)), 4).float().transpose(1, 2)),
                     (ImageCNN(), torch.rand(4, 3, 90, 160))):
        assert {"features.0.0.weight", "features.1.0.bias"} <= set(model.state_dict())
        x = channels_last(x)
        results = []
        for takes_blocks in (True, False):
            monkeypatch.setattr(ConvMaxPool, "takes_blocks", lambda self, x, taken=takes_blocks: taken)
            model.zero_grad()
            with torch.autocast("cpu", dtype=torch.bfloat16):
                out = model.features(x)
            out.float().square().sum().backward()
            results.append((out.float(), model.features[0][0].weight.grad.clone()))
        (out, grad), (expected_out, expected_grad) = results
        assert torch.allclose(out, expected_out, rtol=0.02, atol=0.02)
        assert torch.allclose(grad, expected_grad, rtol=0.05, atol=0.05 * expected_grad.abs().max().item())
