"""The course's convolutional autoencoder: architecture, noise, denoising training, metrics, pictures."""
from __future__ import annotations

import csv

import lightning as L
import pytest
import torch

from common.data import BatchTensors, batch_loader
from common.errors import ConfigError
from common.seeding import seed_everything
from common.summary import count_parameters
from common.trainer import build_trainer
from rickmorty.autoencoder import ConvAutoencoder
from rickmorty.autoencoder_plots import ReconstructionGrids
from rickmorty.noise import add_noise, gaussian_noise, masking_noise, salt_and_pepper
from rickmorty.synthetic import synthetic_frames


class Frames(L.LightningDataModule):
    """Unlabelled uint8 frames for the autoencoder, as a datamodule hands them over."""

    def __init__(self, train: torch.Tensor, val: torch.Tensor) -> None:
        super().__init__()
        self.train, self.val = train, val

    def train_dataloader(self):
        return batch_loader(BatchTensors(self.train), 16, shuffle=True)

    def val_dataloader(self):
        return batch_loader(BatchTensors(self.val), 32)


def test_course_architecture_and_bottleneck():
    course = ConvAutoencoder()
    assert count_parameters(course) == 189_611  # keras' summary of modelAE.h5
    assert course.code_shape() == (64, 78, 148)
    assert course.compression_ratio() == pytest.approx(43_200 / (64 * 78 * 148))  # < 1: no compression at all
    squeezed = ConvAutoencoder(image_size=(45, 79), bottleneck=True, code_channels=8)
    assert squeezed.code_shape() == (8, 6, 10)
    assert squeezed.compression_ratio() == pytest.approx(3 * 45 * 79 / (8 * 6 * 10))
    assert squeezed(torch.rand(2, 3, 45, 79)).shape == (2, 3, 45, 79)  # odd sizes come back whole
    with pytest.raises(ConfigError, match=r"built for 45x79 \(HxW\) frames, these are 90x160"):
        squeezed(torch.rand(2, 3, 90, 160))  # its upsampling would stretch them to 45x79
    assert ConvAutoencoder(filters=(4,), kernel_size=3)(torch.rand(1, 3, 20, 30)).shape == (1, 3, 20, 30)
    with pytest.raises(ConfigError, match="unknown noise"):
        ConvAutoencoder(noise="pink")


def test_noise_kinds_corrupt_as_named():
    images = torch.full((4, 3, 30, 40), 0.5)
    g = lambda: torch.Generator().manual_seed(0)  # noqa: E731
    masked = masking_noise(images, 0.3, g())
    hit = (masked == 0).all(1)  # whole pixels (all channels) are masked together
    assert 0.25 < hit.float().mean() < 0.35 and torch.equal(masked[:, 0] == 0, hit)
    salted = salt_and_pepper(images, 0.2, g())
    values = salted.unique()
    assert set(values.tolist()) == {0.0, 0.5, 1.0}
    noisy = gaussian_noise(images, 0.1, g())
    assert 0.09 < (noisy - images).std() < 0.11 and noisy.min() >= 0 and noisy.max() <= 1
    assert torch.equal(add_noise(images, "masking", 0.3, g()), masked)  # reproducible with a generator
    assert add_noise(images, "none", 0.3) is images
    with pytest.raises(ConfigError, match="unknown noise"):
        add_noise(images, "speckle", 0.1)


def test_denoising_autoencoder_beats_its_noisy_input(tmp_path):
    seed_everything(0)
    data = Frames(synthetic_frames(96, seed=0, size=(24, 40))[0], synthetic_frames(32, seed=1, size=(24, 40))[0])
    # The course's layout with fewer filters, on small frames: the same mechanism, a fraction of the time.
    model = ConvAutoencoder(image_size=(24, 40), filters=(12, 12, 32), noise="masking", noise_strength=0.25, lr=5e-3)
    trainer = build_trainer(max_epochs=10, default_root_dir=str(tmp_path), run_name="dae", monitor="val_mse",
                            enable_progress_bar=False, check_val_every_n_epoch=5, log_every_n_steps=4,
                            callbacks=[ReconstructionGrids(n_frames=4)])
    trainer.fit(model, data)
    metrics = trainer.callback_metrics
    assert {"val_mse", "val_psnr", "val_ssim", "val_noisy_input_mse"} <= set(metrics)
    best = ConvAutoencoder.load_from_checkpoint(trainer.checkpoint_callback.best_model_path).eval()
    assert "val_mse" in trainer.checkpoint_callback.best_model_path
    clean = data.val.float() / 255
    noisy = best.corrupt(clean, torch.Generator().manual_seed(7))
    with torch.no_grad():
        reconstructed = best(noisy)
    noisy_mse = (noisy - clean).pow(2).mean()
    assert (reconstructed - clean).pow(2).mean() < 0.8 * noisy_mse  # observed: about 0.6
    assert (tmp_path / "dae" / "version_0" / "reconstructions_val.png").stat().st_size > 5_000
    with open(tmp_path / "dae" / "version_0" / "metrics.csv") as handle:
        epoch_losses = [float(row["train_loss"]) for row in csv.DictReader(handle) if row.get("train_loss")]
    assert len(epoch_losses) == 10 and epoch_losses[-1] < 0.97 * epoch_losses[0]  # BCE per epoch: 0.69 -> 0.65
