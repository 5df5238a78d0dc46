"""`python -m motifs fit|validate|test|predict --config configs/motifs/<experiment>.yaml`.

fit writes training_curves.png into the run folder (DeepBioCLI).

predict (with --ckpt_path and --data.predict_fasta) writes predictions.csv into the run folder:
name (FASTA record name), one prob_<class> column per model output, label.
"""
from __future__ import annotations

from common.callbacks import PredictionsCSV
from common.classifier import Classifier
from common.cli import DeepBioCLI, run_command_line
from motifs.data import MotifData


def main(args=None) -> None:
    """Run the motif command line."""
    DeepBioCLI(Classifier, MotifData, args=args, command="python -m motifs",
               trainer_defaults={"callbacks": [PredictionsCSV()]},
               links=(("data.class_names", "model.class_names"), ("data.task", "model.task")))


if __name__ == "__main__":
    run_command_line(main)
