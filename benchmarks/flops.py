"""How close each path of a speed run comes to this CPU's float32 matrix-product rate, model by model.

    /work/venv/bin/python benchmarks/flops.py [--speed benchmarks/results/speed_cpu_amd_epyc_avx2_5repeats.json]

The models' arithmetic per sample, a training step (forward, input and weight gradients) and a
prediction, is counted by torch.utils.flop_counter on the plain PyTorch modules of speed.py (the
models' own work: the project's faster forms, such as block convolutions, do more). Times the
samples/s of a speed results file it gives the GFLOP/s each path reached (keras-TF, plain, project).
The CPU's float32 rate for one big matrix product (2048 x 2048 x 2048, the best of 7 at the start
and 7 at the end) bounds what any path can reach for long: the "1.5x keras" columns say how much of it the
project would have to reach to meet the speed target. Results: results/flops_<speed file's stem>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from results import RESULTS, run_header, write_results
from speed import TARGET_VS_KERAS, Case, image_cases, machine, motif_cases, regression_case

MATMUL_SIZE = 2048


def matmul_gflops(rounds: int = 7) -> list[float]:
    """Return the float32 GFLOP/s of `rounds` MATMUL_SIZE cube matrix products, one by one, at torch's thread count."""
    a, b = torch.randn(MATMUL_SIZE, MATMUL_SIZE), torch.randn(MATMUL_SIZE, MATMUL_SIZE)
    a @ b  # untimed: the first product sets up MKL's buffers
    rates = []
    for _ in range(rounds):
        start = time.perf_counter()
        a @ b
        rates.append(2 * MATMUL_SIZE ** 3 / (time.perf_counter() - start) / 1e9)
    return rates


def flops_per_sample(case: Case) -> dict:
    """Return the plain module's float32 FLOPs per sample for a training step and for a prediction."""
    module = case.plain_module()
    x, y = case.plain_data(case.batch)
    module.train()
    with FlopCounterMode(display=False) as counter:
        case.plain_loss(module, x, y).backward()
    train = counter.get_total_flops() / case.batch
    module.eval()
    # Gradients stay on so that dense layers run F.linear, which the counter sees, not oneDNN's inference op.
    with FlopCounterMode(display=False) as counter:
        module(x)
    return {"train": train, "infer": counter.get_total_flops() / case.batch}


def rates(case_result: dict, flops: dict, matmul: float) -> dict:
    """Return GFLOP/s and the share of the matmul rate per path and kind, and what 1.5x keras would need."""
    summary, out = case_result["summary"], {}
    for kind in ("train", "infer"):
        for path in ("keras", "plain", "project"):
            if path in summary:
                gflops = summary[path][kind]["median"] * flops[kind] / 1e9
                out[f"{path}_{kind}"] = {"gflops": gflops, "share": gflops / matmul}
        if "keras" in summary:
            needed = TARGET_VS_KERAS * out[f"keras_{kind}"]["gflops"]
            out[f"needed_{kind}"] = {"gflops": needed, "share": needed / matmul}
    return out


def cell(entry: dict | None) -> str:
    """Return 'GFLOP/s (share of the matmul rate)' for a table cell."""
    if entry is None:
        return "-"
    return f"{entry['gflops']:.3g} ({entry['share']:.0%})" if entry["gflops"] < 1 else \
        f"{entry['gflops']:.0f} ({entry['share']:.0%})"


def markdown(result: dict) -> str:
    """Return the results as a Markdown table per kind (training, prediction)."""
    m = result["machine"]
    products = result["matmul_gflops_start"] + result["matmul_gflops_end"]
    lines = ["# Course models' arithmetic rate against the CPU's float32 matrix-product rate", "",
             f"Measured {result['date']}; command: `{result['command']}`; {m['cpu']}, {m['cores']} cores, native bf16: "
             f"{m['native_bf16']}; torch {result['torch']}, {result['threads']} threads; load average at start "
             f"{result['load_average_start'][0]:.2f}, at end {result['load_average_end'][0]:.2f}.", "",
             f"Matrix product {MATMUL_SIZE} x {MATMUL_SIZE} x {MATMUL_SIZE}, float32: "
             f"{min(products):.0f}-{max(products):.0f} GFLOP/s over 7 products at the start and 7 at the end (all in the "
             f".json); shares below are of the best, {result['matmul_gflops']:.0f} GFLOP/s: what this CPU reaches when "
             "nothing else slows it. The same kernel's rate moving this much is how far any timing here can move.", "",
             f"samples/s: the medians of `{result['speed_file']}` (measured {result['speed_date']}), times the FLOPs per "
             "sample counted on the plain PyTorch modules (torch.utils.flop_counter; a training step is the forward "
             "pass and both gradients).", ""]
    for kind, title in (("train", "Training"), ("infer", "Prediction")):
        lines += [f"## {title}", "",
                  "| model | MFLOP per sample | keras-TF GFLOP/s (share) | plain | project | 1.5x keras needs |",
                  "|---|---|---|---|---|---|"]
        for name, r in result["models"].items():
            lines.append(f"| {r['title']} | {r['flops'][kind] / 1e6:,.3g} | "
                         + " | ".join(cell(r["rates"].get(f"{p}_{kind}")) for p in ("keras", "plain", "project",
                                                                                  "needed")) + " |")
        lines.append("")
    lines += ["The dense sqrt net does ~0.07 MFLOP a training sample: its rates measure per-step overhead, not "
              "arithmetic. A share near 100% means the path runs at the matrix-product rate; convolutions, "
              "pooling, activations and the optimiser do not all run as fast as one big product.", ""]
    return "\n".join(lines)


def main() -> None:
    """Count every course model's FLOPs, measure the matmul rate, combine them with a speed run; write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speed", default=str(RESULTS / "speed_cpu_amd_epyc_avx2_5repeats.json"),
                        help="a speed.py results file (CPU)")
    args = parser.parse_args()
    speed_file = Path(args.speed)
    speed = json.loads(speed_file.read_text())
    result = {**run_header(), "machine": machine("cpu"), "speed_file": speed_file.name, "speed_date": speed["date"],
              "matmul_gflops_start": matmul_gflops(), "models": {}}
    # FLOPs do not depend on the data: the built-in synthetic sets spare reading the course's (their motif
    # head has 3 outputs, not 2: 200 more FLOPs a training sample).
    cases = {case.name: case for case in [regression_case(), *image_cases(synthetic=True),
                                          *motif_cases(synthetic=True)]}
    flops = {case_result["name"]: flops_per_sample(cases[case_result["name"]]) for case_result in speed["cases"]}
    result["matmul_gflops_end"] = matmul_gflops()
    # The best, not the median: on a shared machine others' work only slows a product down, and the
    # question is what the CPU reaches.
    result["matmul_gflops"] = max(result["matmul_gflops_start"] + result["matmul_gflops_end"])
    for case_result in speed["cases"]:
        name = case_result["name"]
        result["models"][name] = {"title": case_result["title"], "flops": flops[name],
                                  "rates": rates(case_result, flops[name], result["matmul_gflops"])}
    write_results(RESULTS, f"flops_{speed_file.stem}", result, markdown)


if __name__ == "__main__":
    main()
