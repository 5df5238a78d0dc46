"""Quality on the real frames (issue 3): the course CNN and the improved model, scene-grouped vs random split.

    /work/venv/bin/python benchmarks/rickmorty_quality.py [epochs] [improved_epochs]

Trains each experiment on the real frames (../shared/data/RickandMorty or $DEEPBIO_DATA) with
bf16 + channels_last on the CPU and records, at the best epoch by validation accuracy (the
course's checkpoint rule), validation accuracy, balanced accuracy and AUROC. The random split
is the course's; its validation frames are also scored separately by whether their scene was
seen in training, which shows where the inflation comes from. Results are rewritten after every
run to benchmarks/results/rickmorty_quality.{json,md}; run folders go to runs/rickmorty_quality/.
"""
from __future__ import annotations

import csv
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from common.classifier import Classifier, load_classifier  # noqa: E402
from common.trainer import build_trainer  # noqa: E402
from rickmorty.data import FrameData  # noqa: E402
from rickmorty.explain import predict_probabilities  # noqa: E402
from rickmorty.models import BatchNormCNN, CourseCNN  # noqa: E402

RESULTS = ROOT / "benchmarks" / "results"
RUNS = ROOT / "runs" / "rickmorty_quality"


def best_epoch_metrics(metrics_csv: Path) -> dict[str, float]:
    """Return the validation metrics of the epoch with the highest val_acc in a Lightning metrics.csv."""
    with open(metrics_csv) as handle:
        rows = [r for r in csv.DictReader(handle) if r.get("val_acc")]
    best = max(rows, key=lambda r: float(r["val_acc"]))
    return {"best_epoch": int(best["epoch"]) + 1, **{k: round(float(best[k]), 4) for k in
                                                     ("val_acc", "val_bal_acc", "val_auroc", "val_f1") if best.get(k)}}


def seen_scene_accuracy(model: Classifier, data: FrameData) -> dict[str, float]:
    """Return validation accuracy on frames whose scene is / is not also in the training part."""
    images, targets, _ = data.part_frames("val")
    train_scenes = set(data.frames.groups[data.parts["train"]].tolist())
    seen = np.isin(data.frames.groups[data.parts["val"]], list(train_scenes))
    probs = predict_probabilities(model, images)
    if model.task == "multiclass":
        correct = (probs.argmax(1) == targets).numpy()
    else:
        correct = ((probs >= 0.5).float() == targets.view(len(targets), -1)).all(1).numpy()
    return {"val_frames_in_seen_scenes": int(seen.sum()), "acc_seen_scenes": round(float(correct[seen].mean()), 4),
            "val_frames_in_unseen_scenes": int((~seen).sum()),
            "acc_unseen_scenes": round(float(correct[~seen].mean()), 4)}


def run(name: str, backbone, task: str, split: str, epochs: int, augment: bool = False, lr: float = 1e-3,
        optimizer: str = "adam", class_weights=None) -> dict:
    """Train one experiment and return its record."""
    torch.manual_seed(0)
    data = FrameData("course", task=task, split=split, augment=augment, num_workers=1 if augment else 0,
                     batch_size=32, seed=0)
    model = Classifier(backbone, data.class_names, task=task, optimizer=optimizer, lr=lr, channels_last=True,
                       class_weights=class_weights)
    trainer = build_trainer(max_epochs=epochs, cpu_bf16=True, default_root_dir=str(RUNS), run_name=name,
                            monitor="val_acc", mode="max", enable_progress_bar=False)
    start = time.time()
    trainer.fit(model, data)
    record = {"name": name, "model": type(backbone).__name__, "task": task, "split": split, "augment": augment,
              "epochs": epochs, "train_frames": len(data.parts["train"]), "val_frames": len(data.parts["val"]),
              "majority_rate": round(majority_rate(data), 4), **best_epoch_metrics(Path(trainer.log_dir) / "metrics.csv"),
              "scene_groups_shared": data.split_report()["scene_groups_shared"],
              "seconds": round(time.time() - start)}
    if split == "random":
        record.update(seen_scene_accuracy(load_classifier(trainer.checkpoint_callback.best_model_path), data))
    return record


def majority_rate(data: FrameData) -> float:
    """Return the accuracy of always answering the most common validation label (combination)."""
    _, targets, _ = data.part_frames("val")
    _, counts = np.unique(targets.view(len(targets), -1).numpy(), axis=0, return_counts=True)
    return counts.max() / counts.sum()


def write_results(records: list[dict], command: str) -> None:
    """Write the records as JSON and as a Markdown table."""
    RESULTS.mkdir(parents=True, exist_ok=True)
    (RESULTS / "rickmorty_quality.json").write_text(json.dumps({"command": command, "runs": records}, indent=1))
    keys = ["name", "task", "split", "epochs", "train_frames", "val_frames", "majority_rate", "best_epoch", "val_acc",
            "val_bal_acc", "val_auroc", "acc_seen_scenes", "acc_unseen_scenes", "seconds"]
    lines = ["# rickmorty: quality on the real frames", "", f"Command: `{command}`", "",
             "Validation metrics at the best epoch by val_acc; shared CPU (2 cores, bf16 + channels_last).", "",
             "| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(str(r.get(k, "")) for k in keys) + " |" for r in records]
    by_name = {r["name"]: r for r in records}
    grouped, random = by_name.get("course_cnn_binary_grouped"), by_name.get("course_cnn_binary_random")
    if grouped and random:
        lines += ["", f"Random-split inflation (course CNN, binary): val accuracy {random['val_acc']} on the random "
                  f"split vs {grouped['val_acc']} on the scene-grouped split "
                  f"({random['val_acc'] - grouped['val_acc']:+.3f}). Within the random split's validation frames, "
                  f"those whose scene was also in training score {random.get('acc_seen_scenes')}, those from "
                  f"unseen scenes {random.get('acc_unseen_scenes')}."]
    (RESULTS / "rickmorty_quality.md").write_text("\n".join(lines) + "\n")


def main(epochs: int = 6, improved_epochs: int = 8) -> None:
    """Run every experiment, most important first, rewriting the results after each."""
    torch.set_num_threads(2)
    command = f"/work/venv/bin/python benchmarks/rickmorty_quality.py {epochs} {improved_epochs}"
    experiments = [
        ("course_cnn_binary_grouped", lambda: run("course_cnn_binary_grouped", CourseCNN(), "binary", "grouped", epochs)),
        ("course_cnn_binary_random", lambda: run("course_cnn_binary_random", CourseCNN(), "binary", "random", epochs)),
        ("course_cnn_multiclass_grouped", lambda: run("course_cnn_multiclass_grouped", CourseCNN(), "multiclass",
                                                      "grouped", epochs, class_weights="balanced")),
        ("improved_binary_grouped", lambda: run("improved_binary_grouped", BatchNormCNN(), "binary", "grouped",
                                                improved_epochs, augment=True, lr=2e-3, optimizer="adamw")),
        ("course_cnn_multilabel_grouped", lambda: run("course_cnn_multilabel_grouped", CourseCNN(), "multilabel",
                                                      "grouped", epochs)),
        ("improved_multiclass_grouped", lambda: run("improved_multiclass_grouped", BatchNormCNN(), "multiclass",
                                                    "grouped", improved_epochs, augment=True, lr=2e-3,
                                                    optimizer="adamw", class_weights="balanced")),
    ]
    records = []
    for name, experiment in experiments:
        records.append(experiment())
        print(f"{name}: {records[-1]}", flush=True)
        write_results(records, command)


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:3]))
