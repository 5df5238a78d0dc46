"""The autoencoder configs run through `python -m rickmorty` (tiny synthetic data, a few steps)."""
from __future__ import annotations

from pathlib import Path

import pytest

from rickmorty.__main__ import main

CONFIGS = Path(__file__).parent.parent.parent / "configs" / "rickmorty"


@pytest.mark.parametrize("config", ["autoencoder.yaml", "denoising_autoencoder.yaml"])
def test_autoencoder_config_fits_and_draws(tmp_path, config):
    main(["fit", "--config", str(CONFIGS / config), "--data.data_dir", "null", "--data.synthetic_count", "24",
          "--data.batch_size", "4", "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "2",
          "--trainer.limit_val_batches", "1", "--trainer.enable_progress_bar", "false",
          "--trainer.default_root_dir", str(tmp_path)])
    run = next(tmp_path.glob("*/version_0"))
    assert any("val_mse" in p.name for p in (run / "checkpoints").glob("best-*.ckpt"))
    assert (run / "reconstructions_val.png").is_file() and (run / "training_curves.png").is_file()
