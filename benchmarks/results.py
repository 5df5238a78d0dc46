"""What every benchmark's result files share: a header (date, command, torch, threads, load) and .json + .md writing."""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path
from typing import Callable

import torch

RESULTS = Path(__file__).resolve().parent / "results"


def run_header() -> dict:
    """Return what every result file starts with: date, exact command, torch version and threads, load average."""
    return {"date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "command": " ".join([Path(sys.executable).name, *sys.argv]), "torch": torch.__version__,
            "threads": torch.get_num_threads(), "load_average_start": os.getloadavg()}


def measured_line(result: dict) -> str:
    """Return the Markdown sentence giving a result's date, command, machine (speed.machine), torch and load average."""
    m = result["machine"]
    return (f"Measured {result['date']}; command: `{result['command']}`; {m['cpu']}, {m['cores']} cores, native bf16: "
            f"{m['native_bf16']}; torch {result['torch']}, {result['threads']} threads; load average at start "
            f"{result['load_average_start'][0]:.2f}, at end {result['load_average_end'][0]:.2f}.")


def write_results(folder: str | Path, stem: str, result: dict, render: Callable[[dict], str]) -> None:
    """Add the final load average to `result`, write it as <stem>.json and render(result) as <stem>.md."""
    result["load_average_end"] = os.getloadavg()
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    (out / f"{stem}.json").write_text(json.dumps(result, indent=1))
    (out / f"{stem}.md").write_text(render(result))
    print(render(result))
