"""HalvingMaxPool gives exactly nn.MaxPool's values and gradients, through either of its two paths."""
from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F

from common.memory_format import channels_last
from common.pooling import HalvingMaxPool, halving_max


def tied_input(shape: tuple[int, ...], dtype: torch.dtype, layout_last: bool) -> torch.Tensor:
    """Return integer-valued input (so windows hold ties) in the channels-first or channels-fastest layout."""
    x = torch.randint(-3, 4, shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    return channels_last(x) if layout_last else x


SHAPES = [(2, 5, 11), (3, 4, 10), (2, 3, 9, 14), (2, 6, 8, 7)]  # odd and even lengths, 1D and 2D


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout_last", [False, True])
def test_inference_path_equals_max_pool(shape, dtype, layout_last):
    x = tied_input(shape, dtype, layout_last)
    dims = len(shape) - 2
    expected = (F.max_pool1d if dims == 1 else F.max_pool2d)(x, 2)
    with torch.no_grad():
        got = HalvingMaxPool(dims)(x)
    assert got.dtype == expected.dtype and torch.equal(got, expected)
    assert torch.equal(halving_max(x, dims), expected)


@pytest.mark.parametrize("shape", SHAPES)
def test_training_path_keeps_max_pool_gradients(shape):
    """With ties in every window, the gradient still goes to the one element PyTorch's max-pooling picks."""
    dims = len(shape) - 2
    x = tied_input(shape, torch.float32, layout_last=True).requires_grad_()
    reference = x.detach().clone().requires_grad_()
    upstream = torch.randn((F.max_pool1d if dims == 1 else F.max_pool2d)(reference, 2).shape)
    (HalvingMaxPool(dims)(x) * upstream).sum().backward()
    ((F.max_pool1d if dims == 1 else F.max_pool2d)(reference, 2) * upstream).sum().backward()
    assert torch.equal(x.grad, reference.grad)


def test_inference_path_propagates_nan_as_max_pool_does():
    x = torch.rand(1, 2, 4, 4)
    x[0, 1, 2, 3] = float("nan")
    with torch.no_grad():
        got = HalvingMaxPool(2)(x)
    assert torch.equal(got.isnan(), F.max_pool2d(x, 2).isnan()) and int(got.isnan().sum()) == 1


def test_rejects_other_dimensions():
    with pytest.raises(ValueError, match="dims must be 1 or 2"):
        HalvingMaxPool(3)
