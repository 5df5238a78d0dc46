"""The main job: every task trained on its built-in data, one HTML report (runs/tour/report.html)."""
from __future__ import annotations

import argparse
import importlib
import logging
import time
from pathlib import Path

from common.report import Section, write_report

# Each task's tour: a module with run_tour(run_dir) -> list[Section], in the course's order.
TOURS = ["regression.tour", "rickmorty.tour", "rickmorty.autoencoder_tour", "motifs.tour"]


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
    for name in args.only or TOURS:
        print(f"== {name}", flush=True)
        sections += importlib.import_module(name).run_tour(out)
        write_report(sections, out / "report.html")
    total = time.perf_counter() - start
    sections.append(Section("Run time", f"The whole tour took {total:.0f} s.", {}))
    report = write_report(sections, out / "report.html")
    print(f"report: {report.resolve()} ({total:.0f} s)")


if __name__ == "__main__":
    main()
