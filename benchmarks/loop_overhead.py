"""What the training loop itself costs per step: a net too small to matter, in plain PyTorch and through the project.

    /work/venv/bin/python benchmarks/loop_overhead.py [--repeats 5] [--steps 600] [--device cpu|cuda]

On a GPU the course models are small enough that the loop's CPU time per step, not the GPU,
sets their speed (benchmarks/README.md, CUDA). This measures that time on a Linear(8, 4)
classifier with batches of 8, in one process, alternating per repeat: (a) a plain PyTorch loop
with fused Adam, (b) the project's normal path (`build_trainer` defaults, the `Classifier`, a
BatchTensors loader), (c) the same but logging the training loss the usual Lightning way,
`self.log(on_step=True, on_epoch=True)` every step, which the Classifier no longer does
(`common/train_loss.py`). Results: benchmarks/results/loop_overhead_<device>.json and .md.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time

import torch
from torch import nn

from common.classifier import Classifier
from common.data import BatchTensors, batch_loader
from common.trainer import build_trainer
from results import RESULTS, run_header, write_results
from speed import BatchClock, samples_per_second, synchronize

BATCH, WARMUP = 8, 50


class LoggedEveryStep(Classifier):
    """The Classifier logging its training loss with one Lightning log call per step (the common way)."""

    def training_step(self, batch, batch_idx):
        """Return the loss, logged with self.log(on_step=True, on_epoch=True)."""
        loss = self.loss(self(batch[0]), batch[1])
        self.log("train_loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=len(batch[0]))
        return loss


def tiny_model(cls=Classifier) -> Classifier:
    """Return a Linear(8, 4) + head binary classifier: its arithmetic takes microseconds."""
    backbone = nn.Linear(8, 4)
    backbone.out_features = 4
    return cls(backbone, ["neg", "pos"])


def ms_per_step(times: list[float]) -> float:
    """Return the mean milliseconds per step after the warm-up steps."""
    return BATCH / samples_per_second(times, WARMUP, BATCH) * 1e3


def time_plain(x: torch.Tensor, y: torch.Tensor) -> float:
    """Time the plain loop: slices, forward, loss, backward, fused Adam."""
    model = tiny_model().to(x.device)
    optimizer = torch.optim.Adam(model.parameters(), fused=True)
    times = []
    for i in range(len(x) // BATCH):
        rows = slice(i * BATCH, (i + 1) * BATCH)
        optimizer.zero_grad()
        model.loss(model(x[rows]), y[rows]).backward()
        optimizer.step()
        synchronize(x.device.type)
        times.append(time.perf_counter())
    return ms_per_step(times)


def time_project(x: torch.Tensor, y: torch.Tensor, device: str, cls=Classifier) -> float:
    """Time one epoch of the project's path (build_trainer defaults; no checkpoints: nothing to compare them with)."""
    clock = BatchClock(device)
    with tempfile.TemporaryDirectory() as workdir:
        trainer = build_trainer(max_epochs=1, accelerator=device, default_root_dir=workdir, run_name="loop",
                                enable_checkpointing=False, callbacks=[clock])
        trainer.fit(tiny_model(cls), batch_loader(BatchTensors(x, y), BATCH, shuffle=True))
    return ms_per_step(clock.times)


def markdown(result: dict) -> str:
    """Return the results as a Markdown report."""
    lines = [f"# Training loop cost per step on {result['device']}", "",
             f"Measured {result['date']}; command: `{result['command']}`; torch {result['torch']}, "
             f"{result['threads']} threads, load average at start {result['load_average_start'][0]:.2f}, at end "
             f"{result['load_average_end'][0]:.2f}.", "",
             f"ms per step of a Linear(8, 4) classifier, batch {BATCH}, {result['steps']} steps per run (the first "
             f"{WARMUP} untimed); median of {result['repeats']} repeats (range), the paths alternating.", "",
             "| path | ms per step | vs plain |", "|---|---|---|"]
    for name, title in (("plain", "plain PyTorch loop, fused Adam"),
                        ("project", "project: build_trainer + Classifier (train loss logged where loggers write)"),
                        ("logged_every_step", "project, train loss logged every step (Lightning's usual way)")):
        values = result["ms_per_step"][name]
        median = statistics.median(values)
        ratio = median / statistics.median(result["ms_per_step"]["plain"])
        lines.append(f"| {title} | {median:.3f} ({min(values):.3f}-{max(values):.3f}) | {ratio:.1f}x |")
    return "\n".join(lines) + "\n"


def main() -> None:
    """Time the three paths, alternating, and write the results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    parser.add_argument("--out", default=str(RESULTS))
    args = parser.parse_args()
    torch.manual_seed(0)
    x = torch.randn(BATCH * args.steps, 8, device=args.device)
    y = (x[:, 0] > 0).float()
    result = {"device": args.device, **run_header(), "repeats": args.repeats, "steps": args.steps,
              "ms_per_step": {"plain": [], "project": [], "logged_every_step": []}}
    for _ in range(args.repeats):
        result["ms_per_step"]["plain"].append(time_plain(x, y))
        result["ms_per_step"]["project"].append(time_project(x.cpu(), y.cpu(), args.device))
        result["ms_per_step"]["logged_every_step"].append(time_project(x.cpu(), y.cpu(), args.device, LoggedEveryStep))
    write_results(args.out, f"loop_overhead_{args.device}", result, markdown)


if __name__ == "__main__":
    main()
