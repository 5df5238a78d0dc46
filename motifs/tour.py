"""The motif part of the tour: the course CNN on built-in synthetic data, ISM checked against the implants, filter logos."""
from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch
from torch import nn

from common.classifier import Classifier, load_classifier
from common.plots import plot_confusion, plot_training_curves
from common.report import Section
from common.seeding import seed_everything
from common.summary import count_parameters
from common.trainer import build_trainer
from motifs.data import MotifData
from motifs.explain import (filter_pfms, filter_similarities, implant_auroc, position_importance, substitution_ism,
                            zero_ism)
from motifs.logos import plot_attribution, plot_filter_logos
from motifs.models import CourseCNN
from motifs.pwm import known_matrix


def train(data: MotifData, backbone: nn.Module, run_dir: Path, name: str, epochs: int, optimizer: str = "adam",
          lr: float = 3e-3) -> tuple[Classifier, Path]:
    """Train a Classifier on `data`, test the best checkpoint; return it (with test metrics) and its run folder."""
    seed_everything(0)
    model = Classifier(backbone, data.class_names, task=data.task, optimizer=optimizer, lr=lr)
    trainer = build_trainer(max_epochs=epochs, default_root_dir=str(run_dir), run_name=name,
                            enable_progress_bar=False, log_every_n_steps=20)
    trainer.fit(model, data)
    best = load_classifier(trainer.checkpoint_callback.best_model_path)
    trainer.test(best, data, verbose=False)
    return best.eval(), Path(trainer.log_dir)


def ism_against_implants(model: Classifier, data: MotifData, n: int = 60) -> dict[str, object]:
    """Return ISM of n random implanted test windows (true class as target) and its AUROC against the implants."""
    test = data.splits["test"]
    implanted = np.flatnonzero(test.implant_mask.any(1))
    rows = np.sort(np.random.default_rng(0).choice(implanted, min(n, len(implanted)), replace=False))
    x, y = test.subset(rows).tensors()
    substitutions = substitution_ism(model, x, y)
    importance = position_importance(substitutions)
    return {"x": x, "y": y, "mask": test.implant_mask[rows], "importance": importance,
            "substitution_auroc": implant_auroc(importance, test.implant_mask[rows]),
            "zero_auroc": implant_auroc(zero_ism(model, x, y), test.implant_mask[rows])}


def run_tour(run_dir: Path) -> list[Section]:
    """Train the course CNN on synthetic SOX17/PRDM1/random windows; return report sections."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    data = MotifData(synthetic_per_class=1500, synthetic_sites=3)
    model, folder = train(data, CourseCNN(), run_dir, "motifs_course_synthetic", epochs=12)
    metrics = {k: float(v) for k, v in model.last_metrics.items() if v.numel() == 1}
    curves = plot_training_curves(folder / "metrics.csv", folder / "training_curves.png", ["loss", "acc"])
    confusion = plot_confusion(model.last_metrics["test_confusion"].numpy(), data.class_names,
                               folder / "confusion_test.png", "test chromosome chr10")
    sections = [Section(
        "Motifs: the course CNN finds SOX17 and PRDM1 sites",
        "200 bp windows with a genome-like composition (41% GC); SOX17 windows hold 3 instances sampled from JASPAR "
        "MA0078.1, PRDM1 windows 3 from MA0508.1, random windows none. The course CNN (Conv1d 20@5, 64@5, Dense 100, "
        f"{count_parameters(model):,} parameters) trained with Adam; split by chromosome (validation chr7, test chr10).",
        {"test accuracy": metrics["test_acc"], "test balanced accuracy": metrics["test_bal_acc"],
         "test AUROC (macro)": metrics["test_auroc"], "windows (train/val/test)":
             "/".join(str(len(data.splits[p].names)) for p in ("train", "val", "test"))},
        [curves, confusion], time.perf_counter() - start)]

    start = time.perf_counter()
    trained = ism_against_implants(model, data)
    seed_everything(0)
    untrained = ism_against_implants(Classifier(CourseCNN(), data.class_names, task="multiclass"), data)
    examples = [plot_attribution(trained["x"][i].numpy(), trained["importance"][i].numpy(),
                                 folder / f"ism_example_{i}.png", f"substitution ISM, true class "
                                 f"{data.class_names[int(trained['y'][i])]} (implants shaded)", trained["mask"][i])
                for i in (int((trained["y"] == 0).nonzero()[0]), int((trained["y"] == 1).nonzero()[0]))]
    sections.append(Section(
        "Motifs: in-silico mutagenesis points at the implanted sites",
        "Every base of 60 test windows mutated to each other base (batched: one forward pass holds many variants) "
        "and, as the course exercise, set to [0,0,0,0] (Captum FeatureAblation). AUROC of per-position importance "
        "against the known implant positions: the trained model's importance sits on the sites, an untrained one's "
        "does not.",
        {"ISM AUROC, trained (substitution)": trained["substitution_auroc"],
         "ISM AUROC, trained (zero-out, Captum)": trained["zero_auroc"],
         "ISM AUROC, untrained (substitution)": untrained["substitution_auroc"]},
        examples, time.perf_counter() - start))

    start = time.perf_counter()
    x_test, _ = data.splits["test"].tensors()
    pfms = filter_pfms(model.backbone.first_layer, x_test)
    scores = filter_similarities(pfms, {name: known_matrix(name) for name in ("SOX17", "PRDM1")})
    titles = [f"{i}: " + max(scores, key=lambda k: scores[k][i]) + f" {max(s[i] for s in scores.values()):.2f}"
              for i in range(len(pfms))]
    logos = plot_filter_logos(pfms, folder / "filter_logos.png", titles)
    sections.append(Section(
        "Motifs: first-layer filters read as motifs",
        "Each of the 20 first-layer filters (5 bp wide) as a frequency matrix of the test windows that activate it "
        "above half its maximum, drawn as a logo and compared with the JASPAR matrices (mean column correlation, "
        "best offset and strand).",
        {"best filter vs SOX17": float(scores["SOX17"].max()), "best filter vs PRDM1": float(scores["PRDM1"].max())},
        [logos], time.perf_counter() - start))
    return sections
