"""After training: plots and the gap comparison written into the run folder."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from common.plots import plot_training_curves
from regression.baseline import fit_linear
from regression.data import RegressionData
from regression.evaluate import compare_in_range, predict_array
from regression.plots import plot_fit
from regression.targets import apply_target


def summarize_fit(model, data: RegressionData, run_dir: str | Path) -> dict:
    """Write fit.png, training_curves.png and results.json into run_dir; return the results."""
    run_dir = Path(run_dir)
    linear = fit_linear(data.x_train, data.y_train)
    results = {"val_mse_net": float(np.mean((predict_array(model, data.x_val) - data.y_val) ** 2)),
               "val_mse_linear": float(np.mean((linear.predict(data.x_val) - data.y_val) ** 2))}
    scored_gaps = data.hparams.gaps if data.x_gap is not None else None  # gaps may lie outside [low, high]
    for gap in scored_gaps or []:
        # Scored on samples drawn inside the gaps, which neither training nor the choice of epoch saw.
        comparison = compare_in_range(model, linear, data.x_gap, data.y_gap, *gap)
        results.update({f"gap_{gap[0]:g}_{gap[1]:g}_{k}": v for k, v in comparison.items()})
    if data.n_inputs == 1:
        grid = data.predict_inputs()
        truth = None if data.hparams.csv_path else apply_target(data.hparams.function, grid)[:, 0]
        plot_fit(grid[:, 0], predict_array(model, grid)[:, 0], linear.predict(grid)[:, 0], truth,
                 data.x_train, data.y_train, data.hparams.gaps, run_dir / "fit.png", data.data_source)
    metrics_csv = run_dir / "metrics.csv"
    if metrics_csv.is_file():
        plot_training_curves(metrics_csv, run_dir / "training_curves.png", ["mse", "mae"])
    (run_dir / "results.json").write_text(json.dumps(results, indent=2))
    return results
