"""How close each path of a speed run comes to this CPU's matrix-product rate in its precision, model by model.

    /work/venv/bin/python benchmarks/flops.py [--speed benchmarks/results/speed_cpu_amd_epyc_zen5_5repeats.json]

The models' arithmetic per sample, a training step (forward, input and weight gradients) and a
prediction, is counted by torch.utils.flop_counter on the plain PyTorch modules of speed.py (the
models' own work: the project's faster forms, such as block convolutions, do more). Times the
samples/s of a speed results file it gives the GFLOP/s each path reached (keras-TF, plain, project).
The CPU's rate for one big matrix product (2048 x 2048 x 2048, 7 at the start and 7 at the end,
through torch.matmul and, on x86, through oneDNN, which is ~2x faster than MKL's float32 on AMD CPUs)
bounds what any path can reach for long, in float32 and, on CPUs that multiply bf16 natively, in
bf16: each path's share is of the best rate in the precision it ran (keras-TF and plain float32,
the project as its settings say); the "1.5x keras" columns say how much of the project's rate it
would have to reach to meet the speed target. Run it on the machine that made the speed file.
Results: results/flops_<speed file's stem>.json and .md.
"""
from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch
from torch.utils.flop_counter import FlopCounterMode

from common.cpu_linear import onednn_linear_inference
from results import RESULTS, measured_line, run_header, write_results
from speed import TARGET_VS_KERAS, Case, image_cases, machine, motif_cases, regression_case

MATMUL_SIZE = 2048
PRECISIONS = {"32-true": torch.float32, "bf16-mixed": torch.bfloat16}  # a speed run's settings -> product dtype


def product_rates(dtype: torch.dtype, rounds: int = 7) -> dict[str, list[float]]:
    """Return, per library, the GFLOP/s of `rounds` MATMUL_SIZE cube matrix products in `dtype`, one by one."""
    a, b = (torch.randn(MATMUL_SIZE, MATMUL_SIZE).to(dtype) for _ in range(2))
    libraries = {"torch.matmul": lambda: a @ b}
    if onednn_linear_inference():  # the op the project's dense layers predict through (a @ b.T: same work)
        libraries["oneDNN"] = lambda: torch.ops.mkldnn._linear_pointwise(a, b, None, "none", [], "")
    rates = {}
    for library, product in libraries.items():
        product()  # untimed: the first product sets up the library's buffers
        rates[library] = []
        for _ in range(rounds):
            start = time.perf_counter()
            product()
            rates[library].append(2 * MATMUL_SIZE ** 3 / (time.perf_counter() - start) / 1e9)
    return rates


def measured_precisions(native_bf16: bool) -> dict[str, torch.dtype]:
    """Return the precisions whose product rate is measured: float32, and bf16 where the CPU multiplies it natively."""
    return {name: dtype for name, dtype in PRECISIONS.items() if native_bf16 or dtype == torch.float32}


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


def rates(case_result: dict, flops: dict, best: dict[str, float]) -> dict:
    """Return GFLOP/s per path and kind with its share of the best product rate in the path's precision, and 1.5x keras'."""
    summary, out = case_result["summary"], {}
    project_rate = best.get(summary.get("project_settings", {}).get("precision"), best["32-true"])
    for kind in ("train", "infer"):
        for path in ("keras", "plain", "project"):
            if path in summary:
                gflops = summary[path][kind]["median"] * flops[kind] / 1e9
                out[f"{path}_{kind}"] = {"gflops": gflops,
                                         "share": gflops / (project_rate if path == "project" else best["32-true"])}
        if "keras" in summary:
            needed = TARGET_VS_KERAS * out[f"keras_{kind}"]["gflops"]
            out[f"needed_{kind}"] = {"gflops": needed, "share": needed / project_rate}
    return out


def cell(entry: dict | None) -> str:
    """Return 'GFLOP/s (share of the product rate)' for a table cell."""
    if entry is None:
        return "-"
    return f"{entry['gflops']:.3g} ({entry['share']:.0%})" if entry["gflops"] < 1 else \
        f"{entry['gflops']:.0f} ({entry['share']:.0%})"


def products_line(result: dict) -> str:
    """Return the sentence giving each precision's and library's product rates and the best ones the shares use."""
    parts = []
    for precision, libraries in result["products"].items():
        ranges = ", ".join(f"{library} {min(r['start'] + r['end']):.0f}-{max(r['start'] + r['end']):.0f}"
                           for library, r in libraries.items())
        dtype = str(PRECISIONS[precision]).removeprefix("torch.")
        parts.append(f"{dtype} ({ranges}; best {result['best_gflops'][precision]:.0f})")
    return (f"Matrix product {MATMUL_SIZE} x {MATMUL_SIZE} x {MATMUL_SIZE}, GFLOP/s over 7 products at the start and 7 "
            f"at the end (all in the .json): {'; '.join(parts)}. Shares below are of the best in the precision the path "
            "ran (keras-TF and plain float32, the project as its settings say, and 1.5x keras as the project): what this "
            "CPU reaches when nothing else slows it. The same kernel's rate moving this much is how far any timing here "
            "can move.")


def markdown(result: dict) -> str:
    """Return the results as a Markdown table per kind (training, prediction)."""
    lines = ["# Course models' arithmetic rate against the CPU's matrix-product rate", "", measured_line(result), "",
             products_line(result), "",
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
    """Count every course model's FLOPs, measure the product rates, combine them with a speed run; write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--speed", default=str(RESULTS / "speed_cpu_amd_epyc_zen5_5repeats.json"),
                        help="a speed.py results file (CPU)")
    args = parser.parse_args()
    speed_file = Path(args.speed)
    speed = json.loads(speed_file.read_text())
    result = {**run_header(), "machine": machine("cpu"), "speed_file": speed_file.name, "speed_date": speed["date"],
              "models": {}}
    precisions = measured_precisions(result["machine"]["native_bf16"])
    start = {name: product_rates(dtype) for name, dtype in precisions.items()}
    # FLOPs do not depend on the data: the built-in synthetic sets spare reading the course's (their motif
    # head has 3 outputs, not 2: 200 more FLOPs a training sample).
    cases = {case.name: case for case in [regression_case(), *image_cases(synthetic=True),
                                          *motif_cases(synthetic=True)]}
    flops = {case_result["name"]: flops_per_sample(cases[case_result["name"]]) for case_result in speed["cases"]}
    end = {name: product_rates(dtype) for name, dtype in precisions.items()}
    result["products"] = {name: {library: {"start": start[name][library], "end": end[name][library]}
                                 for library in start[name]} for name in precisions}
    # The best, not the median: on a shared machine others' work only slows a product down, and the
    # question is what the CPU reaches.
    result["best_gflops"] = {name: max(max(r["start"] + r["end"]) for r in libraries.values())
                             for name, libraries in result["products"].items()}
    for case_result in speed["cases"]:
        name = case_result["name"]
        result["models"][name] = {"title": case_result["title"], "flops": flops[name],
                                  "rates": rates(case_result, flops[name], result["best_gflops"])}
    write_results(RESULTS, f"flops_{speed_file.stem}", result, markdown)


if __name__ == "__main__":
    main()
