"""Accuracy must not pay for speed: the image CNN and the motif CNN trained on real data with the fast settings and in fp32.

    /work/venv/bin/python benchmarks/speed_accuracy.py [--image-epochs 6] [--motif-epochs 8] [--dense-epochs 10] [--seeds 0 1]

Each model is trained twice per seed from the same initial weights and data order, once with
the fast settings (bf16 autocast where the CPU has native bf16, channels-fastest layout, compiled
max-pooling) and once
in plain fp32, through `build_trainer` and the project's Classifier and DataModules. The
validation metrics of the last epoch are recorded side by side, with the training time, in
benchmarks/results/speed_accuracy_cpu.json and .md. Image: the course CNN, "Rick or not",
scene-grouped split, batch 32, Adam 1e-3. Motifs: the course CNN, SOX17 peaks vs dinucleotide
shuffles, validation on chr7, batch 128, Adam 1e-3.
"""
from __future__ import annotations

import argparse
import json
import logging
import tempfile
import time

import lightning as L

from common.classifier import Classifier
from common.paths import course_data
from common.trainer import build_trainer
from results import RESULTS, run_header, write_results

REPORTED = ("val_acc", "val_bal_acc", "val_auroc", "val_f1")


def image_setup():
    """Return (DataModule, backbone factory, Classifier settings) for the course image CNN."""
    from rickmorty.data import FrameData
    from rickmorty.models import CourseCNN

    return FrameData(data_dir="course", task="binary", batch_size=32), CourseCNN, {}


def dense_setup():
    """Return (DataModule, backbone factory, Classifier settings) for the course dense baseline (configs: lr 1e-4)."""
    from rickmorty.data import FrameData
    from rickmorty.models import DenseBaseline

    return FrameData(data_dir="course", task="binary", batch_size=32), DenseBaseline, {"lr": 1e-4, "convolutions": False}


def motif_setup():
    """Return (DataModule, backbone factory, Classifier settings) for the course motif CNN."""
    from motifs.data import MotifData
    from motifs.models import CourseCNN

    data = MotifData(sources={"SOX17": str(course_data("ChIP/SOX17.fa"))}, task="binary", negatives=["shuffle"],
                     negative_class="shuffled", val_chromosomes=["chr7"], test_chromosomes=["chr10"])
    return data, CourseCNN, {}


def train_once(data: L.LightningDataModule, backbone, settings: dict, fast: bool, epochs: int, seed: int,
               workdir: str) -> dict:
    """Train one model and return its last validation metrics and the training seconds.

    fast: bf16 autocast where the CPU has it, the channels-fastest layout for convolutions, and
    compiled max-pooling (as speed.py times it; same values as PyTorch's op).
    """
    L.seed_everything(seed, verbose=False)
    settings = dict(settings)
    convolutions = settings.pop("convolutions", True)
    model = Classifier(backbone(), data.class_names, task=data.task, channels_last=fast and convolutions, **settings)
    trainer = build_trainer(max_epochs=epochs, default_root_dir=workdir, run_name=f"{'fast' if fast else 'fp32'}",
                            precision="auto" if fast else "32-true", cpu_bf16=fast, compile_pooling=fast,
                            enable_checkpointing=False, enable_progress_bar=False)
    start = time.perf_counter()
    trainer.fit(model, datamodule=data)
    seconds = time.perf_counter() - start
    metrics = {k: float(v) for k, v in model.last_metrics.items() if k in REPORTED}
    return {"precision": str(trainer.precision), "channels_last": model.channels_last,
            "compiled_pooling": fast and convolutions, "seconds": seconds, **metrics}


def markdown(result: dict) -> str:
    """Return the fast-vs-fp32 comparison as a Markdown table."""
    lines = ["# Accuracy with the fast settings vs fp32 (real data)", "",
             f"Measured {result['date']}; command: `{result['command']}`; torch {result['torch']}, "
             f"{result['threads']} thread(s), load average at start {result['load_average_start'][0]:.1f} "
             "(train seconds depend on the load; the metrics do not).", "",
             "| model | seed | epochs | settings | " + " | ".join(REPORTED) + " | train seconds |",
             "|---|---|---|---|" + "---|" * len(REPORTED) + "---|"]
    for run in result["runs"]:
        for mode in ("fast", "fp32"):
            r = run[mode]
            settings = (r["precision"] + (", channels_last" if r["channels_last"] else "")
                        + (", compiled pooling" if r.get("compiled_pooling") else ""))
            lines.append(f"| {run['model']} | {run['seed']} | {run['epochs']} | {settings} | "
                         + " | ".join(f"{r.get(k, float('nan')):.3f}" for k in REPORTED) + f" | {r['seconds']:.0f} |")
    lines += ["", "Differences between fast and fp32 are to be read against the spread between seeds.", ""]
    return "\n".join(lines)


def main() -> None:
    """Train the image CNN, motif CNN and dense baseline fast and in fp32 on the real data; write the metrics."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--image-epochs", type=int, default=6)
    parser.add_argument("--motif-epochs", type=int, default=8)
    parser.add_argument("--dense-epochs", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    result = {**run_header(), "runs": []}
    with tempfile.TemporaryDirectory() as workdir:
        for name, setup, epochs in (("motif CNN (SOX17 vs shuffled)", motif_setup, args.motif_epochs),
                                    ("image CNN (Rick or not)", image_setup, args.image_epochs),
                                    ("dense baseline (Rick or not)", dense_setup, args.dense_epochs)):
            data, backbone, settings = setup()
            for seed in args.seeds:
                run = {"model": name, "seed": seed, "epochs": epochs}
                for mode in ("fast", "fp32"):
                    run[mode] = train_once(data, backbone, settings, mode == "fast", epochs, seed, workdir)
                print(json.dumps(run), flush=True)
                result["runs"].append(run)
    write_results(args.out, "speed_accuracy_cpu", result, markdown)


if __name__ == "__main__":
    main()
