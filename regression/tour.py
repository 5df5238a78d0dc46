"""The regression part of the tour: the course's sqrt net and the gap experiment, with pictures."""
from __future__ import annotations

import time
from pathlib import Path

from common.report import Figure, Section
from common.seeding import seed_everything
from common.trainer import build_trainer
from regression.data import RegressionData
from regression.experiment import summarize_fit
from regression.model import DenseRegressor


def _train(data: RegressionData, run_dir: Path, name: str, epochs: int) -> tuple[dict, Path]:
    seed_everything(0)
    model = DenseRegressor()
    # float32 on every device, as the configs ask: bf16 rounds sqrt(x) to ~3 digits (val MSE ~5x worse)
    trainer = build_trainer(max_epochs=epochs, default_root_dir=str(run_dir), run_name=name, monitor="val_mse",
                            enable_progress_bar=False, log_every_n_steps=5, precision="32-true")
    trainer.fit(model, data)
    best = DenseRegressor.load_from_checkpoint(trainer.checkpoint_callback.best_model_path, map_location="cpu")
    return summarize_fit(best, data, trainer.log_dir), Path(trainer.log_dir)


def run_tour(run_dir: Path) -> list[Section]:
    """Train the course's sqrt net and the gap experiment; return report sections."""
    sections = []
    start = time.perf_counter()
    results, folder = _train(RegressionData(), run_dir, "regression_sqrt", 300)
    sections.append(Section(
        "Regression: a dense net learns sqrt(x)",
        "The course's first model: 1 -> 100 relu -> 120 relu -> 1 (12,441 parameters), trained with Adam on "
        "50 samples of x ~ U(0, 100) and validated on 50 others; the linear fit is the baseline. "
        "Outside the training range (x > 100) neither model knows sqrt. The net's epoch is chosen on the same "
        "validation points, so its MSE is a little optimistic.",
        {"val MSE, dense net (at the epoch chosen on it)": results["val_mse_net"],
         "val MSE, linear fit": results["val_mse_linear"]},
        [Figure(folder / "fit.png", "The net (red) against the truth sqrt(x) (dashed) and the linear fit (blue) on "
                                    "0..250: the net follows the curve where it saw data (0..100), not beyond."),
         Figure(folder / "training_curves.png", "Training and validation MSE per epoch.")],
        time.perf_counter() - start))
    start = time.perf_counter()
    gap_data = RegressionData(n_train=5000, n_val=5000, high=200.0, gaps=[[80.0, 120.0]])
    results, folder = _train(gap_data, run_dir, "regression_gap", 10)
    sections.append(Section(
        "Regression: the gap experiment",
        "Trained and validated on [0, 80] and [120, 200] only (5000 samples each); the gap is scored on 5000 "
        "other points drawn inside it, which neither training nor the choice of epoch saw. Inside the "
        "gap the net interpolates the curve; the linear fit cannot bend.",
        {"MSE in the gap, dense net": results["gap_80_120_net_mse"],
         "MSE in the gap, linear fit": results["gap_80_120_linear_mse"],
         "val MSE outside the gap, dense net": results["val_mse_net"],
         "val MSE outside the gap, linear fit": results["val_mse_linear"]},
        [Figure(folder / "fit.png", "The net and the linear fit against sqrt(x); the shaded band is the gap "
                                    "(80..120) with no training data."),
         Figure(folder / "training_curves.png", "Training and validation MSE per epoch (10 epochs of 5,000 "
                                                "samples: the validation MSE still jumps between epochs).")],
        time.perf_counter() - start))
    return sections
