"""`python -m motifs fit|validate|test|predict --config configs/motifs/<experiment>.yaml`.

predict (with --ckpt_path and --data.predict_fasta) writes predictions.csv into the run folder:
name (FASTA record name), one prob_<class> column per model output, label.
"""
from __future__ import annotations

from pathlib import Path

from common.callbacks import PredictionsCSV
from common.classifier import Classifier
from common.cli import DeepBioCLI
from common.plots import plot_training_curves
from motifs.data import MotifData


class MotifCLI(DeepBioCLI):
    """LightningCLI for the motif task: predictions.csv after predict, training curves after fit."""

    def after_fit(self) -> None:
        """Write training_curves.png into the run folder."""
        run_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        metrics = Path(run_dir or "") / "metrics.csv"
        if self.trainer.is_global_zero and metrics.is_file():
            print(f"training curves: {plot_training_curves(metrics, Path(run_dir) / 'training_curves.png')}",
                  flush=True)


def main(args=None) -> None:
    """Run the motif command line."""
    MotifCLI(Classifier, MotifData, args=args, trainer_defaults={"callbacks": [PredictionsCSV()]},
             links=(("data.class_names", "model.class_names"), ("data.task", "model.task")))


if __name__ == "__main__":
    main()
