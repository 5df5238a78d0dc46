"""Real-data checks of the course's own keras models loaded into deepbio (issue 5), written to benchmarks/results/.

    /work/venv/bin/python benchmarks/keras_import_report.py            # ~30 s on 2 CPU cores

1. Parity: max |deepbio - keras| on the golden fixtures (tests/fixtures/keras_golden/) for every file.
2. modelCNNTF.h5 (trained by the course on SOX17 / PRDM1 / random) on the real SOX17 peaks: what it
   predicts, against dinucleotide-shuffled copies of the same peaks; then substitution ISM towards
   SOX17 on a sample of peaks: do the most important positions fall in SOX17 (JASPAR MA0078.1) sites?
3. modelAE.h5 / modelAEND.h5 on real frames: reconstruction MSE, grids, and the denoiser on masked frames.
4. convmodel.h5 (an image CNN) on the prediction folder, whose file names hint at the answer.
Writes benchmarks/results/keras_import_report.{json,md}; the grids (real frames: not for the repository)
go to runs/keras_import_report/.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.classifier import Classifier  # noqa: E402
from common.keras_import import keras_sequential  # noqa: E402
from common.paths import course_data  # noqa: E402
from motifs.encode import one_hot, sequence_codes  # noqa: E402
from motifs.explain import position_importance, predict, substitution_ism, top_position_enrichment  # noqa: E402
from motifs.io import read_fasta  # noqa: E402
from motifs.keras_weights import motif_classifier_from_keras  # noqa: E402
from motifs.pwm import hit_mask, known_matrix  # noqa: E402
from motifs.shuffle import shuffle_all  # noqa: E402
from regression.keras_weights import dense_regressor_from_keras  # noqa: E402
from rickmorty.autoencoder_tour import course_autoencoders_on_frames  # noqa: E402
from rickmorty.images import as_float, list_images, read_folder, read_frames  # noqa: E402
from rickmorty.keras_weights import autoencoder_from_keras  # noqa: E402
from results import run_header, write_results  # noqa: E402
from tests.common.keras_golden import golden, keras_layout  # noqa: E402

def max_diff(y: torch.Tensor, expected: np.ndarray) -> float:
    """Return the largest absolute difference between a PyTorch output and keras' output."""
    return float(np.abs(keras_layout(y) - expected).max())


@torch.no_grad()
def parity(models: Path) -> dict:
    """Return {file: {module: max abs difference to keras}} on the golden inputs."""
    project = {"densemodel": ("DenseRegressor", dense_regressor_from_keras),
               "modelCNNTF": ("Classifier(CourseCNN)", motif_classifier_from_keras),
               "modelCNNTF_rerun": ("Classifier(CourseCNN)", motif_classifier_from_keras),
               "modelAE": ("ConvAutoencoder", autoencoder_from_keras),
               "modelAEND": ("ConvAutoencoder", autoencoder_from_keras)}
    results = {}
    for stem in ["densemodel", "modelCNNTF", "modelCNNTF_rerun", "modelAE", "modelAEND", "convmodel"]:
        x, expected = golden(stem)
        path = models / f"{stem}.h5"
        results[stem] = {"keras_sequential": max_diff(keras_sequential(path)(x), expected)}
        if stem in project:
            name, load = project[stem]
            model = load(path)
            y = model(x)
            results[stem][name] = max_diff(model.probabilities(y) if isinstance(model, Classifier) else y, expected)
    return results


def motif_check(models: Path, n_ism: int = 400, seed: int = 0) -> dict:
    """Predict the real SOX17 peaks (and shuffled copies) with modelCNNTF.h5; ISM enrichment at SOX17 sites."""
    names, sequences = read_fasta(course_data("ChIP/SOX17.fa"))
    codes = sequence_codes(sequences, names)
    model = motif_classifier_from_keras(models / "modelCNNTF.h5")
    classes = model.class_names
    peaks = predict(model, one_hot(codes))
    shuffled = predict(model, one_hot(shuffle_all(codes, seed)))
    result = {"n_peaks": len(codes), "classes": classes}
    for label, probs in (("peaks", peaks), ("shuffled_peaks", shuffled)):
        calls = probs.argmax(1)
        result[label] = {"mean_probability": dict(zip(classes, probs.mean(0).tolist())),
                         "fraction_called": {c: float((calls == i).float().mean()) for i, c in enumerate(classes)}}
    pick = np.sort(np.random.default_rng(seed).choice(len(codes), n_ism, replace=False))
    x = one_hot(codes[pick])
    importance = position_importance(substitution_ism(model, x, target=0))  # towards SOX17
    result["ism"] = {"n_peaks": n_ism, "top_k": 5}
    for factor in ("SOX17", "PRDM1"):
        sites = hit_mask(x, known_matrix(factor), fraction_of_max=0.8)
        result["ism"][f"{factor}_sites"] = top_position_enrichment(importance, sites, top_k=5)
        result["ism"][f"{factor}_sites"]["peaks_with_site"] = float(sites.any(1).float().mean())
    # The single most important 9-mer per peak: what does the course's model look at?
    centre = importance.argmax(1).clamp(4, x.shape[-1] - 5)
    windows = [sequences[i][c - 4:c + 5] for i, c in zip(pick, centre.tolist())]
    result["ism"]["top_9mers_sample"] = windows[:12]
    sox_core = sum(("ACAAT" in w or "ATTGT" in w) for w in windows) / len(windows)
    background = sum(("ACAAT" in s[j:j + 9] or "ATTGT" in s[j:j + 9]) for s in (sequences[i] for i in pick)
                     for j in (20, 60, 100, 140, 180)) / (5 * n_ism)
    result["ism"]["top_9mer_has_sox_core_ACAAT"] = sox_core
    result["ism"]["random_9mer_has_sox_core_ACAAT"] = background
    return result


@torch.no_grad()
def autoencoder_check(models: Path, pictures: Path, n_frames: int = 192, seed: int = 0) -> dict:
    """Return reconstruction MSEs of modelAE / modelAEND on random real frames and the prediction folder."""
    every, _ = list_images(course_data("RickandMorty/data/ThreeClassModel/Both"))
    for folder in ("AllRickImages", "AllMortyImages", "Neither"):
        every += list_images(course_data(f"RickandMorty/data/ThreeClassModel/{folder}"))[0]
    sample = [every[i] for i in np.random.default_rng(seed).choice(len(every), n_frames, replace=False)]
    result = {"source": f"{n_frames} random ThreeClassModel files (seed {seed})", "masking_noise_fraction": 0.2}
    frames, _ = read_frames(sample, "the ThreeClassModel sample")
    result["frames"], _ = course_autoencoders_on_frames(frames, models, pictures / "frames")
    frames, _ = read_folder(course_data("RickandMorty/data/predictions"))
    result["prediction_folder"], _ = course_autoencoders_on_frames(frames, models, pictures / "predictions")
    return result


@torch.no_grad()
def image_cnn_check(models: Path) -> dict:
    """Return convmodel.h5's P(Rick) on the prediction folder (file names hint at the answer)."""
    frames, names = read_folder(course_data("RickandMorty/data/predictions"))
    probs = keras_sequential(models / "convmodel.h5")(as_float(frames))[:, 0]
    hinted = [(name, float(q)) for name, q in zip(names, probs) if name.startswith(("Rick", "Morty"))]
    correct = [(name.startswith("Rick")) == (q >= 0.5) for name, q in hinted]
    return {"p_rick": {name: round(float(q), 4) for name, q in zip(names, probs)},
            "agrees_with_file_name": f"{sum(correct)}/{len(correct)}"}


def markdown(report: dict) -> str:
    """Return the report as Markdown."""
    lines = ["# The course's keras models in deepbio: real-data checks", "", f"Command: `{report['command']}`",
             f"({report['seconds']:.0f} s, {report['threads']} threads)", "", "## Parity with keras (max |diff|)",
             "", "| file | module | max abs diff |", "|---|---|---|"]
    for stem, modules in report["parity"].items():
        lines += [f"| {stem}.h5 | {m} | {d:.2e} |" for m, d in modules.items()]
    motif = report["motifs"]
    lines += ["", f"## modelCNNTF.h5 on the {motif['n_peaks']:,} real SOX17 peaks", "",
              "| input | " + " | ".join(f"called {c}" for c in motif["classes"]) + " | " +
              " | ".join(f"mean P({c})" for c in motif["classes"]) + " |", "|---" * 7 + "|"]
    for label in ("peaks", "shuffled_peaks"):
        row = motif[label]
        called = " | ".join(f"{row['fraction_called'][c]:.3f}" for c in motif["classes"])
        mean = " | ".join(f"{row['mean_probability'][c]:.3f}" for c in motif["classes"])
        lines.append(f"| {label.replace('_', ' ')} | {called} | {mean} |")
    ism = motif["ism"]
    lines += ["", f"ISM (every substitution, target SOX17) on {ism['n_peaks']} random peaks; top {ism['top_k']} "
              "positions per peak against motif sites (log-odds >= 80% of max):", "",
              "| sites | peaks with a site | top positions in sites | all positions in sites | enrichment |",
              "|---|---|---|---|---|"]
    for factor in ("SOX17", "PRDM1"):
        s = ism[f"{factor}_sites"]
        enrichment = f"{s['enrichment']:.2f}x" if s["random_in_site"] else "n/a (no sites)"
        lines.append(f"| {factor} | {s['peaks_with_site']:.3f} | {s['top_in_site']:.3f} | {s['random_in_site']:.3f} "
                     f"| {enrichment} |")
    lines += ["", f"The 9-mer around each peak's most important position contains the SOX core ACAAT/ATTGT in "
              f"{ism['top_9mer_has_sox_core_ACAAT']:.1%} of peaks (fixed 9-mers of the same peaks: "
              f"{ism['random_9mer_has_sox_core_ACAAT']:.1%}). Sample: {', '.join(ism['top_9mers_sample'])}"]
    ae = report["autoencoders"]
    lines += ["", "## modelAE.h5 / modelAEND.h5 on real frames", "",
              f"Frames: {ae['source']}, and the 16 frames of the prediction folder. 'masked': "
              f"{ae['masking_noise_fraction']:.0%} of pixels set to black (the course's denoising exercise).", "",
              "| frames | " + " | ".join(ae["frames"]) + " |", "|---" * (len(ae["frames"]) + 1) + "|"]
    for key, label in (("frames", "random files"), ("prediction_folder", "prediction folder")):
        lines.append(f"| {label} | " + " | ".join(f"{v:.5f}" for v in ae[key].values()) + " |")
    cnn = report["image_cnn"]
    lines += ["", "## convmodel.h5 (the older image CNN, 3x3 pooling; keras_sequential) on the prediction folder", "",
              f"P(Rick) agrees with the file name (Rick_*/Morty_*) for {cnn['agrees_with_file_name']} frames: "
              + ", ".join(f"{k} {v:.2f}" for k, v in cnn["p_rick"].items()),
              "", f"Grids (not committed: they show real frames): {report['pictures']}/"
              "{frames,predictions}/{modelAE,modelAEND}_{clean,masked}.png"]
    return "\n".join(lines) + "\n"


def main(out: Path = ROOT / "benchmarks" / "results", pictures: Path = ROOT / "runs" / "keras_import_report") -> dict:
    """Check every course keras file against keras' outputs and on real data; write the report, return its results."""
    torch.manual_seed(0)
    start = time.perf_counter()
    models = course_data("RickandMorty/data/models")
    report = {**run_header(), "pictures": str(pictures.relative_to(ROOT)), "parity": parity(models)}
    report["motifs"] = motif_check(models)
    report["autoencoders"] = autoencoder_check(models, pictures)
    report["image_cnn"] = image_cnn_check(models)
    report["seconds"] = time.perf_counter() - start
    write_results(out, "keras_import_report", report, markdown)
    return report


if __name__ == "__main__":
    main()
