"""Pictures of an autoencoder at work: originals / noisy inputs / reconstructions as one grid PNG."""
from __future__ import annotations

from pathlib import Path

import lightning as L
import matplotlib.pyplot as plt
import torch

from common.plots import save_figure
from rickmorty.autoencoder import ConvAutoencoder


def plot_reconstruction_grid(rows: dict[str, torch.Tensor], path: str | Path, title: str = "",
                             mse: torch.Tensor | None = None) -> Path:
    """Draw one row per entry of `rows` (images (N, 3, H, W) in [0, 1]), one column per frame; return the PNG path.

    `mse`, shape (N,), is written under each reconstruction.
    """
    names = list(rows)
    n = len(rows[names[0]])
    fig, axes = plt.subplots(len(names), n, figsize=(2.2 * n, 1.45 * len(names)), squeeze=False)
    for r, name in enumerate(names):
        for c in range(n):
            ax = axes[r, c]
            ax.imshow(rows[name][c].detach().float().clamp(0, 1).permute(1, 2, 0).cpu().numpy())
            ax.set_xticks([])
            ax.set_yticks([])
            if c == 0:
                ax.set_ylabel(name, fontsize=9)
            if mse is not None and r == len(names) - 1:
                ax.set_xlabel(f"MSE {float(mse[c]):.4f}", fontsize=8)
    fig.suptitle(title, fontsize=10)
    return save_figure(fig, path)


def reconstruct(model: ConvAutoencoder, images: torch.Tensor, seed: int = 0) -> dict[str, torch.Tensor]:
    """Return {'original', ['noisy',] 'reconstruction'} for images (N, 3, H, W); noise only for a denoising model."""
    model.eval()
    clean = model.batch_images(images.to(model.device))
    noisy = model.corrupt(clean, torch.Generator(device=clean.device).manual_seed(seed))
    with torch.no_grad():
        rows = {"original": clean}
        if model.hparams.noise != "none":
            rows["noisy"] = noisy
        rows["reconstruction"] = model(noisy)
    return rows


def frame_mse(rows: dict[str, torch.Tensor]) -> torch.Tensor:
    """Return the per-frame MSE between reconstruction and original, shape (N,)."""
    return (rows["reconstruction"] - rows["original"]).pow(2).flatten(1).mean(1)


def first_frames(loader, n: int) -> torch.Tensor:
    """Return the first n images a dataloader yields (labels dropped)."""
    taken, count = [], 0
    for batch in loader:
        images = batch[0] if isinstance(batch, (tuple, list)) else batch
        taken.append(images[: n - count])
        count += len(taken[-1])
        if count >= n:
            break
    return torch.cat(taken)


def _first_loader(loaders):
    return loaders[0] if isinstance(loaders, (list, tuple)) else loaders


class ReconstructionGrids(L.Callback):
    """Write reconstructions_val.png after fit (best checkpoint) and reconstructions_predict.png after predict."""

    def __init__(self, n_frames: int = 6) -> None:
        self.n_frames = n_frames

    def _write(self, model: ConvAutoencoder, loader, path: Path, title: str) -> None:
        rows = reconstruct(model, first_frames(loader, self.n_frames))
        mse = frame_mse(rows)
        plot_reconstruction_grid(rows, path, f"{title} (mean MSE {float(mse.mean()):.4f})", mse)
        print(f"reconstruction grid written to {path}", flush=True)

    def on_fit_end(self, trainer: L.Trainer, pl_module: ConvAutoencoder) -> None:
        """Draw validation frames through the best checkpoint (by the monitored metric)."""
        run_dir = trainer.log_dir
        if not trainer.is_global_zero or not run_dir:
            return
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        model = type(pl_module).load_from_checkpoint(best, map_location="cpu") if best else pl_module
        self._write(model, _first_loader(trainer.val_dataloaders), Path(run_dir) / "reconstructions_val.png",
                    "validation frames")

    def on_predict_end(self, trainer: L.Trainer, pl_module: ConvAutoencoder) -> None:
        """Draw the first frames of the prediction set."""
        run_dir = trainer.log_dir
        if trainer.is_global_zero and run_dir:
            self._write(pl_module, _first_loader(trainer.predict_dataloaders),
                        Path(run_dir) / "reconstructions_predict.png", "prediction frames")
