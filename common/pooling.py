"""Max-pooling by 2 (optionally with the ReLU after it) that runs faster on the CPU and gives exactly
nn.MaxPool's (and nn.ReLU's) values and gradients."""
from __future__ import annotations

import functools
import itertools
import logging
import warnings

import torch
import torch.nn.functional as F
from torch import nn
from torch.autograd.function import once_differentiable

from common.memory_format import channels_last

# Compiling one pooling shape (forward + backward) took ~4-5 s here with inductor's disk cache
# cold (the course image CNN's three: 14.5 s), ~0.8 s with it warm; a training step then saves
# ~0.3-0.4 ns per input element (image CNN: ~11 ms a batch of 100 frames). A shape is compiled
# when its input elements x the run's training steps reach this: ~5 s saved, a cold compile repaid.
PAYBACK_ELEMENT_STEPS = 1.5e10
# Inside a model the user compiles whole, pooling is left to that compile (torch < 2.3 lacks the check).
is_compiling = getattr(torch.compiler, "is_compiling", lambda: False)


def window_views(x: torch.Tensor, dims: int, channels_after: bool = False) -> list[torch.Tensor]:
    """Return views of x (N, C, *spatial) holding each position of the 2 (1D) or 2x2 (2D) pooling windows.

    channels_after: x is (N, *spatial, C) instead. Spatial sizes are cut to even first, as
    max-pooling does (floor mode); no data is copied. Positions come in PyTorch's scan order.
    """
    first = 1 if channels_after else x.dim() - dims
    sizes = x.shape[first:first + dims]
    lead = (slice(None),) * first
    return [x[lead + tuple(slice(start, size // 2 * 2, 2) for start, size in zip(starts, sizes))]
            for starts in itertools.product((0, 1), repeat=dims)]


def max_of_views(views: list[torch.Tensor], relu: bool = False) -> torch.Tensor:
    """Return the elementwise maximum of equally shaped views (a new tensor), ReLU'd if relu."""
    while len(views) > 1:
        views = [torch.maximum(a, b) for a, b in zip(views[::2], views[1::2])]
    return views[0].relu_() if relu else views[0]  # a new tensor, never an input: in place is safe


def halving_max(x: torch.Tensor, dims: int, relu: bool = False) -> torch.Tensor:
    """Return F.max_pool{1,2}d(x, 2) of x (N, C, L) or (N, C, H, W), computed as maxima of strided views; relu: ReLU'd."""
    return max_of_views(window_views(x, dims), relu)


def coded_max_of_views(views: list[torch.Tensor], relu: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return the maximum of equally shaped views and, per element, the index of the view that gave it.

    The index follows PyTorch's pooling rule (a later view wins only if greater, or NaN), so ties
    resolve as in F.max_pool. The code has the views' dtype. relu: the maxima are ReLU'd too, and
    where ReLU stops the gradient (a maximum <= 0) the code is len(views), an index no view has,
    so that the gradient is 0 there as nn.ReLU's backward makes it.
    """
    values, code = views[0], torch.zeros_like(views[0])
    for position, view in enumerate(views[1:], 1):
        later_wins = (view > values) | (view != view)  # NaN; isnan() would not vectorise when compiled
        values, code = torch.where(later_wins, view, values), torch.where(later_wins, float(position), code)
    if relu:  # nn.ReLU keeps NaN and passes its gradient
        passes = (values > 0) | (values != values)
        values, code = torch.where(passes, values, 0.0), torch.where(passes, code, float(len(views)))
    return values, code


def coded_max(x: torch.Tensor, dims: int, relu: bool = False) -> tuple[torch.Tensor, torch.Tensor]:
    """Return max-pooled x (N, C, *spatial) and, per output, the window position (0..2**dims-1) that gave it.

    Positions come in PyTorch's scan order, and ties and ReLU are coded as coded_max_of_views
    codes them. The code has x's dtype and the channels-fastest layout, as the values.
    """
    values, code = coded_max_of_views(window_views(x.movedim(1, -1), dims, channels_after=True), relu)
    return values.movedim(-1, 1), code


def write_window_gradients(out: torch.Tensor, grad: torch.Tensor, code: torch.Tensor) -> None:
    """Write into out (N, *even spatial, C) each input element's gradient: its window's where the code names it, else 0.

    Written per input element, so that it compiles to one pass that writes the gradient once.
    """
    upstream = grad.movedim(1, -1)
    halves = upstream.shape[1:-1]
    # (N, half_1, 1, half_2, 1, C) against positions (1, 1, 2, 1, 2, 1): window elements side by side
    windowed = (len(upstream), *itertools.chain.from_iterable((h, 1) for h in halves), upstream.shape[-1])
    position = torch.arange(2 ** len(halves), dtype=code.dtype, device=code.device).reshape(
        (1, *itertools.chain.from_iterable((1, 2) for _ in halves), 1))
    out.copy_(torch.where(code.reshape(windowed) == position, upstream.reshape(windowed), 0).reshape(out.shape))


def coded_max_backward(grad: torch.Tensor, code: torch.Tensor, spatial: tuple[int, ...],
                       compiled: bool = True) -> torch.Tensor:
    """Return the gradient of coded_max's input (N, C, *spatial), channels-fastest, from the output gradient and code.

    Only the last row or column that odd sizes leave out of every window is zero-filled.
    """
    halves = grad.shape[2:]
    result = grad.new_empty((len(grad), *spatial, grad.shape[1]))
    for d, (size, half) in enumerate(zip(spatial, halves)):
        if size > 2 * half:
            result[(slice(None),) * (1 + d) + (slice(2 * half, None),)] = 0
    inside = result[(slice(None), *(slice(0, 2 * half) for half in halves))]
    if compiled:
        CompiledPooling.run(write_window_gradients, inside, channels_last(grad), code)
    else:
        write_window_gradients(inside, grad, code)
    return result.movedim(-1, 1)


def without_cuda_home_notice(record: logging.LogRecord) -> bool:
    """Drop torch's "No CUDA runtime is found, using CUDA_HOME" notice: compiling CPU kernels needs no CUDA."""
    return not record.getMessage().startswith("No CUDA runtime is found")


class CompiledPooling:
    """coded_max and its backward compiled (inductor) into one pass each: no int64 indices, no zero-filled gradient.

    PyTorch's CPU max-pooling writes an int64 index per output and its backward zero-fills the
    whole input gradient before scattering into it: the image CNN's first pooling moved ~350 MB
    per batch of 100 frames. The compiled pair writes a code in x's dtype and the gradient once.
    Where compiling fails (no C++ compiler), it warns once and the caller keeps PyTorch's op.
    `training_steps` is what a run will train (set by the Trainer, see CompilePoolingWherePays):
    0 outside a Trainer, so research code calling a model never waits for a compiler.
    """

    failure: str | None = None
    training_steps: float = 0.0

    @staticmethod
    @functools.cache
    def compiled(function):
        """Return `function` compiled once per channels and spatial size (the batch size may change)."""
        logging.getLogger("torch.utils.cpp_extension").addFilter(without_cuda_home_notice)
        return torch.compile(function, dynamic=None)

    @classmethod
    def run(cls, function, *args):
        """Run the compiled `function`; the batch size of its tensor arguments is left free, other sizes fixed."""
        for arg in args:
            if isinstance(arg, torch.Tensor):
                torch._dynamo.maybe_mark_dynamic(arg, 0)
        # Fixed channel and spatial sizes let inductor vectorise over channels; other shapes get their own entry.
        with torch._dynamo.config.patch(automatic_dynamic_shapes=False, recompile_limit=64):
            return cls.compiled(function)(*args)

    @classmethod
    def fail(cls, error: Exception) -> None:
        """Remember that compiling failed and say so once; PyTorch's max-pooling is used from then on."""
        cls.failure = f"{type(error).__name__}: {str(error).splitlines()[0] if str(error) else ''}"
        warnings.warn(f"compiled max-pooling is unavailable ({cls.failure}); training uses PyTorch's max-pooling, "
                      "which is slower on the CPU", RuntimeWarning, stacklevel=3)

    @classmethod
    def pays_back(cls, elements: int) -> bool:
        """Return True where compiling works and pooling `elements` inputs for the run's training steps repays it."""
        return cls.failure is None and elements * cls.training_steps >= PAYBACK_ELEMENT_STEPS

    @classmethod
    def applies(cls, x: torch.Tensor, dims: int) -> bool:
        """Return True for a channels-fastest CPU input whose run pays back compiling, if compiling works."""
        return (cls.pays_back(x.numel()) and x.device.type == "cpu" and x.dim() == dims + 2
                and x.stride(1) == 1 and x.shape[1] > 1 and min(x.shape[2:]) >= 2 and not is_compiling())


class CodedMaxPool(torch.autograd.Function):
    """Max-pooling by 2 with nn.MaxPool's values and gradients, saving a compact code instead of int64 indices."""

    @staticmethod
    def forward(ctx, x: torch.Tensor, dims: int, relu: bool) -> torch.Tensor:
        """Return x max-pooled by 2 (and ReLU'd if relu; compiled coded_max), saving the window-position code for backward."""
        values, code = CompiledPooling.run(coded_max, x, dims, relu)
        ctx.save_for_backward(code)
        ctx.spatial = tuple(x.shape[2:])
        return values

    @staticmethod
    @once_differentiable
    def backward(ctx, grad: torch.Tensor):
        """Return x's gradient (and None for dims and relu) from the saved code; uncompiled if compiling fails."""
        (code,) = ctx.saved_tensors
        try:
            return coded_max_backward(grad, code, ctx.spatial), None, None
        except Exception as error:  # compiling failed: the same function, uncompiled, gives the same gradient
            CompiledPooling.fail(error)
            return coded_max_backward(grad, code, ctx.spatial, compiled=False), None, None


class HalvingMaxPool(nn.Module):
    """MaxPool1d(2) or MaxPool2d(2) with identical values and gradients, faster on the CPU; relu=True adds nn.ReLU after it.

    Inference (prediction, ISM, validation) takes strided maxima: PyTorch's CPU op also writes an
    int64 index per output for a backward pass that never comes. Training of channels-fastest
    inputs takes CodedMaxPool (compiled) where the run is long enough to pay back compiling;
    other training inputs and other devices keep PyTorch's op. The ReLU, inside the same pass,
    spares a read and a write of the pooled maps forward and backward.
    """

    def __init__(self, dims: int, relu: bool = False) -> None:
        super().__init__()
        if dims not in (1, 2):
            raise ValueError(f"dims must be 1 or 2, got {dims}")
        self.dims, self.relu = dims, relu

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return x (N, C, *spatial) max-pooled by 2 in each of the last `dims` dimensions."""
        training = torch.is_grad_enabled() and x.requires_grad
        if x.device.type == "cpu" and not training:
            return halving_max(x, self.dims, self.relu)
        if training and CompiledPooling.applies(x, self.dims):
            try:
                return CodedMaxPool.apply(x, self.dims, self.relu)
            except Exception as error:  # compiling failed (no C++ compiler): PyTorch's op from now on
                CompiledPooling.fail(error)
        pooled = (F.max_pool1d if self.dims == 1 else F.max_pool2d)(x, 2)
        return F.relu(pooled) if self.relu else pooled

    def extra_repr(self) -> str:
        """Return the settings shown in the module's repr: dims, kernel_size=2, stride=2 and relu if set."""
        return f"dims={self.dims}, kernel_size=2, stride=2" + (", relu=True" if self.relu else "")
