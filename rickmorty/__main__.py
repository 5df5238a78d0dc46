"""`python -m rickmorty fit|validate|test|predict --config configs/rickmorty/<experiment>.yaml`.

The model and data are chosen in the YAML by `class_path` (LightningCLI subclass mode), so the
classifier experiments (common.classifier.Classifier on rickmorty.data.FrameData) and other
LightningModules on frames (the autoencoder) share this one entry point.

predict (with --ckpt_path and --data.predict_dir) writes into the run folder predictions.csv:
file (file name), one prob_<class> column per model output, label (hard label as a class name);
plus predictions.png, every frame captioned with its prediction. After fit: training curves,
confusion matrix, error galleries and Grad-CAM overlays of validation frames.
"""
from __future__ import annotations

from pathlib import Path

import lightning as L

from common.callbacks import PredictionsCSV
from common.classifier import Classifier, load_classifier
from common.cli import DeepBioCLI, run_command_line
from common.plots import plot_confusion
from rickmorty.explain import (confusion_matrices, error_galleries, frame_pictures, image_grid,
                              predict_probabilities, save_grad_cam)


class RickMortyCLI(DeepBioCLI):
    """LightningCLI for frames: classifier plots after fit, predictions.csv and a captioned grid after predict."""

    def after_fit(self) -> None:
        """Write training curves; for a classifier also the confusion matrix, error galleries and Grad-CAM."""
        super().after_fit()
        run_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        if self.trainer.is_global_zero and run_dir and isinstance(self.model, Classifier):
            run_dir = Path(run_dir)
            print(f"fit plots written to {run_dir}: {[p.name for p in self.classifier_plots(run_dir)]}", flush=True)

    def classifier_plots(self, run_dir: Path) -> list[Path]:
        """Reload the best checkpoint; save confusion matrix, error galleries and Grad-CAM of validation frames."""
        best = self.trainer.checkpoint_callback.best_model_path if self.trainer.checkpoint_callback else ""
        model = load_classifier(best) if best else self.model.cpu().float().eval()
        images, targets, names = self.datamodule.part_frames("val")
        probs = predict_probabilities(model, images)
        paths = error_galleries(model, images, probs, targets, run_dir)
        for title, matrix, labels in confusion_matrices(model, probs, targets):
            paths.append(plot_confusion(matrix, labels, run_dir / f"confusion_{title.replace(' / ', '_')}.png", title))
        if hasattr(model.backbone, "last_conv"):
            for name in model.output_names:
                paths.append(save_grad_cam(model, images[:8], name, run_dir / f"grad_cam_{name}.png", names[:8]))
        return paths

    def after_predict(self) -> None:
        """Save predictions.png: each predicted frame captioned with its label and probabilities."""
        run_dir = self.trainer.log_dir  # a collective under DDP: every rank must ask
        # predictions.csv's rows: every rank's, in the frames' order (the predict loop holds this rank's share only).
        writer = next((c for c in self.trainer.callbacks if isinstance(c, PredictionsCSV)), None)
        if not self.trainer.is_global_zero or writer is None or writer.written is None:
            return
        ids, probs, labels = writer.written
        captions = [f"{name}\n{label} ({', '.join(f'{p:.2f}' for p in row)})"
                    for name, label, row in zip(ids, labels, probs.tolist())]
        path = image_grid(frame_pictures(self.datamodule.predict_images), captions, Path(run_dir) / "predictions.png",
                          title=f"predictions ({', '.join(self.model.output_names)})")
        print(f"prediction grid written to {path}", flush=True)


def main(args=None) -> RickMortyCLI:
    """Run the rickmorty command line; return the CLI (its trainer, model and datamodule) for scripts."""
    # The data's class names and label mode go to a Classifier (other models take no labels).
    links = (("data", "model.init_args.class_names", lambda data: data.class_names),
             ("data", "model.init_args.task", lambda data: data.task))
    return RickMortyCLI(L.LightningModule, L.LightningDataModule, args=args, command="python -m rickmorty",
                        subclass_mode_model=True, subclass_mode_data=True,
                        trainer_defaults={"callbacks": [PredictionsCSV()]}, links=links)


if __name__ == "__main__":
    run_command_line(main)
