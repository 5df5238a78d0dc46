"""Corrupt images on the fly for a denoising autoencoder: Gaussian, salt-and-pepper and masking noise.

Pure functions on float images in [0, 1], shape (N, C, H, W); the result stays in [0, 1]. A
`generator` makes the noise reproducible (validation uses the same noise every epoch).
"""
from __future__ import annotations

from typing import Literal

import torch

from common.errors import ConfigError

NoiseKind = Literal["none", "gaussian", "salt_and_pepper", "masking"]
NOISE_KINDS = ("none", "gaussian", "salt_and_pepper", "masking")


def _pixel_mask(images: torch.Tensor, fraction: float, generator: torch.Generator | None) -> torch.Tensor:
    """Return a (N, 1, H, W) boolean mask choosing `fraction` of pixels (all channels of a pixel together)."""
    n, _, h, w = images.shape
    return torch.rand((n, 1, h, w), generator=generator, device=images.device) < fraction


def gaussian_noise(images: torch.Tensor, std: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return images plus N(0, std^2) noise per value, clipped to [0, 1]."""
    noise = torch.randn(images.shape, generator=generator, device=images.device, dtype=images.dtype)
    return (images + std * noise).clamp(0, 1)


def salt_and_pepper(images: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return images with `fraction` of pixels set to black or white (half each)."""
    hit = _pixel_mask(images, fraction, generator)
    white = torch.rand(hit.shape, generator=generator, device=images.device) < 0.5
    return torch.where(hit, white.to(images.dtype), images)


def masking_noise(images: torch.Tensor, fraction: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """Return images with `fraction` of pixels set to zero (the course's exercise: 'a random set of pixels')."""
    return images.masked_fill(_pixel_mask(images, fraction, generator), 0.0)


def add_noise(images: torch.Tensor, kind: NoiseKind, strength: float,
              generator: torch.Generator | None = None) -> torch.Tensor:
    """Return `images` corrupted by the named noise; `strength` is the std (gaussian) or pixel fraction."""
    if kind == "gaussian":
        return gaussian_noise(images, strength, generator)
    if kind == "salt_and_pepper":
        return salt_and_pepper(images, strength, generator)
    if kind == "masking":
        return masking_noise(images, strength, generator)
    if kind == "none":
        return images
    raise ConfigError(f"unknown noise {kind!r}; choose one of {', '.join(NOISE_KINDS)}")
