"""The autoencoder part of the tour: the course's network trained as a denoiser; the course's own trained weights."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from common.data import BatchTensors, batch_loader
from common.paths import course_data, data_root
from common.plots import plot_training_curves, read_metrics_csv
from common.report import Figure, Section
from common.seeding import seed_everything
from common.summary import count_parameters
from common.trainer import build_trainer
from rickmorty.autoencoder import ConvAutoencoder
from rickmorty.autoencoder_plots import ReconstructionGrids, frame_mse, plot_reconstruction_grid
from rickmorty.images import as_float, read_folder
from rickmorty.keras_weights import autoencoder_from_keras
from rickmorty.noise import masking_noise
from rickmorty.synthetic import synthetic_frames


def train_denoiser(run_dir: Path, size: tuple[int, int] = (45, 80), n_train: int = 160, n_val: int = 32,
                   epochs: int = 8) -> tuple[ConvAutoencoder, Path]:
    """Train the course's autoencoder with masking noise on synthetic frames of `size`; return the best model."""
    seed_everything(0)
    frames = synthetic_frames(n_train + n_val, seed=3, size=size)[0]
    train = batch_loader(BatchTensors(frames[:n_train]), 16, shuffle=True)
    val = batch_loader(BatchTensors(frames[n_train:]), 32)
    model = ConvAutoencoder(image_size=size, noise="masking", noise_strength=0.2, lr=2e-3, channels_last=True)
    trainer = build_trainer(max_epochs=epochs, default_root_dir=str(run_dir), run_name="autoencoder_denoising",
                            monitor="val_mse", cpu_bf16=True, enable_progress_bar=False, log_every_n_steps=5,
                            callbacks=[ReconstructionGrids(n_frames=6)])
    trainer.fit(model, train, val)
    best = ConvAutoencoder.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, map_location="cpu")
    return best.eval(), Path(trainer.log_dir)


@torch.no_grad()
def course_autoencoders_on_frames(frames: torch.Tensor, models_dir: Path, out: Path, noise_fraction: float = 0.2,
                                  seed: int = 0) -> tuple[dict[str, float], list[Path]]:
    """Run modelAE.h5 on frames and modelAEND.h5 on masked frames (N, 3, 90, 160) uint8; return MSEs and grids."""
    clean = as_float(frames)
    noisy = masking_noise(clean, noise_fraction, torch.Generator().manual_seed(seed))
    metrics = {"masked input MSE": float((noisy - clean).pow(2).mean())}
    images = []
    for stem in ("modelAE", "modelAEND"):
        model = autoencoder_from_keras(models_dir / f"{stem}.h5")
        for label, inputs in (("", clean), (" from masked input", noisy)):
            rebuilt = torch.cat([model(inputs[i:i + 16]) for i in range(0, len(inputs), 16)])
            metrics[f"{stem} MSE{label}"] = float((rebuilt - clean).pow(2).mean())
            rows = {"original": clean[:6], **({"masked": noisy[:6]} if label else {}), "reconstruction": rebuilt[:6]}
            name = f"{stem}_{'masked' if label else 'clean'}.png"
            images.append(plot_reconstruction_grid(rows, out / name, f"{stem}.h5 (the course's weights){label}",
                                                   frame_mse(rows)))
    return metrics, images


def run_tour(run_dir: Path) -> list[Section]:
    """Train the course's autoencoder as a denoiser on synthetic frames; load the course's own autoencoders."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    model, folder = train_denoiser(run_dir)
    curves = plot_training_curves(folder / "metrics.csv", folder / "training_curves.png", ["mse", "psnr", "ssim"])
    course = ConvAutoencoder()
    squeezed = ConvAutoencoder(bottleneck=True)
    series = read_metrics_csv(folder / "metrics.csv")
    best_epoch = min(series["val_mse"], key=lambda row: row[1])[0]
    at_best = {k: dict(v)[best_epoch] for k, v in series.items() if k.startswith("val_")}
    sections = [Section(
        "Autoencoder: the course's network as a denoiser",
        "The course's autoencoder (Conv 20, 20, 64 @5x5 relu; ConvTranspose 64, 20, 20 @5x5 relu; Conv 3@5x5 + "
        "sigmoid) trained with binary cross-entropy to restore synthetic frames from which 20% of pixels were "
        "blacked out (the course's exercise). Frames are 80x45 here to fit the tour's time; the network is "
        "fully convolutional. The course's network has no bottleneck: its 'code' is 17x bigger than the "
        "image, so it can learn to copy; the bottleneck option pools the encoder instead. With 160 training "
        "frames (32 for validation) and 8 epochs (seconds, where the course warns of hours) it is far from "
        "trained: reconstructions keep the colours and layout, not the detail, and the validation loss is still "
        "falling.",
        {"parameters (course)": f"{count_parameters(course):,}",
         "compression ratio, course (90x160)": round(course.compression_ratio(), 3),
         "compression ratio, bottleneck=True": round(squeezed.compression_ratio(), 2),
         "parameters (bottleneck=True)": f"{count_parameters(squeezed):,}",
         "val MSE (best epoch)": at_best["val_mse"], "val MSE of the masked input": at_best["val_noisy_input_mse"],
         "val PSNR (dB)": at_best["val_psnr"], "val SSIM": at_best["val_ssim"]},
        [Figure(folder / "reconstructions_val.png", "Six validation frames: original, with 20% of pixels blacked "
                                                    "out, and the network's reconstruction (the MSE in the title is "
                                                    "over these six frames; the table's is over all 32)."),
         Figure(curves, "Training and validation MSE, PSNR and SSIM per epoch.")],
        time.perf_counter() - start)]
    if data_root() is not None:
        start = time.perf_counter()
        frames, _ = read_folder(course_data("RickandMorty/data/predictions"))
        values, images = course_autoencoders_on_frames(frames, course_data("RickandMorty/data/models"),
                                                       run_dir / "autoencoder_course_weights")
        sections.append(Section(
            "Autoencoder: the course's own trained weights on real frames",
            "modelAE.h5 and modelAEND.h5 (trained by the course in keras) loaded into this project's "
            "ConvAutoencoder (outputs match keras' to 1e-6, tests/common/test_keras_parity.py), run on the 16 "
            "frames of the course's prediction folder, clean and with 20% of pixels blacked out (MSEs over all 16, "
            "pictures of the first 6): the denoising variant restores them.",
            {k: round(v, 5) for k, v in values.items()},
            [Figure(path, f"{path.stem.replace('_', ', ')} input: originals, "
                          + ("masked inputs, " if path.stem.endswith("masked") else "") + "reconstructions.")
             for path in images], time.perf_counter() - start))
    return sections
