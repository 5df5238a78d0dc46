"""The main job: every task trained on its built-in data, one HTML report (runs/tour/report.html)."""
from __future__ import annotations

import argparse
import importlib
import logging
import subprocess
import time
from datetime import datetime, timezone
from importlib.metadata import version
from pathlib import Path

from common.report import Section, write_report

# Each task's tour: a module with run_tour(run_dir) -> list[Section], in the course's order.
TOURS = ["regression.tour", "rickmorty.tour", "rickmorty.autoencoder_tour", "motifs.tour"]

TERMS = {
    "MSE": "mean squared error: the average squared difference between prediction and truth (0 is perfect)",
    "accuracy (acc)": "the fraction of examples classified correctly; compare it with the majority-class rate",
    "balanced accuracy": "the mean of the per-class hit rates, so a rare class counts as much as a common one",
    "AUROC": "how well scores rank positives above negatives: 0.5 is chance, 1 is perfect, whatever the threshold",
    "F1": "the harmonic mean of precision and recall for the positive class",
    "PSNR, SSIM": "image similarity of a reconstruction to the original: PSNR in dB (higher is better), SSIM "
                  "from 0 to 1 (1 is identical structure)",
    "validation / test": "examples held out from training: validation picks the epoch or settings, test is "
                         "looked at once, at the end",
    "Grad-CAM": "a heat map of the image regions that raise a class's score most, from the last convolution",
    "ISM (in-silico mutagenesis)": "every base changed to each other base, and the drop in the predicted "
                                   "probability recorded: large drops mark bases the model relies on",
    "bf16, channels_last": "a 16-bit number format and a memory layout that make training faster on many CPUs "
                           "and GPUs; results stay within the seed-to-seed spread of 32-bit training",
}


def provenance() -> str:
    """Return when and with what this report was made: date, deepbio's version and commit, torch and Lightning."""
    try:
        commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=Path(__file__).parent, text=True,
                                capture_output=True, timeout=10).stdout.strip()
    except OSError:  # no git on this machine
        commit = ""
    made = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    return (f"Made {made} by deepbio {version('deepbio')}" + (f" (commit {commit})" if commit else "")
            + f", torch {version('torch')}, lightning {version('lightning')}; every run uses seed 0.")


def main() -> None:
    """Run every task's tour and write report.html into the output folder."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--out", default="runs/tour", help="folder for the report, PNGs, logs and checkpoints")
    parser.add_argument("--only", nargs="*", default=None, help="run only these tour modules")
    args = parser.parse_args()
    logging.getLogger("lightning.pytorch").setLevel(logging.WARNING)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    sections: list[Section] = []
    start = time.perf_counter()
    note = provenance()
    for name in args.only or TOURS:
        print(f"== {name}", flush=True)
        sections += importlib.import_module(name).run_tour(out)
        write_report(sections, out / "report.html", note=note)
    total = time.perf_counter() - start
    sections.append(Section("Terms used", "What the measures and words in this report mean.", TERMS))
    report = write_report(sections, out / "report.html", note=f"{note} The tour took {total:.0f} s.")
    print(f"report: {report.resolve()} ({total:.0f} s)")


if __name__ == "__main__":
    main()
