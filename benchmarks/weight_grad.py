"""Weight gradients by matrix products (common/conv_weight_grad.py) against oneDNN's, in whole float32 training steps.

    /work/venv/bin/python benchmarks/weight_grad.py [--rounds 8 6 4]

Bare training steps (forward, backward, the project's fused Adam) of the course motif CNN and the
multi-kernel CNN (batches of 1,000 one-hot windows, channels-fastest, compiled pooling as a long
run gets it) and of the course autoencoder (batches of 32 uint8 frames, channels-last), in one
process: every round times a few steps with the products, then a few with oneDNN's weight
gradient (the products switched off), so both meet the same machine state. Reported: the median
step time of each form and the per-round ratios. Float32 outside autocast, the only place the
products are taken. Results: benchmarks/results/weight_grad_cpu.json and .md.
"""
from __future__ import annotations

import argparse
import statistics
import time

import torch
import torch.nn.functional as F

import common.conv_weight_grad as conv_weight_grad
from common.classifier import Classifier
from common.cpu_memory import heap_reuse
from common.memory_format import channels_last
from common.pooling import CompiledPooling
from results import RESULTS, measured_line, run_header, write_results
from speed import machine

OFF = 1 << 62  # a channel count no layer reaches: the products are never taken


def motif_step(backbone):
    """Return a training step function of the Classifier on `backbone` for random one-hot batches of 1,000."""
    model = Classifier(backbone(), ["a", "b"], task="multiclass", channels_last=True)
    optimizer = model.configure_optimizers()
    windows = [channels_last(F.one_hot(torch.randint(0, 4, (1000, 200)), 4).float().transpose(1, 2)) for _ in range(4)]
    labels = [torch.randint(0, 2, (1000,)) for _ in range(4)]

    def step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        F.cross_entropy(model(windows[i % 4]), labels[i % 4]).backward()
        optimizer.step()
    return step


def autoencoder_step():
    """Return a training step function of the course autoencoder (channels-last) for random uint8 batches of 32."""
    from rickmorty.autoencoder import ConvAutoencoder

    model = ConvAutoencoder(channels_last=True)
    model.log_train_loss = lambda *args, **kwargs: None  # no Trainer to log to
    optimizer = model.configure_optimizers()
    frames = [torch.randint(0, 256, (32, 3, 90, 160), dtype=torch.uint8) for _ in range(2)]

    def step(i: int) -> None:
        optimizer.zero_grad(set_to_none=True)
        model.training_step((frames[i % 2],), i).backward()
        optimizer.step()
    return step


def alternate(step, rounds: int, steps: int) -> dict:
    """Return the median step seconds with and without the products, and each round's ratio (without / with)."""
    times = {"products": [], "onednn": []}
    for _ in range(rounds):
        for form, channels in (("products", conv_weight_grad.MIN_CHANNELS), ("onednn", OFF)):
            saved, conv_weight_grad.MIN_CHANNELS = conv_weight_grad.MIN_CHANNELS, channels
            try:
                step(0)  # untimed: the first step after a switch allocates anew
                start = time.perf_counter()
                for i in range(steps):
                    step(i)
                times[form].append((time.perf_counter() - start) / steps)
            finally:
                conv_weight_grad.MIN_CHANNELS = saved
    ratios = [b / a for a, b in zip(times["products"], times["onednn"])]
    return {"products_s": statistics.median(times["products"]), "onednn_s": statistics.median(times["onednn"]),
            "ratios": ratios, "median_ratio": statistics.median(ratios), "rounds": rounds, "steps": steps}


def markdown(result: dict) -> str:
    """Return the comparison as a Markdown table."""
    lines = ["# Weight gradients by matrix products vs oneDNN (float32 training steps)", "", measured_line(result), "",
             "| model, batch | products ms/step | oneDNN ms/step | median of per-round ratios (oneDNN / products) "
             "| range | rounds x steps |", "|---|---|---|---|---|---|"]
    for name, r in result["models"].items():
        lines.append(f"| {name} | {r['products_s'] * 1e3:.1f} | {r['onednn_s'] * 1e3:.1f} | {r['median_ratio']:.2f}x "
                     f"| {min(r['ratios']):.2f}-{max(r['ratios']):.2f} | {r['rounds']} x {r['steps']} |")
    return "\n".join(lines + [""])


def main() -> None:
    """Alternate the two forms in bare training steps of the three models; write the results."""
    from motifs.models import CourseCNN, MultiKernelCNN

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, nargs=3, default=[8, 6, 4],
                        help="rounds for the motif CNN, the multi-kernel CNN and the autoencoder")
    args = parser.parse_args()
    result = {**run_header(), "machine": machine("cpu"), "models": {}}
    saved_steps, CompiledPooling.training_steps = CompiledPooling.training_steps, float("inf")  # a long run's pooling
    try:
        with heap_reuse():
            for name, make, rounds, steps in (("motif CNN, 1,000", lambda: motif_step(CourseCNN), args.rounds[0], 6),
                                              ("multi-kernel CNN, 1,000", lambda: motif_step(MultiKernelCNN),
                                               args.rounds[1], 6),
                                              ("autoencoder, 32", autoencoder_step, args.rounds[2], 2)):
                step = make()
                for i in range(3):
                    step(i)  # compiles the pooling, warms the allocator
                result["models"][name] = alternate(step, rounds, steps)
                print(name, result["models"][name], flush=True)
    finally:
        CompiledPooling.training_steps = saved_steps
    write_results(RESULTS, "weight_grad_cpu", result, markdown)


if __name__ == "__main__":
    main()
