"""The course's convolutional autoencoder (and its denoising and bottleneck variants) as a LightningModule."""
from __future__ import annotations

from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn
from torchmetrics import MeanSquaredError, MetricCollection
from torchmetrics.image import PeakSignalNoiseRatio, StructuralSimilarityIndexMeasure

from common.checkpoints import accepted_hparams
from common.conv_weight_grad import ProductGradConvTranspose2d
from common.errors import ConfigError
from common.memory_format import channels_last, convolutions_to_channels_last
from common.optim import make_optimizer
from common.train_loss import TrainLossLogging
from rickmorty.images import as_float
from rickmorty.noise import NOISE_KINDS, NoiseKind, add_noise


def reconstruction_metrics(prefix: str) -> MetricCollection:
    """Return MSE, PSNR and SSIM for images in [0, 1]."""
    return MetricCollection({"mse": MeanSquaredError(), "psnr": PeakSignalNoiseRatio(data_range=1.0),
                             "ssim": StructuralSimilarityIndexMeasure(data_range=1.0)}, prefix=prefix)


def course_layers(filters: Sequence[int], k: int) -> tuple[nn.Sequential, nn.Sequential]:
    """Return (encoder, decoder) as the course: 'valid' convolutions down, transposed convolutions back up.

    Nothing is pooled, so the code (64 x 78 x 148 for 90 x 160 frames) is larger than the image.
    """
    encoder, decoder = [], []
    for c_in, c_out in zip([3, *filters], filters):
        encoder += [nn.Conv2d(c_in, c_out, k), nn.ReLU()]
    up = list(reversed(filters))
    for c_in, c_out in zip([up[0], *up], up):
        decoder += [ProductGradConvTranspose2d(c_in, c_out, k), nn.ReLU()]
    decoder.append(nn.Conv2d(filters[0], 3, k, padding=k // 2))
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


def bottleneck_layers(filters: Sequence[int], k: int, code_channels: int,
                      image_size: tuple[int, int]) -> tuple[nn.Sequential, nn.Sequential]:
    """Return (encoder, decoder) that halve the image per level (max-pool) down to `code_channels` maps.

    The decoder upsamples back to the exact size of each level, so odd frame sizes come back whole.
    """
    sizes = [tuple(image_size)]
    for _ in filters:
        sizes.append(tuple((n + 1) // 2 for n in sizes[-1]))  # MaxPool2d(2, ceil_mode=True)
    encoder = []
    for c_in, c_out in zip([3, *filters], filters):
        encoder += [nn.Conv2d(c_in, c_out, k, padding=k // 2), nn.ReLU(), nn.MaxPool2d(2, ceil_mode=True)]
    encoder += [nn.Conv2d(filters[-1], code_channels, 1), nn.ReLU()]
    decoder = []
    up = list(reversed(filters))
    for c_in, c_out, size in zip([code_channels, *up], up, reversed(sizes[:-1])):
        decoder += [nn.Upsample(size=size), nn.ConvTranspose2d(c_in, c_out, k, padding=k // 2), nn.ReLU()]
    decoder.append(nn.Conv2d(filters[0], 3, k, padding=k // 2))
    return nn.Sequential(*encoder), nn.Sequential(*decoder)


class ConvAutoencoder(TrainLossLogging):
    """Convolutional autoencoder for RGB frames in [0, 1], shape (N, 3, H, W); trained with BCE, MSE reported.

    Default: the course's network exactly (Conv 20@5, 20@5, 64@5 relu; ConvTranspose 64@5, 20@5,
    20@5 relu; Conv 3@5 'same' + sigmoid; 189,611 parameters). `bottleneck=True` pools the
    encoder so the code is really compressed (see `compression_ratio`). `noise` other than "none"
    makes it a denoising autoencoder: the input is corrupted on the fly, the target stays clean.
    Batches are images or (images, ...) tuples; uint8 images are scaled to [0, 1].
    """

    def __init__(
        self,
        image_size: tuple[int, int] = (90, 160),
        filters: Sequence[int] = (20, 20, 64),
        kernel_size: int = 5,
        bottleneck: bool = False,
        code_channels: int = 16,
        noise: NoiseKind = "none",
        noise_strength: float = 0.2,
        optimizer: str = "adam",
        lr: float = 1e-3,
        weight_decay: float = 0.0,
        channels_last: bool = False,
    ) -> None:
        super().__init__()
        self.save_hyperparameters()
        if noise not in NOISE_KINDS:
            raise ConfigError(f"unknown noise {noise!r}; choose one of {', '.join(NOISE_KINDS)}")
        if not filters or kernel_size % 2 == 0:
            raise ConfigError(f"need at least one filter count and an odd kernel size, got {filters}, {kernel_size}")
        if bottleneck:
            self.encoder, self.decoder = bottleneck_layers(filters, kernel_size, code_channels, image_size)
        else:
            self.encoder, self.decoder = course_layers(filters, kernel_size)
        self.channels_last = channels_last
        self.val_metrics = reconstruction_metrics("val_")
        self.test_metrics = reconstruction_metrics("test_")
        self.val_noisy_mse = MeanSquaredError()

    def code_shape(self) -> tuple[int, ...]:
        """Return the shape (C, h, w) of the code the encoder makes from one frame."""
        with torch.no_grad():
            return tuple(self.encoder(torch.zeros(1, 3, *self.hparams.image_size, device=self.device)).shape[1:])

    def compression_ratio(self) -> float:
        """Return input values per code value (below 1: the 'code' is bigger than the image)."""
        code = torch.Size(self.code_shape()).numel()
        return 3 * self.hparams.image_size[0] * self.hparams.image_size[1] / code

    def logits(self, images: torch.Tensor) -> torch.Tensor:
        """Return the reconstruction before the sigmoid, shape (N, 3, H, W)."""
        size = tuple(self.hparams.image_size)
        if self.hparams.bottleneck and tuple(images.shape[-2:]) != size:
            # Its upsampling layers have fixed sizes: other frames would come back stretched to image_size.
            raise ConfigError(f"this bottleneck autoencoder is built for {size[0]}x{size[1]} (HxW) frames, these are "
                              f"{images.shape[-2]}x{images.shape[-1]}: resize them, or build it with image_size "
                              f"[{images.shape[-2]}, {images.shape[-1]}] (the course autoencoder takes any size)")
        if self.channels_last:
            images = channels_last(images)
        return self.decoder(self.encoder(images)).contiguous()  # metrics and users expect NCHW order

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        """Return reconstructions in [0, 1], shape (N, 3, H, W), of images (N, 3, H, W)."""
        return torch.sigmoid(self.logits(images))

    def corrupt(self, images: torch.Tensor, generator: torch.Generator | None = None) -> torch.Tensor:
        """Return the network's input: `images` with this model's noise (unchanged without noise)."""
        return add_noise(images, self.hparams.noise, self.hparams.noise_strength, generator)

    @staticmethod
    def batch_images(batch) -> torch.Tensor:
        """Return the images of a batch as float in [0, 1]; labels, if any, are ignored."""
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        return as_float(images)

    def setup(self, stage: str) -> None:
        """Put the convolutions' weights in the channels-fastest layout when `channels_last` is set."""
        if self.channels_last:
            convolutions_to_channels_last(self)

    def on_fit_start(self) -> None:
        """Say how much the code compresses a frame (the course's network: not at all)."""
        height, width = self.hparams.image_size
        self.print(f"autoencoder code {self.code_shape()} for frames (3, {height}, {width}): "
                   f"compression ratio {self.compression_ratio():.3g}")

    def training_step(self, batch, batch_idx):
        """Return the BCE-with-logits loss of rebuilding clean frames from corrupted ones (logged as train_loss)."""
        clean = self.batch_images(batch)
        loss = F.binary_cross_entropy_with_logits(self.logits(self.corrupt(clean)).float(), clean)
        self.log_train_loss(loss, len(clean))
        return loss

    def _evaluate(self, batch, batch_idx: int, metrics: MetricCollection, prefix: str) -> None:
        clean = self.batch_images(batch)
        # The same noise every epoch, so validation numbers are comparable between epochs.
        generator = torch.Generator(device=clean.device).manual_seed(batch_idx)
        noisy = self.corrupt(clean, generator)
        logits = self.logits(noisy).float()
        self.log(f"{prefix}_loss", F.binary_cross_entropy_with_logits(logits, clean), prog_bar=True,
                 batch_size=len(clean), sync_dist=True)
        metrics.update(torch.sigmoid(logits), clean)
        if prefix == "val" and self.hparams.noise != "none":
            self.val_noisy_mse.update(noisy, clean)

    def validation_step(self, batch, batch_idx):
        """Log val_loss and update val MSE/PSNR/SSIM on a batch (noise seeded by batch_idx: same every epoch)."""
        self._evaluate(batch, batch_idx, self.val_metrics, "val")

    def on_validation_epoch_end(self) -> None:
        """Log the epoch's val MSE, PSNR, SSIM (and val_noisy_input_mse with noise), then reset them."""
        self.log_dict(self.val_metrics.compute(), prog_bar=True)
        self.val_metrics.reset()
        if self.hparams.noise != "none":
            self.log("val_noisy_input_mse", self.val_noisy_mse.compute())
            self.val_noisy_mse.reset()

    def test_step(self, batch, batch_idx):
        """Log test_loss and update test MSE/PSNR/SSIM on a batch (noise seeded by batch_idx, as in validation)."""
        self._evaluate(batch, batch_idx, self.test_metrics, "test")

    def on_test_epoch_end(self) -> None:
        """Log the test run's MSE, PSNR and SSIM, then reset them."""
        self.log_dict(self.test_metrics.compute())
        self.test_metrics.reset()

    def predict_step(self, batch, batch_idx):
        """Return reconstructions of the given frames (as they are: no noise is added)."""
        return self(self.batch_images(batch))

    def configure_optimizers(self):
        """Return the configured optimiser (optimizer, lr, weight_decay) over all parameters; no schedule."""
        return make_optimizer(self.parameters(), self.hparams.optimizer, self.hparams.lr, self.hparams.weight_decay)

    def on_save_checkpoint(self, checkpoint: dict) -> None:
        """Save only the hparams ConvAutoencoder takes (plus LightningCLI's class keys), so it can be rebuilt."""
        # `python -m rickmorty` links the data's class names and task into every model's hparams; an
        # autoencoder takes neither, and `--ckpt_path` would pass them back to __init__.
        # LightningCLI's own keys stay: they rebuild the model from the checkpoint.
        checkpoint["hyper_parameters"] = accepted_hparams(ConvAutoencoder, checkpoint["hyper_parameters"],
                                                          keep=("_class_path", "_instantiator"))
