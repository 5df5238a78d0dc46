"""`python -m regression fit|validate|predict --config configs/regression/<experiment>.yaml`."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from lightning.pytorch.callbacks import BasePredictionWriter
from lightning.pytorch.cli import LightningCLI

from common.callbacks import gather_predictions
from common.cli import DeepBioCLI, run_command_line
from regression.data import RegressionData
from regression.experiment import summarize_fit
from regression.model import DenseRegressor


class RegressionCLI(DeepBioCLI):
    """LightningCLI for the regression task; writes plots after fit (predictions.csv: RegressionPredictionsCSV)."""

    @staticmethod
    def subcommands() -> dict[str, set[str]]:
        """Offer fit, validate and predict: the regression data has no test split (the gap is scored after fit)."""
        return {name: skip for name, skip in LightningCLI.subcommands().items() if name != "test"}

    def after_fit(self) -> None:
        """Reload the best checkpoint and write fit.png, training_curves.png and results.json."""
        run_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        if not self.trainer.is_global_zero:
            return
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        model = DenseRegressor.load_from_checkpoint(best, map_location="cpu") if best else self.model.cpu()
        results = summarize_fit(model, self.datamodule, run_dir)
        print(f"results ({run_dir}): {results}", flush=True)


class RegressionPredictionsCSV(BasePredictionWriter):
    """Write predictions.csv (x..., y_pred...) into the run folder; under DDP rank zero writes every rank's rows."""

    def __init__(self) -> None:
        super().__init__(write_interval="epoch")

    def write_on_epoch_end(self, trainer, pl_module, predictions, batch_indices) -> None:
        """Gather every rank's predictions and write them beside their inputs, in the inputs' order."""
        path = Path(trainer.log_dir or ".") / "predictions.csv"  # a collective under DDP: read on every rank
        gathered = gather_predictions(trainer, predictions, batch_indices)
        if gathered is None:
            return
        rows, y = gathered
        x = trainer.datamodule.predict_inputs()
        x, y = (x[rows] if rows else x), y.numpy()
        header = [f"x{i}" if x.shape[1] > 1 else "x" for i in range(x.shape[1])]
        header += [f"y_pred{i}" if y.shape[1] > 1 else "y_pred" for i in range(y.shape[1])]
        np.savetxt(path, np.hstack([x, y]), delimiter=",", header=",".join(header), comments="", fmt="%.6g")
        print(f"predictions written to {path}", flush=True)


def main(args=None) -> None:
    """Run the regression command line."""
    RegressionCLI(DenseRegressor, RegressionData, args=args, command="python -m regression",
                  trainer_defaults={"callbacks": [RegressionPredictionsCSV()]},
                  links=(("data.n_inputs", "model.n_inputs"), ("data.n_outputs", "model.n_outputs")))


if __name__ == "__main__":
    run_command_line(main)
