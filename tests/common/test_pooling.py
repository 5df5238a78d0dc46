"""HalvingMaxPool gives exactly nn.MaxPool's values and gradients, through each of its paths."""
from __future__ import annotations

import math
import warnings

import pytest
import torch
import torch.nn.functional as F

from common import pooling
from common.memory_format import channels_last
from common.pooling import CompiledPooling, HalvingMaxPool, coded_max, coded_max_backward, halving_max


def tied_input(shape: tuple[int, ...], dtype: torch.dtype, layout_last: bool) -> torch.Tensor:
    """Return integer-valued input (so windows hold ties) in the channels-first or channels-fastest layout."""
    x = torch.randint(-3, 4, shape, generator=torch.Generator().manual_seed(0)).to(dtype)
    return channels_last(x) if layout_last else x


SHAPES = [(2, 5, 11), (3, 4, 10), (2, 3, 9, 14), (2, 6, 8, 7)]  # odd and even lengths, 1D and 2D
MAX_POOL = {1: lambda x: F.max_pool1d(x, 2), 2: lambda x: F.max_pool2d(x, 2)}  # PyTorch's op, the reference


def reference(dims: int, relu: bool):
    """Return PyTorch's max-pooling, followed by its ReLU if relu: what HalvingMaxPool(dims, relu) must equal."""
    return (lambda x: F.relu(MAX_POOL[dims](x))) if relu else MAX_POOL[dims]


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("layout_last", [False, True])
@pytest.mark.parametrize("relu", [False, True])
def test_inference_path_equals_max_pool(shape, dtype, layout_last, relu):
    x = tied_input(shape, dtype, layout_last)
    dims = len(shape) - 2
    expected = reference(dims, relu)(x)
    with torch.no_grad():
        got = HalvingMaxPool(dims, relu)(x)
    assert got.dtype == expected.dtype and torch.equal(got, expected)
    assert torch.equal(halving_max(x, dims, relu), expected) and torch.equal(x, tied_input(shape, dtype, layout_last))


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("relu", [False, True])
def test_training_path_keeps_max_pool_gradients(shape, relu):
    """With ties in every window, the gradient still goes to the one element PyTorch's max-pooling picks."""
    dims = len(shape) - 2
    x = tied_input(shape, torch.float32, layout_last=True)
    assert_same_pooling(pooled_with_gradient(HalvingMaxPool(dims, relu), x), pooled_with_gradient(reference(dims, relu), x))


def test_inference_path_propagates_nan_as_max_pool_does():
    x = torch.rand(1, 2, 4, 4)
    x[0, 1, 2, 3] = float("nan")
    with torch.no_grad():
        got = HalvingMaxPool(2)(x)
    assert torch.equal(got.isnan(), F.max_pool2d(x, 2).isnan()) and int(got.isnan().sum()) == 1


def test_rejects_other_dimensions():
    with pytest.raises(ValueError, match="dims must be 1 or 2"):
        HalvingMaxPool(3)


# ---- training: CodedMaxPool (compiled) for big channels-fastest CPU inputs --------------------------
def pooled_with_gradient(pool, x: torch.Tensor, upstream_seed: int = 1) -> tuple[torch.Tensor, torch.Tensor]:
    """Return pool(x) and the gradient of x for a random upstream gradient."""
    x = x.detach().clone().requires_grad_()
    y = pool(x)
    upstream = torch.randn(y.shape, generator=torch.Generator().manual_seed(upstream_seed)).to(y.dtype)
    y.backward(upstream)
    return y.detach(), x.grad


def tied_input_with_nan(shape: tuple[int, ...], dtype: torch.dtype) -> torch.Tensor:
    """Return tied_input channels-fastest with NaN as the first and as the second element of two windows."""
    x = tied_input(shape, dtype, layout_last=True)
    x[(0, 0) + (0,) * (len(shape) - 2)] = float("nan")
    x[(0, 1) + (1,) * (len(shape) - 2)] = float("nan")
    return x


def assert_same_pooling(got: tuple[torch.Tensor, torch.Tensor], expected: tuple[torch.Tensor, torch.Tensor]) -> None:
    """Values (NaN where PyTorch has NaN), gradients and the gradient's memory layout are PyTorch's."""
    (values, grad), (expected_values, expected_grad) = got, expected
    assert torch.equal(values.isnan(), expected_values.isnan())
    assert torch.equal(values.nan_to_num(), expected_values.nan_to_num())
    assert torch.equal(grad, expected_grad) and grad.stride() == expected_grad.stride()


@pytest.mark.parametrize("shape", SHAPES)
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
@pytest.mark.parametrize("relu", [False, True])
def test_coded_max_pooling_functions_give_max_pool_values_and_gradients(shape, dtype, relu):
    """The functions CodedMaxPool compiles, run as they are: ties, NaN, zeros and odd sizes as PyTorch resolves them."""
    dims = len(shape) - 2
    x = tied_input_with_nan(shape, dtype)
    values, code = coded_max(x, dims, relu)
    upstream = torch.randn(values.shape, generator=torch.Generator().manual_seed(1)).to(dtype)
    grad = coded_max_backward(channels_last(upstream), code, tuple(shape[2:]), compiled=False)
    assert_same_pooling((values, grad), pooled_with_gradient(reference(dims, relu), x))


@pytest.mark.usefixtures("cxx_compiler")
@pytest.mark.parametrize("shape,dtype,relu", [((3, 5, 11), torch.bfloat16, False), ((2, 6, 9, 14), torch.float32, False),
                                              ((3, 5, 11), torch.bfloat16, True)])
def test_big_training_inputs_pool_through_the_compiled_kernels_with_max_pool_results(shape, dtype, relu, monkeypatch):
    """Compiled for real (a C++ compiler is on CI): same values, gradients and layout; batch sizes share a kernel."""
    monkeypatch.setattr(CompiledPooling, "training_steps", math.inf)
    monkeypatch.setattr(CompiledPooling, "failure", None)
    dims = len(shape) - 2
    pool = HalvingMaxPool(dims, relu)
    for batch in (shape[0], shape[0] + 2):
        x = tied_input_with_nan((batch, *shape[1:]), dtype)
        assert type(pool(x.detach().requires_grad_()).grad_fn).__name__ == "CodedMaxPoolBackward"
        assert_same_pooling(pooled_with_gradient(pool, x), pooled_with_gradient(reference(dims, relu), x))
    assert CompiledPooling.failure is None


def test_pooling_compiles_only_where_the_run_pays_it_back_and_the_layout_suits(monkeypatch):
    x = tied_input((2, 3, 9, 14), torch.float32, layout_last=True).requires_grad_()
    assert CompiledPooling.training_steps == 0  # outside a Trainer run: never compile
    assert type(HalvingMaxPool(2)(x).grad_fn).__name__ == "MaxPool2DWithIndicesBackward0"
    frames = torch.empty(100, 20, 86, 156).contiguous(memory_format=torch.channels_last)  # the course CNN's first pooling
    monkeypatch.setattr(CompiledPooling, "training_steps", 550.0)
    assert not CompiledPooling.applies(frames, 2) and not CompiledPooling.applies(x, 2)
    monkeypatch.setattr(CompiledPooling, "training_steps", 570.0)
    assert CompiledPooling.applies(frames, 2) and not CompiledPooling.applies(x, 2)
    assert not CompiledPooling.applies(frames.contiguous(), 2)  # channels-first: strided reads waste the compiled pass
    monkeypatch.setattr(pooling, "is_compiling", lambda: True)
    assert not CompiledPooling.applies(frames, 2)  # inside a whole-model torch.compile, that compile handles pooling


def test_pooling_falls_back_to_pytorchs_op_with_one_warning_when_compiling_fails(monkeypatch):
    """No C++ compiler (or any compile error): one warning that says so, then PyTorch's results."""
    def no_compiler(function):
        def fail(*args):
            raise RuntimeError("InvalidCxxCompiler: no working C++ compiler found\nmore lines")
        return fail

    monkeypatch.setattr(CompiledPooling, "training_steps", math.inf)
    monkeypatch.setattr(CompiledPooling, "failure", None)
    monkeypatch.setattr(CompiledPooling, "compiled", no_compiler)
    x = tied_input((2, 3, 9, 14), torch.float32, layout_last=True)
    with pytest.warns(RuntimeWarning, match="compiled max-pooling is unavailable .*no working C\\+\\+ compiler"):
        got = pooled_with_gradient(HalvingMaxPool(2, relu=True), x)
    assert_same_pooling(got, pooled_with_gradient(reference(2, relu=True), x))
    assert CompiledPooling.failure == "RuntimeError: InvalidCxxCompiler: no working C++ compiler found"
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once: later batches are quiet
        assert_same_pooling(pooled_with_gradient(HalvingMaxPool(2), x), pooled_with_gradient(MAX_POOL[2], x))


def test_a_backward_that_fails_to_compile_still_gives_max_pool_gradients(failing_compile):
    """Forward compiled (here: run as is), backward failing: the uncompiled backward gives the same gradient."""
    failing_compile(pooling.write_window_gradients)
    x = tied_input_with_nan((2, 4, 7, 9), torch.float32)
    with pytest.warns(RuntimeWarning, match="compile error"):
        got = pooled_with_gradient(HalvingMaxPool(2), x)
    assert_same_pooling(got, pooled_with_gradient(MAX_POOL[2], x))
