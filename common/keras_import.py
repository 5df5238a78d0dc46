"""Read keras 2.x HDF5 models (architecture and weights, with h5py) and load them into PyTorch modules.

A keras file holds the architecture as JSON (file attribute `model_config`) and the weights under
`model_weights/<layer>/<weight name>`. `read_keras_model` parses both and refuses layers this project
cannot represent; `load_keras_weights` converts every weight to PyTorch's layout and copies it into
the parameterised layers of any module, in order, checking kinds and shapes; `keras_sequential`
builds a plain PyTorch equivalent of the whole file (a reference, and a home for files without a
matching project module).

Project modules take one activation per weighted layer, so a separate Activation layer is folded into
the weighted layer before it, across layers that leave its effect unchanged (Dropout; Flatten and max
pooling for element-wise activations). An Activation that cannot be folded is recorded, and
`load_keras_weights` refuses the file rather than build a module without it; `keras_sequential` keeps
every layer and loads such files.

Layout conversions (keras is channels-last, PyTorch channels-first):
Dense (in, out) -> Linear (out, in); Conv1D (k, in, out) -> Conv1d (out, in, k);
Conv2D (kh, kw, in, out) -> Conv2d (out, in, kh, kw); Conv2DTranspose (kh, kw, out, in) ->
ConvTranspose2d (in, out, kh, kw). A Dense after a Flatten of a conv stack saw its inputs in
(H, W, C) order; PyTorch's Flatten gives (C, H, W), so the Dense's input rows are permuted.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.cpu_linear import DenseStack, OneDnnLinear
from common.dropout import Dropout
from common.errors import DataError
from common.paths import data_path

WEIGHTED = ("Dense", "Conv1D", "Conv2D", "Conv2DTranspose")
SHAPE_ONLY = ("InputLayer", "Flatten", "Dropout", "Activation", "MaxPooling1D", "MaxPooling2D")
ACTIVATIONS = ("linear", "relu", "sigmoid", "softmax", "tanh")
TORCH_KIND = {"Dense": nn.Linear, "Conv1D": nn.Conv1d, "Conv2D": nn.Conv2d, "Conv2DTranspose": nn.ConvTranspose2d}


class KerasImportError(DataError):
    """A keras file cannot be read, or cannot be represented by (or loaded into) a PyTorch module."""


@dataclass
class KerasLayer:
    """One keras layer: kind (keras class name), config, weights in keras layout, channels-last shapes."""

    name: str
    kind: str
    config: dict
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    weights: list[np.ndarray] = field(default_factory=list)
    activation: str = "linear"  # for weighted layers: own activation, or that of an Activation folded into it
    flattened_from: tuple[int, ...] | None = None  # for a Dense right after Flatten: the shape flattened

    def torch_weights(self) -> list[torch.Tensor]:
        """Return [weight, bias] converted to the PyTorch layout of TORCH_KIND[kind]."""
        kernel, *rest = self.weights
        if self.kind == "Dense":
            if self.flattened_from is not None and len(self.flattened_from) > 1:
                *spatial, channels = self.flattened_from
                kernel = kernel.reshape(*spatial, channels, -1)
                kernel = np.moveaxis(kernel, -2, 0).reshape(math.prod(self.flattened_from), -1)
            kernel = kernel.T
        elif self.kind == "Conv1D":
            kernel = kernel.transpose(2, 1, 0)
        elif self.kind == "Conv2D":
            kernel = kernel.transpose(3, 2, 0, 1)
        else:  # Conv2DTranspose: keras (kh, kw, out, in) -> torch (in, out, kh, kw)
            kernel = kernel.transpose(3, 2, 0, 1)
        return [torch.from_numpy(np.ascontiguousarray(w, dtype=np.float32)) for w in (kernel, *rest)]


@dataclass
class KerasModel:
    """A parsed keras Sequential file: its layers in order and its channels-last input shape."""

    path: Path
    keras_version: str
    input_shape: tuple[int, ...]
    layers: list[KerasLayer]
    unplaced_activations: list[str] = field(default_factory=list)  # per Activation layer not folded: why not

    @property
    def weighted_layers(self) -> list[KerasLayer]:
        """Layers that hold weights (Dense, Conv1D, Conv2D, Conv2DTranspose), in order."""
        return [layer for layer in self.layers if layer.kind in WEIGHTED]

    @property
    def torch_input_shape(self) -> tuple[int, ...]:
        """The input shape PyTorch expects (channels first), batch excluded: e.g. (3, 90, 160), (4, 200)."""
        if len(self.input_shape) < 2:
            return self.input_shape
        return (self.input_shape[-1], *self.input_shape[:-1])

    def parameter_count(self) -> int:
        """Return the number of weights in the file (keras' 'Total params')."""
        return sum(w.size for layer in self.layers for w in layer.weights)

    def describe(self) -> str:
        """Return one line per layer: name, kind, activation, output shape."""
        return "\n".join(f"{layer.name} ({layer.kind}{', ' + layer.activation if layer.kind in WEIGHTED else ''})"
                         f" -> {layer.output_shape}" for layer in self.layers)


def _fail(path: Path, message: str) -> KerasImportError:
    return KerasImportError(f"keras file {path}: {message}")


def _pair(value, dims: int) -> tuple[int, ...]:
    return tuple(value) if isinstance(value, (list, tuple)) else (value,) * dims


def _kernel_and_strides(kind: str, config: dict, dims: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Return (kernel or pool size, strides); keras pooling strides default to the pool size, conv strides to 1."""
    if kind.startswith("MaxPooling"):
        pool = _pair(config["pool_size"], dims)
        return pool, _pair(config.get("strides") or pool, dims)
    return _pair(config["kernel_size"], dims), _pair(config.get("strides", 1), dims)


def _check_layer_options(path: Path, kind: str, name: str, config: dict) -> None:
    """Refuse options that have no exact PyTorch counterpart here."""
    what = f"layer {name!r} ({kind})"
    if config.get("data_format", "channels_last") != "channels_last":
        raise _fail(path, f"{what} uses data_format={config['data_format']!r}; only channels_last files are supported")
    if config.get("activation", "linear") not in ACTIVATIONS:
        raise _fail(path, f"{what} uses activation {config['activation']!r}; supported: {', '.join(ACTIVATIONS)}")
    if kind not in ("Conv1D", "Conv2D", "Conv2DTranspose", "MaxPooling1D", "MaxPooling2D"):
        return
    dims = 1 if kind.endswith("1D") else 2
    if any(d != 1 for d in _pair(config.get("dilation_rate", 1), dims)) or config.get("groups", 1) != 1:
        raise _fail(path, f"{what} uses dilation or groups; only plain convolutions are supported")
    padding = config.get("padding", "valid")
    kernel, strides = _kernel_and_strides(kind, config, dims)
    if padding == "same" and (kind not in ("Conv1D", "Conv2D") or any(s != 1 for s in strides)
                              or any(k % 2 == 0 for k in kernel)):
        # keras pads 'same' asymmetrically otherwise; PyTorch's symmetric padding would shift the output.
        raise _fail(path, f"{what} uses padding='same' with strides {strides} and kernel {kernel}; only stride 1, "
                          "odd kernels and convolutions (not pooling or transposed convolutions) are supported")
    if padding not in ("valid", "same"):
        raise _fail(path, f"{what} uses padding={padding!r}; only 'valid' and 'same' are supported")
    if kind == "Conv2DTranspose" and (config.get("output_padding") is not None
                                      or any(s > k for s, k in zip(strides, kernel))):
        raise _fail(path, f"{what} uses output_padding or strides larger than the kernel; not supported")


def _output_shape(kind: str, config: dict, shape: tuple[int, ...]) -> tuple[int, ...]:
    """Return the channels-last output shape of a layer for a channels-last input shape."""
    if kind == "Dense":
        return (config["units"],)
    if kind == "Flatten":
        return (math.prod(shape),)
    if kind in ("Dropout", "Activation", "InputLayer"):
        return shape
    dims = len(shape) - 1
    kernel, strides = _kernel_and_strides(kind, config, dims)
    channels = config.get("filters", shape[-1])
    if kind == "Conv2DTranspose":
        spatial = [(n - 1) * s + k for n, k, s in zip(shape[:-1], kernel, strides)]
    elif config.get("padding", "valid") == "same":
        spatial = list(shape[:-1])
    else:
        spatial = [(n - k) // s + 1 for n, k, s in zip(shape[:-1], kernel, strides)]
    return (*spatial, channels)


def _fold_activation(layers: list[KerasLayer], activation: KerasLayer) -> str:
    """Give the weighted layer before an Activation layer its activation; return why not ('' when folded)."""
    for previous in reversed(layers):
        if previous.kind in WEIGHTED:
            if previous.activation != "linear":
                return f"it follows {previous.name!r}, which already applies {previous.activation}"
            previous.activation = activation.activation
            return ""
        if previous.kind == "Activation" and previous.activation != "linear":
            return f"it follows another Activation layer, {previous.name!r} ({previous.activation})"
        # Dropout is the identity at inference; Flatten only reorders values; max pooling commutes with the
        # non-decreasing element-wise activations. Softmax normalises over the last axis, which both change.
        passes = (previous.kind in ("Dropout", "Activation")
                  or (previous.kind == "Flatten" and (activation.activation != "softmax"
                                                       or len(previous.input_shape) == 1))
                  or (previous.kind.startswith("MaxPooling") and activation.activation != "softmax"))
        if not passes:
            return f"it follows {previous.name!r} ({previous.kind}), which it cannot be moved across"
    return "no layer with weights comes before it"


def _layer_list(config: dict, path: Path) -> list[dict]:
    if config.get("class_name") != "Sequential":
        raise _fail(path, f"the model is a keras {config.get('class_name')!r}; only Sequential models can be imported")
    inner = config["config"]
    return inner["layers"] if isinstance(inner, dict) else inner  # keras < 2.2.3 stored a bare list


def _read_weights(path: Path, handle, name: str) -> list[np.ndarray]:
    root = handle["model_weights"]
    if name not in root:
        return []
    group = root[name]
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in group.attrs.get("weight_names", [])]
    try:
        return [np.asarray(group[n], dtype=np.float32) for n in names]
    except (KeyError, OSError) as error:
        raise _fail(path, f"the weights of layer {name!r} cannot be read ({error}); the file may be truncated"
                    ) from error


def read_keras_model(path: str | Path) -> KerasModel:
    """Parse a keras 2.x HDF5 file (architecture and weights); raise KerasImportError if it is unusable.

    A "course:<relative>" path names a file of the course data (common.paths.data_path).
    """
    import h5py  # only the keras import needs HDF5

    path = data_path(path)
    if not path.is_file():
        raise _fail(path, "does not exist")
    try:
        handle = h5py.File(path, "r")
    except OSError as error:
        hint = ("a keras 3 '.keras' file is a zip archive: save the model with model.save('name.h5') instead"
                if path.suffix == ".keras" else "is it truncated, or not a keras .h5 model?")
        raise _fail(path, f"is not a readable HDF5 file ({error}); {hint}") from error
    with handle:
        if "model_config" not in handle.attrs or "model_weights" not in handle:
            raise _fail(path, "holds no keras model (no 'model_config' attribute or 'model_weights' group); "
                              "files written by save_weights() lack the architecture: save with save_model()")
        raw = handle.attrs["model_config"]
        config = json.loads(raw.decode() if isinstance(raw, bytes) else raw)
        version = handle.attrs.get("keras_version", b"unknown")
        version = version.decode() if isinstance(version, bytes) else str(version)
        layers: list[KerasLayer] = []
        unplaced: list[str] = []
        shape: tuple[int, ...] | None = None
        flattened: tuple[int, ...] | None = None
        for entry in _layer_list(config, path):
            kind, layer_config = entry["class_name"], entry["config"]
            name = layer_config.get("name", kind)
            if kind not in WEIGHTED + SHAPE_ONLY:
                raise _fail(path, f"layer {name!r} is a {kind}, which this project cannot represent; "
                                  f"supported layers: {', '.join(WEIGHTED + SHAPE_ONLY)}")
            _check_layer_options(path, kind, name, layer_config)
            if shape is None:
                if "batch_input_shape" not in layer_config:
                    raise _fail(path, f"the first layer {name!r} does not state its input shape")
                shape = tuple(layer_config["batch_input_shape"][1:])
                input_shape = shape
            if kind == "Dense" and len(shape) != 1:
                raise _fail(path, f"Dense layer {name!r} gets a {shape} input; only Dense after Flatten is supported")
            if kind.startswith(("Conv", "MaxPooling")) and len(shape) != (2 if kind.endswith("1D") else 3):
                raise _fail(path, f"layer {name!r} ({kind}) gets an input of shape {shape}, which it cannot take")
            output = _output_shape(kind, layer_config, shape)
            if min(output) <= 0:
                raise _fail(path, f"layer {name!r} would have an empty output {output}")
            layer = KerasLayer(name, kind, layer_config, shape, output, _read_weights(path, handle, name),
                               layer_config.get("activation", "linear"))
            if kind == "Activation" and layer.activation != "linear" and (why := _fold_activation(layers, layer)):
                unplaced.append(f"Activation layer {name!r} ({layer.activation}): {why}")
            if kind == "Flatten":
                flattened = shape
            elif kind == "Dense":
                layer.flattened_from, flattened = flattened, None
            expected = 2 if layer_config.get("use_bias", True) else 1
            if kind in WEIGHTED and len(layer.weights) != expected:
                raise _fail(path, f"layer {name!r} ({kind}) has {len(layer.weights)} weight arrays, "
                                  f"expected {expected}")
            layers.append(layer)
            shape = output
    return KerasModel(path, version, input_shape, layers, unplaced)


def _as_model(source: str | Path | KerasModel) -> KerasModel:
    return source if isinstance(source, KerasModel) else read_keras_model(source)


def _torch_layers(module: nn.Module) -> list[tuple[str, nn.Module]]:
    """Return (name, layer) for every sub-module owning parameters, in registration order."""
    return [(name, layer) for name, layer in module.named_modules()
            if any(True for _ in layer.parameters(recurse=False))]


def _check_geometry(keras: KerasLayer, torch_name: str, layer: nn.Module, path: Path) -> None:
    """Refuse a conv layer whose stride or padding differs from keras' (same shapes, different function)."""
    if keras.kind == "Dense":
        return
    dims = len(keras.input_shape) - 1
    kernel, strides = _kernel_and_strides(keras.kind, keras.config, dims)
    padding = tuple(k // 2 for k in kernel) if keras.config.get("padding") == "same" else (0,) * dims
    if tuple(layer.stride) != strides or tuple(layer.padding) != padding:
        raise _fail(path, f"layer {keras.name!r} has strides {strides} and padding {padding}, but PyTorch layer "
                          f"{torch_name!r} has stride {tuple(layer.stride)} and padding {tuple(layer.padding)}")


def load_keras_weights(module: nn.Module, source: str | Path | KerasModel) -> KerasModel:
    """Copy a keras file's weights into `module`'s parameterised layers, in order; return the parsed file.

    The module's layers that own parameters (in registration order) must pair one to one with the
    file's Dense/Conv layers: same kind, same converted shapes, same stride and padding. Anything
    else raises KerasImportError naming both layers. Activations, pooling and dropout hold no weights:
    the caller builds the module to match them (parity tests check the outputs), so a file with an
    Activation layer that cannot be folded into a weighted layer's activation is refused.
    """
    keras = _as_model(source)
    if keras.unplaced_activations:
        raise _fail(keras.path, f"{'; '.join(keras.unplaced_activations)}. {type(module).__name__} takes one "
                                "activation per layer with weights, so it cannot hold this file: load it with "
                                "common.keras_import.keras_sequential, which keeps every layer, or set that activation "
                                "on a Dense or Conv layer (activation=...) in keras and save the model again")
    return _copy_weights(module, keras)


def _copy_weights(module: nn.Module, keras: KerasModel) -> KerasModel:
    """Copy the weights as load_keras_weights does, trusting the caller to have built every activation."""
    ours = _torch_layers(module)
    theirs = keras.weighted_layers
    if len(ours) != len(theirs):
        raise _fail(keras.path, f"has {len(theirs)} layers with weights ({', '.join(l.name for l in theirs)}) but "
                                f"{type(module).__name__} has {len(ours)} ({', '.join(n for n, _ in ours)})")
    for keras_layer, (torch_name, layer) in zip(theirs, ours):
        expected_kind = TORCH_KIND[keras_layer.kind]
        if not isinstance(layer, expected_kind):
            raise _fail(keras.path, f"layer {keras_layer.name!r} ({keras_layer.kind}) would go into "
                                    f"{torch_name!r}, a {type(layer).__name__}; expected a {expected_kind.__name__}")
        _check_geometry(keras_layer, torch_name, layer, keras.path)
        tensors = keras_layer.torch_weights()
        parameters = [layer.weight] + ([layer.bias] if layer.bias is not None else [])
        if [tuple(t.shape) for t in tensors] != [tuple(p.shape) for p in parameters]:
            raise _fail(keras.path, f"layer {keras_layer.name!r} has weights of shape "
                                    f"{[tuple(t.shape) for t in tensors]} in PyTorch layout, but {torch_name!r} has "
                                    f"{[tuple(p.shape) for p in parameters]}")
        with torch.no_grad():
            for parameter, tensor in zip(parameters, tensors):
                parameter.copy_(tensor)
    return keras


def _activation(name: str) -> list[nn.Module]:
    # Softmax over channels: keras' last axis is PyTorch's dim 1 for dense and conv outputs alike.
    return {"linear": [], "relu": [nn.ReLU()], "sigmoid": [nn.Sigmoid()], "softmax": [nn.Softmax(dim=1)],
            "tanh": [nn.Tanh()]}[name]


def keras_sequential(source: str | Path | KerasModel) -> nn.Sequential:
    """Return a PyTorch nn.Sequential computing what the keras file computes, weights loaded, in eval mode.

    Input channels-first (N, *torch_input_shape); output as keras' (N, units) for dense outputs,
    channels-first (N, C, ...) for conv outputs.
    """
    keras = _as_model(source)
    layers: list[nn.Module] = []
    for layer in keras.layers:
        c = layer.config
        if layer.kind == "Dense":
            layers.append(OneDnnLinear(layer.input_shape[0], c["units"], bias=c.get("use_bias", True)))
        elif layer.kind in ("Conv1D", "Conv2D", "Conv2DTranspose"):
            dims = len(layer.input_shape) - 1
            kernel, strides = _kernel_and_strides(layer.kind, c, dims)
            options = {"stride": strides, "bias": c.get("use_bias", True)}
            if layer.kind == "Conv2DTranspose":
                layers.append(nn.ConvTranspose2d(layer.input_shape[-1], c["filters"], kernel, **options))
            else:
                padding = tuple(k // 2 for k in kernel) if c.get("padding") == "same" else 0
                conv = nn.Conv1d if layer.kind == "Conv1D" else nn.Conv2d
                layers.append(conv(layer.input_shape[-1], c["filters"], kernel, padding=padding, **options))
        elif layer.kind in ("MaxPooling1D", "MaxPooling2D"):
            dims = len(layer.input_shape) - 1
            layers.append((nn.MaxPool1d if dims == 1 else nn.MaxPool2d)(*_kernel_and_strides(layer.kind, c, dims)))
        elif layer.kind == "Flatten":
            layers.append(nn.Flatten())
        elif layer.kind == "Dropout":
            layers.append(Dropout(c.get("rate", 0.0)))
        if layer.kind == "Activation" or (layer.kind in WEIGHTED and c.get("activation", "linear") != "linear"):
            layers += _activation(c["activation"])
    model = DenseStack(*layers)  # its Dense + ReLU pairs predict in one pass
    _copy_weights(model, keras)
    return model.eval()
