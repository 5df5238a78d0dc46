"""Augmentation as the course's image_data_generator: shear, rotation, shift, flips, colour jitter, noise (transforms v2)."""
from __future__ import annotations

import torch
from torchvision.transforms import v2


def augmentation(rotation: float = 15.0, shear: float = 10.0, shift: float = 0.1, flip: bool = True,
                 jitter: float = 0.2, noise: float = 0.03) -> v2.Compose:
    """Return a transform from a uint8 (3, H, W) frame to a randomly altered float (3, H, W) frame in [0, 1]."""
    steps = [v2.ToDtype(torch.float32, scale=True)]
    if flip:
        steps.append(v2.RandomHorizontalFlip())
    if rotation or shear or shift:
        steps.append(v2.RandomAffine(degrees=rotation, translate=(shift, shift), shear=shear))
    if jitter:
        steps.append(v2.ColorJitter(brightness=jitter, contrast=jitter, saturation=jitter))
    if noise:
        steps.append(v2.GaussianNoise(sigma=noise, clip=True))
    return v2.Compose(steps)
