"""Backbones for 160x90 frames (N, 3, 90, 160): the course's dense net and CNN, a resnet18 for transfer, and a BN CNN.

Each exposes `out_features`; the generic Classifier adds the output layer (1, 2 or 3 logits).
Conv backbones also expose `last_conv` (the layer Grad-CAM explains).
"""
from __future__ import annotations

from pathlib import Path
from typing import Literal

import torch
from torch import nn
from torchvision.models import resnet18

from common.blockwise import ConvMaxPool
from common.checkpoints import remember_init_args
from common.cpu_linear import DenseStack, OneDnnLinear
from common.dropout import Dropout
from common.errors import DataError
from common.pooling import HalvingMaxPool

ACTIVATIONS = {"linear": nn.Identity, "relu": nn.ReLU}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


@remember_init_args
class DenseBaseline(nn.Module):
    """The course's dense net: Flatten -> Dense 100 relu -> Dense 120 relu (4,332,341 parameters with a 1-logit head).

    Layers start as keras starts them (Glorot-uniform weights, zero biases).
    """

    takes_autocast_input = True  # frames go only into a Linear, which autocast casts them for (Classifier.input_dtype)

    def __init__(self, input_shape: tuple[int, int, int] = (3, 90, 160), units: tuple[int, ...] = (100, 120)) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        width = input_shape[0] * input_shape[1] * input_shape[2]
        for n in units:
            layers += [OneDnnLinear(width, n), nn.ReLU()]
            width = n
        self.layers = DenseStack(*layers)
        self.out_features, self.input_shape = width, tuple(input_shape)
        keras_init(self)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return features (N, units[-1]) of frames (N, 3, H, W)."""
        check_frames(x, self.input_shape)
        return self.layers(x)


def check_frames(x: torch.Tensor, input_shape: tuple[int, int, int]) -> None:
    """Raise DataError unless x is a batch of frames (N, C, H, W) of the shape a fixed-size model was built for."""
    if x.dim() != 4 or tuple(x.shape[1:]) != tuple(input_shape):
        wanted = ", ".join(map(str, input_shape))
        raise DataError(f"the frames are {tuple(x.shape)}, but this model reads batches (N, {wanted}): channels "
                        "first; one frame as frame[None]; other sizes through rickmorty.images.resize_frame")


def keras_init(module: nn.Module) -> None:
    """Initialise Conv2d and Linear layers as keras does: Glorot-uniform weights, zero biases."""
    for layer in module.modules():
        if isinstance(layer, (nn.Conv2d, nn.Linear)):
            nn.init.xavier_uniform_(layer.weight)
            if layer.bias is not None:
                nn.init.zeros_(layer.bias)


def conv_relu_pool(in_channels: int, filters: int, kernel_size: int, relu_after_pool: bool = False) -> nn.Sequential:
    """Return Conv2d ('valid', as keras) -> ReLU -> MaxPool(2), or Conv2d -> MaxPool(2) + ReLU in one pass.

    Both orders give the same values (ReLU and max commute); ReLU after the pooling touches 4x
    fewer elements: the course CNN trains ~17% faster on CPU (benchmarks/README.md).
    """
    if relu_after_pool:  # on the CPU as one convolution over 2x2 blocks (ConvMaxPool)
        return ConvMaxPool(nn.Conv2d(in_channels, filters, kernel_size))
    return nn.Sequential(nn.Conv2d(in_channels, filters, kernel_size), nn.ReLU(), HalvingMaxPool(2))


@remember_init_args
class CourseCNN(nn.Module):
    """The course's image CNN: Conv 20@5x5, Conv 20@5x5, Conv 64@5x5 (each relu + maxpool 2), Flatten, Dense 100, Dropout 0.3.

    The course's Dense(100) has no activation (keras' default, linear): `dense_activation`
    "linear" is exact, "relu" an option. 90x160 frames give 64 x 7 x 16 = 7,168 flattened features.
    Layers start as keras starts them (Glorot-uniform weights, zero biases).
    """

    takes_autocast_input = True  # frames go only into the first convolution, cast as autocast would

    def __init__(self, input_shape: tuple[int, int, int] = (3, 90, 160), filters: tuple[int, ...] = (20, 20, 64),
                 kernel_size: int = 5, dense: int = 100, dropout: float = 0.3,
                 dense_activation: Literal["linear", "relu"] = "linear") -> None:
        super().__init__()
        channels = [input_shape[0], *filters]
        # The last block keeps keras' order: its ReLU output before pooling is the map Grad-CAM explains.
        blocks = [conv_relu_pool(a, b, kernel_size, relu_after_pool=i < len(filters) - 1)
                  for i, (a, b) in enumerate(zip(channels, channels[1:]))]
        self.features = nn.Sequential(*blocks)
        height, width = input_shape[1:]
        for _ in filters:
            height, width = (height - kernel_size + 1) // 2, (width - kernel_size + 1) // 2
        self.flat_features = filters[-1] * height * width
        self.dense = DenseStack(nn.Flatten(), OneDnnLinear(self.flat_features, dense),
                                ACTIVATIONS[dense_activation](), Dropout(dropout))
        self.out_features, self.input_shape = dense, tuple(input_shape)
        keras_init(self)  # keras' defaults; PyTorch's smaller default weights make the course net start slowly

    @property
    def last_conv(self) -> nn.Module:
        """The last convolution block's ReLU output (the layer Grad-CAM explains)."""
        return self.features[-1][1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return features (N, dense) of frames (N, 3, H, W)."""
        check_frames(x, self.input_shape)
        return self.dense(self.features(x))


def conv_bn_block(in_channels: int, filters: int, stride: int = 1) -> nn.Sequential:
    """Return two (Conv 3x3 -> BatchNorm -> ReLU) layers; the first may stride, the second keeps the size."""
    return nn.Sequential(nn.Conv2d(in_channels, filters, 3, stride=stride, padding=1, bias=False),
                         nn.BatchNorm2d(filters), nn.ReLU(),
                         nn.Conv2d(filters, filters, 3, padding=1, bias=False), nn.BatchNorm2d(filters), nn.ReLU())


@remember_init_args
class BatchNormCNN(nn.Module):
    """The improved CNN: stages of two conv-BN-ReLU layers with max-pooling between, then global average pooling.

    Global pooling makes the features position-independent (a character anywhere in the frame)
    and keeps the parameter count small; batch norm lets it train fast at a high learning rate.
    The first convolution strides by `stem_stride` (2: half resolution), which keeps the cost near
    the course CNN's on a CPU.
    """

    takes_autocast_input = True  # frames go only into the first convolution, which autocast casts them for

    def __init__(self, widths: tuple[int, ...] = (16, 32, 64, 128), stem_stride: int = 2,
                 dropout: float = 0.3) -> None:
        super().__init__()
        channels = [3, *widths]
        stages: list[nn.Module] = []
        for i, (a, b) in enumerate(zip(channels, channels[1:])):
            if i:
                stages.append(HalvingMaxPool(2))
            stages.append(conv_bn_block(a, b, stride=1 if i else stem_stride))
        self.features = nn.Sequential(*stages)
        self.pool = nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), Dropout(dropout))
        self.out_features = widths[-1]

    @property
    def last_conv(self) -> nn.Module:
        """The last stage's output (the layer Grad-CAM explains)."""
        return self.features[-1]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return features (N, widths[-1]) of frames (N, 3, H, W)."""
        return self.pool(self.features(x))


def load_resnet18_weights(model: nn.Module, weights_path: str | Path) -> None:
    """Load a resnet18 state dict from a local file into `model` (its fc layer, if present, is ignored)."""
    path = Path(weights_path).expanduser()
    if not path.is_file():
        raise DataError(f"resnet18 weights file {path} does not exist; nothing is downloaded at run time: save "
                        "torchvision's resnet18 state_dict there (torch.save(model.state_dict(), path)) first")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises many types for a damaged file
        raise DataError(f"{path} could not be read as a state dict ({type(error).__name__}: {error})") from error
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]
    if missing or unexpected:
        raise DataError(f"{path} is not a resnet18 state dict: missing {missing[:3]}..., unexpected {unexpected[:3]}...")


@remember_init_args
class ResNetBackbone(nn.Module):
    """torchvision's resnet18 without its classifier (512 features), weights from a local file, optionally frozen.

    `freeze` keeps the pretrained layers fixed (feature extraction); to unfreeze later, add
    Lightning's BackboneFinetuning callback (it unfreezes `model.backbone` at a set epoch).
    Frames in [0, 1] are normalised with ImageNet's mean and standard deviation first.
    """

    starting_weights_args = ("weights_path",)  # a checkpoint reloads without the file (common.checkpoints)

    def __init__(self, weights_path: str | None = None, freeze: bool = False) -> None:
        super().__init__()
        net = resnet18(weights=None)
        if weights_path:
            load_resnet18_weights(net, weights_path)
        net.fc = nn.Identity()
        self.net = net
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1), persistent=False)
        self.out_features = 512
        self.set_frozen(freeze)

    def set_frozen(self, frozen: bool) -> None:
        """Freeze (no gradients, batch-norm statistics fixed) or unfreeze the pretrained layers."""
        self.frozen = frozen
        for parameter in self.net.parameters():
            parameter.requires_grad = not frozen
        self.train(self.training)

    def train(self, mode: bool = True) -> "ResNetBackbone":
        """Set training mode; frozen layers stay in eval mode so their batch-norm statistics do not drift."""
        super().train(mode)
        if getattr(self, "frozen", False):
            self.net.eval()
        return self

    @property
    def last_conv(self) -> nn.Module:
        """The last residual stage (the layer Grad-CAM explains)."""
        return self.net.layer4

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return features (N, 512) of frames (N, 3, H, W) in [0, 1]."""
        return self.net((x - self.mean) / self.std)
