"""Training and inference speed of every course model: the project's normal path vs plain PyTorch vs keras-TF.

    /work/venv/bin/python benchmarks/speed.py [--repeats 3] [--keras-python /work/tfbench/bin/python]

One process measures, model by model and repeat by repeat, back to back: (a) keras-TF in a worker
subprocess (benchmarks/speed_keras.py, its own environment; skipped with a note when missing),
(b) a minimal plain-PyTorch fp32 loop, (c) the project's normal path: `build_trainer` + the
project's LightningModule + its DataModule (or BatchTensors loader), fast settings as a user gets
them. Every path is timed the same way: from the end of the last warm-up batch to the end of the
last timed batch, so loading, tracing and start-up are left out and per-step overhead is not.
Ratios project/keras and project/plain are taken within each repeat; medians and ranges are
written to benchmarks/results/speed_<device>.json and .md. See benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import lightning as L
import torch
import torch.nn.functional as F
from torch import nn

from common.classifier import Classifier
from common.data import BatchTensors, StepBatches, batch_loader
from common.devices import cpu_has_native_bf16
from common.paths import course_data
from common.trainer import build_trainer
from results import RESULTS, run_header, write_results
TARGET_VS_KERAS, TARGET_VS_PLAIN = 1.5, 0.95
# The timed steps stand for a long run, where build_trainer's default (compile_pooling=None: compile
# where the run's steps pay it back) compiles the CNNs' max-pooling; a 10-step benchmark fit would
# not, so it is asked for. The compiling happens in the first (warm-up) step.
LONG_RUN = {"compile_pooling": True}


@dataclass
class ProjectRun:
    """What a user's run is made of: the LightningModule, training data and the Trainer settings."""

    module: L.LightningModule
    train: L.LightningDataModule | torch.utils.data.DataLoader
    predict: torch.utils.data.DataLoader | L.LightningDataModule
    trainer_kwargs: dict = field(default_factory=dict)


@dataclass
class Case:
    """One course model: batch size, steps to time, how the project runs it and how plain PyTorch does."""

    name: str  # also the keras worker's model name
    title: str
    batch: int
    warmup: int
    steps: int
    infer_steps: int
    project: Callable[[], ProjectRun]
    plain_module: Callable[[], nn.Module]
    plain_loss: Callable[[nn.Module, torch.Tensor, torch.Tensor], torch.Tensor]
    plain_data: Callable[[int], tuple[torch.Tensor, torch.Tensor]]
    n_classes: int = 2
    infer_batch: int = 0  # rows per inference batch, every path alike; 0: the training batch

    def __post_init__(self) -> None:
        self.infer_batch = self.infer_batch or self.batch


# ---- the course models ---------------------------------------------------------------------------
def regression_case() -> Case:
    """Course section 1: the dense sqrt net, batch 32 (5,000 samples on [0, 200], the course's second run).

    Inference runs RegressionData's prediction batches (eval_batch_size rows) on every path: batches
    of 32 would time Lightning's per-batch cost, not the net, and no project path predicts so.
    """
    from regression.data import RegressionData
    from regression.model import DenseRegressor

    data = RegressionData(n_train=5000, n_val=500, high=200.0, batch_size=32)

    def project() -> ProjectRun:
        x = torch.rand(data.hparams.eval_batch_size * (20 + 120), 1) * 200  # warm-up + timed batches
        return ProjectRun(DenseRegressor(), data, batch_loader(BatchTensors(x), data.hparams.eval_batch_size),
                          {"precision": "32-true"})  # as configs/regression set it on every device

    def plain_data(n: int):
        x = torch.rand(n, 1) * 200
        return x, x.sqrt()

    return Case("dense_regression", f"dense sqrt net 1-100-120-1, batch 32 (inference {data.hparams.eval_batch_size})",
                32, 20, 120, 120, project, DenseRegressor, lambda m, x, y: F.mse_loss(m(x), y), plain_data,
                infer_batch=data.hparams.eval_batch_size)


def motif_data(synthetic: bool = False):
    """Return the real SOX17 peaks plus dinucleotide-shuffled negatives (two classes), batch 1000, set up.

    synthetic: the built-in SOX17 / PRDM1 / random windows instead (200 bp, three classes), where
    the course data is not at hand (a GPU machine).
    """
    from motifs.data import MotifData

    if synthetic:
        data = MotifData(synthetic_per_class=8000, length=200, task="multiclass", split="random", batch_size=1000)
    else:
        data = MotifData(sources={"SOX17": str(course_data("ChIP/SOX17.fa"))}, negatives=["shuffle"],
                         task="multiclass", split="random", batch_size=1000)
    data.setup("fit")
    return data


def motif_cases(synthetic: bool = False) -> list[Case]:
    """The course motif CNN and the multi-kernel CNN on real SOX17 windows (or synthetic ones), batch 1000."""
    from motifs.models import CourseCNN, MultiKernelCNN

    data = motif_data(synthetic)
    x_train = data.splits["train"].tensors()[0]

    def plain_data(n: int):
        x = F.one_hot(torch.randint(0, 4, (n, 200)), 4).float().transpose(1, 2).contiguous()
        return x, torch.randint(0, 2, (n,))

    cases = []
    for name, title, backbone in (("motif_cnn", "motif CNN 200x4 (course), batch 1000", CourseCNN),
                                  ("multikernel_cnn", "multi-kernel motif CNN 200x4, batch 1000", MultiKernelCNN)):
        def module(backbone=backbone, **kwargs):
            return Classifier(backbone(), data.class_names, task="multiclass", **kwargs)

        def project(module=module) -> ProjectRun:
            return ProjectRun(module(channels_last=True), data, batch_loader(BatchTensors(x_train), 1000),
                              {"cpu_bf16": True, **LONG_RUN})

        # 16 timed steps (~0.4 s; 8 moved 20% between repeats); 2 + 16 fit in the first epoch's 19 batches.
        cases.append(Case(name, title, 1000, 2, 16, 10, project, module,
                          lambda m, x, y: F.cross_entropy(m(x), y), plain_data))
    return cases


def frame_data(batch_size: int, synthetic: bool = False):
    """Return the real frames ("Rick or not", scene-grouped split) as the project's cached uint8 DataModule, set up.

    synthetic: the built-in synthetic frames instead (same size, same uint8 DataModule).
    """
    from rickmorty.data import FrameData

    data = FrameData(data_dir=None if synthetic else "course", task="binary", batch_size=batch_size,
                     synthetic_count=4000)
    data.setup("fit")
    return data


def image_cases(synthetic: bool = False) -> list[Case]:
    """The Rick-and-Morty models at the course's shapes: dense baseline and image CNN (batch 100), autoencoder (32)."""
    from rickmorty.autoencoder import ConvAutoencoder
    from rickmorty.models import CourseCNN, DenseBaseline

    classifier_data, autoencoder_data = frame_data(100, synthetic), frame_data(32, synthetic)
    frames = classifier_data.part_frames("train")[0]

    def images(n: int):
        return torch.rand(n, 3, 90, 160), torch.randint(0, 2, (n,)).float()

    def classifier_case(name, title, backbone, convolutions: bool, steps: int):
        def module(**kwargs):
            return Classifier(backbone(), classifier_data.class_names, task="binary", **kwargs)

        def project() -> ProjectRun:
            return ProjectRun(module(channels_last=convolutions), classifier_data,
                              predict_loader(frames, 100, classifier_data),
                              {"cpu_bf16": True, **(LONG_RUN if convolutions else {})})

        return Case(name, title, 100, 2, steps, steps, project, module,
                    lambda m, x, y: F.binary_cross_entropy_with_logits(m(x)[:, 0], y), images)

    def autoencoder_project() -> ProjectRun:
        return ProjectRun(ConvAutoencoder(channels_last=True), autoencoder_data,
                          predict_loader(frames, 32, autoencoder_data), {"cpu_bf16": True})

    # 24 timed batches of the dense baseline take ~0.1 s (8 took ~25 ms: scheduler jitter showed); 2 + 24 fit
    # in one epoch of the 2,680 training frames, so no validation runs inside the timed steps.
    return [classifier_case("dense_image", "dense baseline 43200-100-70-1, batch 100",
                            lambda: DenseBaseline(units=(100, 70)), convolutions=False, steps=24),
            classifier_case("image_cnn", "image CNN 90x160x3 (course), batch 100", CourseCNN, convolutions=True,
                            steps=8),
            Case("autoencoder", "conv autoencoder 90x160x3 (course), batch 32", 32, 1, 3, 3, autoencoder_project,
                 ConvAutoencoder, lambda m, x, y: F.binary_cross_entropy_with_logits(m.logits(x), x), images)]


def predict_loader(frames: torch.Tensor, batch_size: int, data):
    """Return the DataModule set to predict on `frames` (uint8, as its predict_dir reader would give them)."""
    data.predict_images, data.predict_ids = frames, [str(i) for i in range(len(frames))]
    data._read_predict_dir = lambda: None  # the frames are already in memory: skip reading a folder
    return data


# ---- timing ----------------------------------------------------------------------------------------
def synchronize(device: str) -> None:
    """Wait for the work queued on the device (CUDA runs asynchronously; on the CPU there is nothing to wait for)."""
    if device == "cuda":
        torch.cuda.synchronize()


class BatchClock(L.Callback):
    """Record the time and the optimiser steps done so far at the end of every training or prediction batch."""

    def __init__(self, device: str = "cpu") -> None:
        self.device = device
        self.times: list[float] = []
        self.steps: list[int] = []
        self.train_threads = 0
        self.train_start = 0.0

    def on_train_start(self, trainer, pl_module) -> None:
        """Record training's thread count and start time (the first step's time then includes any compiling)."""
        self.train_threads = torch.get_num_threads()  # during training: TinyModelThreads restores it afterwards
        self.train_start = time.perf_counter()

    def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx) -> None:
        """Record a training batch end: as many steps as its StepBatches hold, else one."""
        self.tick(len(batch) if isinstance(batch, StepBatches) else 1)

    def on_predict_batch_end(self, trainer, pl_module, outputs, batch, batch_idx, dataloader_idx=0) -> None:
        """Record a prediction batch end as one step."""
        self.tick(1)

    def tick(self, steps: int) -> None:
        """Record a batch end after `steps` more steps (several when one Lightning step runs StepBatches)."""
        synchronize(self.device)
        self.times.append(time.perf_counter())
        self.steps.append((self.steps[-1] if self.steps else 0) + steps)

    def clear(self) -> None:
        """Forget the recorded batches."""
        self.times.clear()
        self.steps.clear()


def samples_per_second(times: list[float], warmup: int, batch: int, steps: list[int] | None = None) -> float:
    """Return samples/s from the end of the batch that completes the warm-up steps to the end of the last batch."""
    steps = steps or list(range(1, len(times) + 1))
    start = next(i for i, done in enumerate(steps) if done >= warmup)
    return batch * (steps[-1] - steps[start]) / (times[-1] - times[start])


def time_plain(case: Case, device: str = "cpu") -> dict:
    """Time the minimal plain-PyTorch fp32 loop: slices of in-memory tensors on the device, Adam, no framework."""
    module = case.plain_module().to(device)
    n = max(case.batch * (case.warmup + case.steps), case.infer_batch * (case.warmup + case.infer_steps))
    x, y = (t.to(device) for t in case.plain_data(n))
    optimizer = torch.optim.Adam(module.parameters(), lr=1e-3)
    module.train()
    times = []
    for i in range(case.warmup + case.steps):
        rows = slice(i * case.batch, (i + 1) * case.batch)
        optimizer.zero_grad()
        case.plain_loss(module, x[rows], y[rows]).backward()
        optimizer.step()
        synchronize(device)
        times.append(time.perf_counter())
    train = samples_per_second(times, case.warmup, case.batch)
    module.eval()
    times = []
    with torch.no_grad():
        for i in range(case.warmup + case.infer_steps):
            module(x[i * case.infer_batch:(i + 1) * case.infer_batch])
            synchronize(device)
            times.append(time.perf_counter())
    return {"train": train, "infer": samples_per_second(times, case.warmup, case.infer_batch)}


def time_project(case: Case, workdir: str, device: str = "cpu") -> dict:
    """Time the project's normal path: build_trainer + the LightningModule + its data, as a user runs it."""
    run = case.project()
    clock = BatchClock(device)
    trainer = build_trainer(max_epochs=None, max_steps=case.warmup + case.steps, default_root_dir=workdir,
                            run_name=case.name, callbacks=[clock], accelerator=device, **run.trainer_kwargs)
    trainer.fit(run.module, run.train)  # a DataLoader or a LightningDataModule
    train = samples_per_second(clock.times, case.warmup, case.batch, clock.steps)
    compiled_pooling = bool(run.trainer_kwargs.get("compile_pooling")) and device == "cpu"  # a CPU kernel
    settings = {"precision": str(trainer.precision), "channels_last": bool(getattr(run.module, "channels_last", False)),
                "threads": clock.train_threads, "compile_pooling": compiled_pooling,
                "first_step_s": clock.times[0] - clock.train_start}  # compiling, where any, happens here
    clock.clear()
    trainer = build_trainer(default_root_dir=workdir, run_name=case.name, callbacks=[clock], logger=False,
                            enable_checkpointing=False, limit_predict_batches=case.warmup + case.infer_steps,
                            accelerator=device, **run.trainer_kwargs)
    trainer.predict(run.module, run.predict, return_predictions=False)
    infer = samples_per_second(clock.times, case.warmup, case.infer_batch)
    return {"train": train, "infer": infer, "settings": settings}


class KerasWorker:
    """The keras-TF worker process (benchmarks/speed_keras.py in its own environment), or None where absent."""

    def __init__(self, python: str) -> None:
        self.process = subprocess.Popen([python, str(Path(__file__).with_name("speed_keras.py"))], text=True,
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)
        self.versions = json.loads(self.process.stdout.readline())

    def measure(self, case: Case) -> dict:
        """Return keras-TF train/infer samples/s for a case."""
        request = {"model": case.name, "batch": case.batch, "warmup": case.warmup, "steps": case.steps,
                   "infer_steps": case.infer_steps, "infer_batch": case.infer_batch, "n_classes": case.n_classes}
        self.process.stdin.write(json.dumps(request) + "\n")
        self.process.stdin.flush()
        return json.loads(self.process.stdout.readline())

    def close(self) -> None:
        """Let the worker finish."""
        self.process.stdin.close()
        self.process.wait(timeout=60)


def start_keras(python: str) -> tuple[KerasWorker | None, str]:
    """Start the keras worker; return (None, why) when the benchmark environment is missing or broken."""
    if not Path(python).exists():
        return None, f"keras-TF not measured: {python} not found (see benchmarks/README.md to create it)"
    try:
        return KerasWorker(python), ""
    except (OSError, json.JSONDecodeError) as error:
        return None, f"keras-TF not measured: the worker did not start ({error})"


# ---- summary ---------------------------------------------------------------------------------------
def spread(values: list[float]) -> dict:
    """Return the median, min and max of repeated measurements."""
    return {"median": statistics.median(values), "min": min(values), "max": max(values), "values": values}


def summarize_case(runs: list[dict]) -> dict:
    """Return medians/ranges per path and per-repeat ratios project/keras and project/plain."""
    summary = {}
    for path in ("keras", "plain", "project"):
        if all(path in r for r in runs):
            summary[path] = {k: spread([r[path][k] for r in runs]) for k in ("train", "infer")}
    for other, target in (("keras", TARGET_VS_KERAS), ("plain", TARGET_VS_PLAIN)):
        if other in summary:
            for k in ("train", "infer"):
                ratio = spread([r["project"][k] / r[other][k] for r in runs])
                ratio["target"], ratio["met"] = target, ratio["median"] >= target
                summary[f"project_vs_{other}_{k}"] = ratio
    summary["project_settings"] = runs[-1]["project"]["settings"]
    return summary


def machine(device: str = "cpu") -> dict:
    """Return what the numbers were measured on (the GPU's name too, for a CUDA run)."""
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    return {"cpu": model, "cores": os.cpu_count(), "native_bf16": cpu_has_native_bf16(),
            "torch_threads": torch.get_num_threads(), "python": platform.python_version(), "torch": torch.__version__,
            "lightning": L.__version__, "load_average_start": os.getloadavg(),
            **({"gpu": torch.cuda.get_device_name()} if device == "cuda" else {})}


def fmt(value: float) -> str:
    """Format samples/s: thousands separated, 3 significant digits below 100."""
    return f"{value:,.0f}" if value >= 100 else f"{value:.3g}"


def ratio_cell(summary: dict, key: str) -> str:
    """Return a table cell: the median ratio, its range and whether the target is met."""
    if key not in summary:
        return "-"
    r = summary[key]
    digits = 2 if round(r["median"], 2) != r["target"] else 3  # 1.4992 is not shown as a missed "1.50x"
    return f"{r['median']:.{digits}f}x ({r['min']:.2f}-{r['max']:.2f}) {'met' if r['met'] else 'MISSED'}"


def markdown(result: dict) -> str:
    """Return the results as a Markdown report: machine, versions, command, table, ratios vs targets."""
    m = result["machine"]
    lines = [f"# Speed of the course models on {result['device']}", "",
             f"Measured {result['date']}; command: `{result['command']}`.", "",
             f"Machine: {m['gpu'] + ' with ' if 'gpu' in m else ''}{m['cpu']}, {m['cores']} cores, native bf16: "
             f"{m['native_bf16']}, torch threads "
             f"{m['torch_threads']}; load average at start {m['load_average_start'][0]:.2f}, at end "
             f"{result['load_average_end'][0]:.2f}. Python {m['python']}, torch {m['torch']}, lightning {m['lightning']}, "
             + (f"keras {result['keras']['keras']} + tensorflow {result['keras']['tensorflow']}."
                if "keras" in result else result["keras_note"] + "."), "",
             *([f"**Preliminary and noisy: measured while the {m['cores']}-core machine was busy (load average "
                f"{m['load_average_start'][0]:.1f}). Not a result.**", ""]
               if m["load_average_start"][0] > BUSY_LOAD_PER_CORE * m["cores"] else []),
             f"samples/s, median of {result['repeats']} repeats (range); every repeat measures keras, plain and the "
             "project back to back, and ratios are taken within a repeat. Targets: project >= "
             f"{TARGET_VS_KERAS}x keras-TF and >= {TARGET_VS_PLAIN}x plain PyTorch fp32.", "",
             "| model | path settings | keras-TF train / infer | plain fp32 train / infer | project train / infer "
             "| project/keras train | project/keras infer | project/plain train | project/plain infer |",
             "|---|---|---|---|---|---|---|---|---|"]
    for case in result["cases"]:
        s = case["summary"]
        cells = []
        for path in ("keras", "plain", "project"):
            cells.append(f"{fmt(s[path]['train']['median'])} / {fmt(s[path]['infer']['median'])}" if path in s else "-")
        p = s["project_settings"]
        settings = (f"{p['precision']}{', channels_last' if p['channels_last'] else ''}"
                    f"{', compiled pooling' if p.get('compile_pooling') else ''}")
        lines.append(f"| {case['title']} | {settings} | " + " | ".join(cells) + " | "
                     + " | ".join(ratio_cell(s, f"project_vs_{o}_{k}") for o in ("keras", "plain")
                                  for k in ("train", "infer")) + " |")
    lines += ["", "Raw values, settings and per-repeat ratios: the .json file beside this one.", ""]
    lines += [f"- {note}" for note in result["notes"]]
    return "\n".join(lines) + "\n"


def main() -> None:
    """Time every course model on every path, repeated; write the .json and .md results."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--keras-python", default="/work/tfbench/bin/python")
    parser.add_argument("--only", nargs="*", help="case names to run (default: all)")
    parser.add_argument("--out", default=str(RESULTS))
    parser.add_argument("--tag", default="", help="suffix of the result files (e.g. _preliminary)")
    parser.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                        help="where plain PyTorch and the project run (keras-TF is timed on the CPU only)")
    parser.add_argument("--data", choices=["real", "synthetic"], default="real",
                        help="the project's data: the course's (../shared/data) or the built-in synthetic sets")
    args = parser.parse_args()
    synthetic = args.data == "synthetic"
    cases = [regression_case(), *image_cases(synthetic), *motif_cases(synthetic)]
    cases = [c for c in cases if not args.only or c.name in args.only]
    keras_worker, keras_note = start_keras(args.keras_python) if args.device == "cpu" else (
        None, "keras-TF is timed on the CPU only")
    notes = [CUDA_TABLE_NOTE] if args.device == "cpu" else []
    notes += [SYNTHETIC_NOTE if synthetic else REAL_NOTE, *(CPU_NOTES if args.device == "cpu" else CUDA_NOTES)]
    result = {"device": args.device, "data": args.data, **run_header(), "repeats": args.repeats,
              "machine": machine(args.device), "cases": [], "notes": notes}
    if keras_worker:
        result["keras"] = keras_worker.versions
    else:
        result["keras_note"] = keras_note
        result["notes"].append(keras_note)
    with tempfile.TemporaryDirectory() as workdir:
        for case in cases:
            runs = []
            for repeat in range(args.repeats):
                run = {"keras": keras_worker.measure(case)} if keras_worker else {}
                run["plain"] = time_plain(case, args.device)
                run["project"] = time_project(case, workdir, args.device)
                runs.append(run)
                print(f"{case.name} repeat {repeat + 1}: " + json.dumps(run), flush=True)
            result["cases"].append({"name": case.name, "title": case.title, "batch": case.batch,
                                    "infer_batch": case.infer_batch,
                                    "warmup": case.warmup, "steps": case.steps, "infer_steps": case.infer_steps,
                                    "runs": runs, "summary": summarize_case(runs)})
    if keras_worker:
        keras_worker.close()
    write_results(args.out, f"speed_{args.device}{args.tag}", result, markdown)


CUDA_TABLE_NOTE = ("On a CUDA GPU: results/speed_cuda.md (one H200, made with benchmarks/cuda_speed.sh; see "
                   "benchmarks/README.md).")
REAL_NOTE = ("Inputs for keras and plain PyTorch are random arrays of the course shapes (speed does not depend on "
             "values); the project path reads the real data through its DataModule.")
SYNTHETIC_NOTE = ("Inputs for keras and plain PyTorch are random arrays of the course shapes; the project path reads "
                  "the built-in synthetic frames and DNA windows (the course shapes) through its DataModules.")
CPU_NOTES = [
    "Project settings, as the configs set them: bf16 autocast (build_trainer cpu_bf16=True) for every classifier "
    "and the autoencoder, plus the channels-fastest layout (channels_last=True) for the conv nets; the dense sqrt "
    "net in fp32, trained on one thread (TinyModelThreads) with 16 optimiser steps per Lightning step "
    "(RegressionData steps_per_execution=16). Every build_trainer run on the CPU keeps freed memory in the heap "
    "(ReuseFreedMemory), redraws its progress bar at most 4 times a second (TimedProgressBar) and, under bf16, "
    "casts linear and conv weights once per evaluation loop (CastWeightsOnceForEval); the course CNNs max-pool "
    "with HalvingMaxPool, the ReLU after it in the same pass (strided maxima at inference; in training a "
    "compiled kernel, which build_trainer's "
    "default compiles per pooling layer where the run's steps pay it back: the image CNN's first pooling from "
    "~560 steps of 100 frames, the motif CNN's from ~2,500 steps of 1,000 windows; asked for here, LONG_RUN); "
    "where it compiles, a convolution reading <= 32 channels and its pooling run as one convolution over 2-wide "
    "input blocks (ConvMaxPool: the motif CNN's two, the image CNN's first two under bf16; at inference the "
    "image CNN's 3-colour first one); one-hot windows are held and gathered channels-fastest; "
    "dense layers predict big fp32 products through oneDNN on x86 CPUs, a ReLU after one in the same pass "
    "(OneDnnLinear, DenseStack; the plain loop runs the same modules, so it gains the same); the sqrt net "
    "predicts in RegressionData's batches of 262,144 rows on every path, on AMD CPUs in chunks of rows that stay in "
    "cache (DenseStack).",
    "The first training step of every project run (first_step_s in the .json) includes compiling the pooling "
    "kernels, or loading them from inductor's disk cache; it is a warm-up step, as keras' tracing is.",
    "The plain loop runs in the same process as the project. After a project run glibc's malloc keeps fixed "
    "limits (32 MiB mmap, 64 MiB trim: where its adaptive ones settle) instead of adaptive ones, which makes "
    "the plain loop faster than in a fresh process for big tensors (dense baseline training ~1.5k -> ~5k "
    "samples/s): the project/plain ratios are, if anything, conservative.",
]
CUDA_NOTES = [
    "Project settings, as build_trainer chooses them on CUDA (the settings column): precision auto, which is "
    "bf16 autocast, and the channels-fastest layout for the conv nets; the course CNNs' HalvingMaxPool runs "
    "eagerly (its compiled kernel is a CPU one) and the dense sqrt net runs in fp32 (as configs/regression set "
    "it) with 16 optimiser steps per Lightning step (RegressionData steps_per_execution=16). The plain loop is "
    "fp32 with contiguous tensors.",
    "Both paths wait for the GPU at every batch end (torch.cuda.synchronize), so each time is of finished work. "
    "The plain loop slices batches already on the GPU; build_trainer's HoldDataOnGpu moves the DataModule's "
    "in-memory sets there for the run (a user's run does the same), so the project slices them there too.",
]
BUSY_LOAD_PER_CORE = 0.75  # a load average above this per core: other work shared the machine

if __name__ == "__main__":
    main()
