"""Fixtures for the frame tasks: a small trained CNN on synthetic frames, and folders of frame files."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.io import encode_jpeg

from common.classifier import Classifier
from common.seeding import seed_everything
from common.trainer import build_trainer
from rickmorty.data import FrameData
from rickmorty.models import CourseCNN
from rickmorty.synthetic import synthetic_frames


def write_jpeg(path: Path, image: torch.Tensor) -> Path:
    """Write a uint8 (C, H, W) image as a JPEG file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(encode_jpeg(image, quality=95).numpy().tobytes())
    return path


def write_png(path: Path, image: torch.Tensor) -> Path:
    """Write a uint8 (C, H, W) image (grey, RGB or RGBA) as a PNG file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    array = image.permute(1, 2, 0).numpy()
    Image.fromarray(array[..., 0] if array.shape[-1] == 1 else array).save(path)
    return path


@pytest.fixture(scope="session")
def frame_tree(tmp_path_factory) -> Path:
    """A folder-per-class tree (morty/, rick/) of synthetic JPEG frames: 12 per class, rick frames contain a rick."""
    root = tmp_path_factory.mktemp("frames")
    images, presence, _ = synthetic_frames(80, seed=3)
    counts = {"rick": 0, "morty": 0}
    for image, (rick, morty) in zip(images, presence.tolist()):
        name = "rick" if rick else "morty" if morty else None
        if name and counts[name] < 12:
            write_jpeg(root / name / f"{name}_{counts[name]:02d}.jpg", image)
            counts[name] += 1
    return root


@pytest.fixture(scope="session")
def synthetic_cnn(tmp_path_factory) -> tuple[Classifier, FrameData]:
    """The course CNN trained briefly ("rick?") on synthetic frames, with its data module (bf16 + channels_last)."""
    seed_everything(0)  # a session fixture starts after whichever test came first: its weights must not depend on it
    data = FrameData(None, task="binary", synthetic_count=900, batch_size=16, seed=1)
    model = Classifier(CourseCNN(), data.class_names, task="binary", channels_last=True)
    trainer = build_trainer(max_epochs=4, cpu_bf16=True, default_root_dir=str(tmp_path_factory.mktemp("runs")),
                            enable_progress_bar=False, logger=False, enable_checkpointing=False)
    trainer.fit(model, data)
    return model.float().eval(), data
