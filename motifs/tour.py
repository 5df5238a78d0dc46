"""The motif part of the tour: the course CNN on built-in synthetic data, ISM against the implants, filter logos."""
from __future__ import annotations

import time
from pathlib import Path

import torch

from common.classifier import Classifier
from common.plots import plot_confusion, plot_training_curves
from common.report import Figure, Section
from common.seeding import seed_everything
from common.summary import count_parameters
from motifs.experiment import ism_against_implants, train_on_synthetic
from motifs.explain import filter_pfms, filter_similarities
from motifs.logos import plot_attribution, plot_filter_logos
from motifs.models import CourseCNN
from motifs.pwm import known_matrix


def run_tour(run_dir: Path) -> list[Section]:
    """Train the course CNN on synthetic SOX17/PRDM1/random windows; return report sections."""
    torch.set_num_threads(min(2, torch.get_num_threads()))
    start = time.perf_counter()
    model, data, folder = train_on_synthetic(run_dir, "motifs_course_synthetic")
    metrics = {k: float(v) for k, v in model.last_metrics.items() if v.numel() == 1}
    curves = plot_training_curves(folder / "metrics.csv", folder / "training_curves.png", ["loss", "acc"])
    confusion = plot_confusion(model.last_metrics["test_confusion"].numpy(), data.class_names,
                               folder / "confusion_test.png", "test windows")
    sections = [Section(
        "Motifs: the course CNN finds SOX17 and PRDM1 sites",
        "100 bp windows with a genome-like composition (41% GC); SOX17 windows hold 3 instances sampled from JASPAR "
        "MA0078.1, PRDM1 windows 3 from MA0508.1, random windows none. The course CNN (Conv1d 20@5, 64@5, Dense 100 "
        f"relu, {count_parameters(model):,} parameters) trained 8 epochs with Adam; random 80/10/10 split; the "
        "epoch is chosen on validation, the test windows are scored once.",
        {"test accuracy": metrics["test_acc"], "test balanced accuracy": metrics["test_bal_acc"],
         "test AUROC (macro)": metrics["test_auroc"], "chance accuracy (3 balanced classes)": round(1 / 3, 3),
         "windows (train/val/test)": "/".join(str(len(data.splits[p].names)) for p in ("train", "val", "test"))},
        [Figure(curves, "Loss and accuracy per epoch, training and validation."),
         Figure(confusion, "Confusion matrix on the test windows: rows are the truth, columns the prediction.")],
        time.perf_counter() - start)]

    start = time.perf_counter()
    trained = ism_against_implants(model, data)
    seed_everything(0)
    untrained = ism_against_implants(Classifier(CourseCNN(length=100), data.class_names, task="multiclass"), data)
    examples = [plot_attribution(trained["x"][i].numpy(), trained["importance"][i].numpy(),
                                 folder / f"ism_example_{i}.png", f"substitution ISM, true class "
                                 f"{data.class_names[int(trained['y'][i])]} (implants shaded)", trained["mask"][i])
                for i in (int((trained["y"] == 0).nonzero()[0]), int((trained["y"] == 1).nonzero()[0]))]
    examples = [Figure(path, "One test window: above, each position's importance (the drop in the predicted "
                             "probability of the true class when the base is changed, averaged over the 3 other "
                             "bases; red: changes that raise it); below, the bases scaled by importance around the "
                             "strongest one. Shaded: the implanted sites. A window the model is sure of shows small "
                             "drops, because one change cannot move a probability near 1 far.")
                for path in examples]
    sections.append(Section(
        "Motifs: in-silico mutagenesis points at the implanted sites",
        "Every base of 60 test windows mutated to each other base (batched: one forward pass holds many variants) "
        "and, as the course exercise, set to [0,0,0,0] (Captum FeatureAblation). AUROC of per-position importance "
        "against the known implant positions (0.5: no better than chance): the trained model's importance "
        "leans towards the sites, an untrained one's does not.",
        {"ISM AUROC, trained (substitution)": trained["substitution_auroc"],
         "ISM AUROC, trained (zero-out, Captum)": trained["zero_auroc"],
         "ISM AUROC, untrained (substitution)": untrained["substitution_auroc"]},
        examples, time.perf_counter() - start))

    start = time.perf_counter()
    x_test, _ = data.splits["test"].tensors()
    known = {name: known_matrix(name) for name in ("SOX17", "PRDM1")}
    pfms = filter_pfms(model.backbone.first_layer, x_test)
    scores = filter_similarities(pfms, known)
    seed_everything(0)
    baseline = filter_similarities(filter_pfms(CourseCNN(length=100).first_layer, x_test), known)
    titles = [f"{i}: " + max(scores, key=lambda k: scores[k][i]) + f" {max(s[i] for s in scores.values()):.2f}"
              for i in range(len(pfms))]
    logos = plot_filter_logos(pfms, folder / "filter_logos.png", titles)
    sections.append(Section(
        "Motifs: first-layer filters read as motifs",
        "Each of the 20 first-layer filters (5 bp wide) as a frequency matrix of the test windows that activate it "
        "above half its maximum, drawn as a logo and compared with the JASPAR matrices (mean column correlation, "
        "best offset and strand). An untrained network's filters give the baseline: a longer matrix (PRDM1, 15 "
        "columns; SOX17, 9) offers more offsets to match, so its scores run higher by chance.",
        {"best filter vs SOX17": float(scores["SOX17"].max()), "best filter vs PRDM1": float(scores["PRDM1"].max()),
         "untrained, best filter vs SOX17": float(baseline["SOX17"].max()),
         "untrained, best filter vs PRDM1": float(baseline["PRDM1"].max())},
        [Figure(logos, "The 20 first-layer filters as sequence logos (letter height: information in bits), each "
                       "titled with the JASPAR matrix it resembles most and the similarity (1 is identical).")],
        time.perf_counter() - start))
    return sections
