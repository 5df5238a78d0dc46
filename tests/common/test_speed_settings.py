"""The fast settings are really applied: bf16 autocast where the CPU has it, channels_last, fused Adam (outcomes, no timings)."""
from __future__ import annotations

import copy
import json
import os
import platform
import subprocess
import sys
from pathlib import Path
from typing import Callable

import pytest

import torch
from torch import nn

from common import pooling
from common.classifier import Classifier
from common.cpu_linear import onednn_linear_inference
from common.cpu_memory import heap_reuse, heap_reuse_enabled, set_heap_reuse
from common.data import BatchTensors, batch_loader
from common.devices import cpu_has_native_bf16
from common.memory_format import (ChannelsLastConv1d, FlattenLinear, cat_channels, channels_last,
                                  convolutions_to_channels_last)
from common.optim import make_optimizer
from common.pooling import CompiledPooling, HalvingMaxPool
from common.trainer import build_trainer


class TinyConvNet(nn.Module):
    """Conv 3->4, global max: enough to see memory formats and autocast dtypes."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)
        self.out_features = 4
        self.seen: list[tuple[torch.dtype, bool]] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.conv(x)
        self.seen.append((y.dtype, x.is_contiguous(memory_format=torch.channels_last)))
        return y.amax(dim=(2, 3))


def needs_glibc() -> None:
    """Skip where the C library is not glibc (macOS, Windows, musl): heap reuse tunes glibc's malloc; then require it."""
    if platform.system() != "Linux" or platform.libc_ver()[0] != "glibc":
        pytest.skip("heap reuse tunes glibc's malloc (Linux)")
    assert set_heap_reuse(False), "glibc found, yet its malloc settings could not be changed"


@pytest.mark.parametrize("native", [True, False])
def test_cpu_bf16_trains_in_bf16_only_on_native_bf16_cpus_and_channels_last_reaches_the_convolutions(
        tmp_path, monkeypatch, native):
    monkeypatch.setattr("common.devices.cpu_has_native_bf16", lambda: native)  # either CPU, on any test machine
    backbone = TinyConvNet()
    model = Classifier(backbone, ["no", "yes"], task="binary", channels_last=True)
    x, y = torch.rand(8, 3, 10, 12), torch.randint(0, 2, (8,)).float()
    trainer = build_trainer(max_steps=2, accelerator="cpu", cpu_bf16=True, default_root_dir=str(tmp_path),
                            logger=False, enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, train_dataloaders=batch_loader(BatchTensors(x, y), 4))
    expected = torch.bfloat16 if native else torch.float32
    assert str(trainer.precision) == ("bf16-mixed" if native else "32-true")
    assert backbone.seen and all(dtype == expected and channels_last for dtype, channels_last in backbone.seen)
    assert backbone.conv.weight.is_contiguous(memory_format=torch.channels_last)


def test_native_bf16_is_read_from_the_cpu_flags():
    if platform.system() != "Linux":
        pytest.skip("the CPU's flags are read from /proc/cpuinfo (Linux)")
    flags = next(line for line in open("/proc/cpuinfo") if line.startswith("flags")).split()
    assert cpu_has_native_bf16() == ("avx512_bf16" in flags or "amx_bf16" in flags)


def test_plain_settings_stay_fp32_and_contiguous(tmp_path):
    backbone = TinyConvNet()
    model = Classifier(backbone, ["no", "yes"], task="binary")
    trainer = build_trainer(max_steps=1, accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                            enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(model, train_dataloaders=batch_loader(BatchTensors(torch.rand(4, 3, 10, 12), torch.ones(4)), 4))
    assert backbone.seen == [(torch.float32, False)]


def test_adam_is_fused_on_cpu_and_steps_like_the_unfused_one():
    torch.manual_seed(0)
    net = nn.Linear(5, 3)
    reference = nn.Linear(5, 3)
    reference.load_state_dict(net.state_dict())
    fused, unfused = make_optimizer(net.parameters(), "adam"), torch.optim.Adam(reference.parameters(), lr=1e-3)
    assert fused.defaults["fused"] is True
    x = torch.randn(16, 5)
    for model, optimizer in ((net, fused), (reference, unfused)):
        for _ in range(3):
            optimizer.zero_grad()
            model(x).pow(2).mean().backward()
            optimizer.step()
    torch.testing.assert_close(net.weight, reference.weight)


def test_channels_last_for_one_dimensional_convolutions_changes_the_layout_not_the_logits():
    torch.manual_seed(0)
    backbone = nn.Sequential(nn.Conv1d(4, 6, 5), nn.ReLU(), nn.MaxPool1d(2), nn.Flatten(), nn.Linear(6 * 8, 3))
    backbone.out_features = 3
    plain = Classifier(backbone, ["a", "b", "c"], task="multiclass")
    fast = Classifier(copy.deepcopy(backbone), ["a", "b", "c"], task="multiclass", channels_last=True)
    fast.setup("fit")
    fast.head.load_state_dict(plain.head.state_dict())
    conv = fast.backbone[0]
    assert conv.weight.stride(1) == 1 and channels_last(torch.rand(2, 4, 20)).stride(1) == 1
    x = torch.rand(5, 4, 20)
    torch.testing.assert_close(fast(x), plain(x))


class RecordingBackbone(nn.Module):
    """A backbone on 8 features that records `probe()` (a setting in force) each time it runs."""

    def __init__(self, probe: Callable[[], object], width: int = 4) -> None:
        super().__init__()
        self.layer = nn.Linear(8, width)
        self.out_features = width
        self.probe = probe
        self.seen: list = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen.append(self.probe())
        return self.layer(x.flatten(1))


@pytest.mark.parametrize("width,expected", [(16, 1), (20_000, 2)])
def test_tiny_models_train_on_one_thread_and_the_thread_count_comes_back(tmp_path, width, expected):
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        backbone = RecordingBackbone(torch.get_num_threads, width)  # 16: 145 parameters; 20,000: 180,000 (above the 100,000 limit)
        x, y = torch.rand(16, 8), torch.randint(0, 2, (16,)).float()
        trainer = build_trainer(max_steps=2, accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                                enable_checkpointing=False, enable_progress_bar=False)
        trainer.fit(Classifier(backbone, ["no", "yes"]), train_dataloaders=batch_loader(BatchTensors(x, y), 8))
        assert set(backbone.seen) == {expected}
        assert torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(before)


class FailingBackbone(RecordingBackbone):
    """A RecordingBackbone whose second forward pass raises, as a bug in a user's model would."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if len(self.seen) == 1:
            raise RuntimeError("a bug in the model")
        return super().forward(x)


def test_a_failed_fit_gives_back_threads_and_heap_settings(tmp_path):
    needs_glibc()
    before = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        backbone = FailingBackbone(lambda: (torch.get_num_threads(), heap_reuse_enabled()))
        trainer = build_trainer(max_steps=4, accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                                enable_checkpointing=False, enable_progress_bar=False)
        x, y = torch.rand(32, 8), torch.randint(0, 2, (32,)).float()
        with pytest.raises(RuntimeError, match="a bug in the model"):
            trainer.fit(Classifier(backbone, ["no", "yes"]), train_dataloaders=batch_loader(BatchTensors(x, y), 8))
        assert backbone.seen == [(1, True)]  # one thread and heap reuse during the fit
        assert torch.get_num_threads() == 2 and not heap_reuse_enabled()  # and given back when it failed
    finally:
        torch.set_num_threads(before)


PAGE_FAULT_PROBE = """
import resource, torch
from common.cpu_memory import set_heap_reuse

def faults(mebibytes=64, times=3):
    before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    for _ in range(times):
        torch.empty(mebibytes << 20, dtype=torch.uint8).fill_(1)
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

faults()
fresh = faults()
assert set_heap_reuse(True)
faults()  # the heap grows once
print(fresh, min(faults() for _ in range(3)))
"""


def test_heap_reuse_stops_big_blocks_page_faulting_each_time():
    # A fresh interpreter: in this one, free chunks that earlier tests left inside the heap can serve
    # a 64 MiB block without any page fault, whatever the mmap threshold says.
    needs_glibc()
    probe = subprocess.run([sys.executable, "-c", PAGE_FAULT_PROBE], capture_output=True, text=True, check=True,
                           cwd=Path(__file__).resolve().parents[2])
    fresh, reused = map(int, probe.stdout.split())
    assert fresh >= 3 * 32  # faulted in anew every time: 16,384 pages of 4 KiB each (32 with 2 MiB huge pages)
    # Best of 3 above: another thread's allocation can take the freed block once.
    assert reused < fresh / 10


def test_cpu_runs_reuse_the_heap_and_hand_it_back_afterwards(tmp_path, capsys):
    needs_glibc()
    backbone = RecordingBackbone(heap_reuse_enabled)
    x, y = torch.rand(16, 8), torch.randint(0, 2, (16,)).float()
    trainer = build_trainer(max_steps=2, accelerator="cpu", default_root_dir=str(tmp_path), run_name="heap",
                            enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(Classifier(backbone, ["no", "yes"]), train_dataloaders=batch_loader(BatchTensors(x, y), 8))
    assert set(backbone.seen) == {True} and not heap_reuse_enabled()
    info = json.loads(next(tmp_path.rglob("run_info_fit.json")).read_text())
    assert info["cpu_heap_reuse"] is True
    assert info["onednn_linear_inference"] is onednn_linear_inference()  # the dense-layer path is stated too
    assert "compiled max-pooling" not in capsys.readouterr().out  # a model without pooling is not told about it


def test_progress_bar_redraws_by_time_not_per_batch(tmp_path, monkeypatch):
    """50 fast batches with a 1-hour interval draw the first and the last batch, where Lightning would draw all 50."""
    from lightning.pytorch.callbacks.progress import tqdm_progress

    draws = []
    monkeypatch.setattr(tqdm_progress, "_update_n", lambda bar, n: draws.append(n))
    trainer = build_trainer(accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                            enable_checkpointing=False, progress_interval=3600)
    model = Classifier(RecordingBackbone(torch.get_num_threads), ["no", "yes"])
    trainer.predict(model, batch_loader(BatchTensors(torch.rand(50, 8)), 1), return_predictions=False)
    assert draws == [1, 50]


def test_progress_bar_draws_the_first_batch_on_a_machine_booted_under_an_interval_ago(tmp_path, monkeypatch):
    """The monotonic clock counts from boot: a fresh machine (a lent GPU one: 5 minutes) still sees the first batch."""
    from lightning.pytorch.callbacks.progress import tqdm_progress

    from common import callbacks

    draws = []
    monkeypatch.setattr(tqdm_progress, "_update_n", lambda bar, n: draws.append(n))
    monkeypatch.setattr(callbacks.time, "monotonic", lambda: 300.0)
    trainer = build_trainer(accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                            enable_checkpointing=False, progress_interval=3600)
    model = Classifier(RecordingBackbone(torch.get_num_threads), ["no", "yes"])
    trainer.predict(model, batch_loader(BatchTensors(torch.rand(50, 8)), 1), return_predictions=False)
    assert draws == [1, 50]


def test_cat_channels_keeps_the_channels_fastest_layout_and_the_values():
    parts = [torch.rand(2, c, 7) for c in (3, 5)]
    fast = cat_channels([channels_last(p) for p in parts])
    assert fast.stride(1) == 1 and torch.equal(fast, torch.cat(parts, dim=1))
    assert torch.equal(cat_channels(parts), torch.cat(parts, dim=1)) and cat_channels(parts).is_contiguous()


def test_multikernel_cnn_gives_the_same_logits_in_either_layout():
    from motifs.models import MultiKernelCNN

    torch.manual_seed(0)
    plain = Classifier(MultiKernelCNN(), ["a", "b"], task="multiclass").eval()
    fast = copy.deepcopy(plain)
    fast.channels_last = True
    fast.setup("fit")
    x = torch.nn.functional.one_hot(torch.randint(0, 4, (3, 200)), 4).float().transpose(1, 2)
    torch.testing.assert_close(fast(x), plain(x))


def test_batched_explanations_reuse_the_heap_inside_and_leave_an_outer_setting_alone():
    from motifs.explain import predict

    needs_glibc()
    backbone = RecordingBackbone(heap_reuse_enabled)
    model = Classifier(backbone, ["no", "yes"])
    x = torch.rand(5, 4, 2)  # five 2-bp one-hot-shaped windows: 8 features
    predict(model, x)
    assert backbone.seen == [True] and not heap_reuse_enabled()
    with heap_reuse() as on:
        predict(model, x)
        assert on and heap_reuse_enabled()  # the outer block's setting survives the inner call
    assert not heap_reuse_enabled()


@pytest.mark.parametrize("options", [{}, {"padding": 7}, {"padding": 2, "stride": 2, "dilation": 2}])
def test_channels_last_conv1d_gives_conv1d_values_and_gradients(options):
    torch.manual_seed(0)
    reference = nn.Conv1d(4, 6, 5, **options)
    fast = ChannelsLastConv1d(4, 6, 5, **options)
    fast.load_state_dict(reference.state_dict())
    convolutions_to_channels_last(fast)
    x = torch.randn(3, 4, 40)
    for inputs in (channels_last(x), x):  # the channels-fastest path, and nn.Conv1d's own
        fast.zero_grad()
        reference.zero_grad()
        y = fast(inputs)
        torch.testing.assert_close(y, reference(x), rtol=1e-5, atol=1e-6)
        y.square().sum().backward()
        reference(x).square().sum().backward()
        torch.testing.assert_close(fast.weight.grad, reference.weight.grad, rtol=1e-4, atol=1e-5)
    assert channels_last(x).stride(1) == 1 and fast(channels_last(x)).stride(1) == 1  # no copy back to (N, C, L)


def test_flatten_linear_reads_either_layout_as_flatten_then_linear():
    torch.manual_seed(0)
    reference = nn.Sequential(nn.Flatten(), nn.Linear(6 * 9, 5))
    fast = FlattenLinear(6, 9, 5)
    fast.load_state_dict(reference[1].state_dict())  # the same parameters, the same names
    x = torch.randn(4, 6, 9)
    for inputs in (channels_last(x), x):
        fast.zero_grad()
        reference.zero_grad()
        torch.testing.assert_close(fast(inputs), reference(x))
        fast(inputs).square().sum().backward()
        reference(x).square().sum().backward()
        torch.testing.assert_close(fast.weight.grad, reference[1].weight.grad)


def recording_weight_dtypes(model: Classifier) -> list[tuple[bool, torch.dtype]]:
    """Return a list that gets (training?, the first weight's dtype) each time `model` runs a batch."""
    seen: list[tuple[bool, torch.dtype]] = []
    first_weight = next(model.parameters())
    model.register_forward_pre_hook(lambda module, inputs: seen.append((module.training, first_weight.dtype)))
    return seen


def small_image_classifier() -> Classifier:
    """Return the course's dense baseline at 2x2x2 "images" (one hidden layer of 4): a checkpointable model."""
    from rickmorty.models import DenseBaseline

    return Classifier(DenseBaseline(input_shape=(2, 2, 2), units=(4,)), ["no", "yes"])


def test_mixed_precision_evaluation_casts_weights_once_with_lightnings_exact_predictions(tmp_path):
    import lightning as L

    torch.manual_seed(0)
    model = small_image_classifier()
    seen = recording_weight_dtypes(model)
    parameters = {name: (p, p.detach().clone()) for name, p in model.named_parameters()}
    x = torch.randn(64, 2, 2, 2)
    plain_lightning = L.Trainer(accelerator="cpu", precision="bf16-mixed", logger=False, enable_progress_bar=False,
                                enable_model_summary=False, enable_checkpointing=False, default_root_dir=str(tmp_path))
    expected = torch.cat(plain_lightning.predict(model, batch_loader(BatchTensors(x), 16)))
    assert set(seen) == {(False, torch.float32)}  # Lightning's own loop casts every batch
    seen.clear()
    trainer = build_trainer(accelerator="cpu", precision="bf16-mixed", default_root_dir=str(tmp_path), logger=False,
                            enable_checkpointing=False, enable_progress_bar=False)
    predicted = torch.cat(trainer.predict(model, batch_loader(BatchTensors(x), 16)))
    assert seen == [(False, torch.bfloat16)] * 4
    assert torch.equal(predicted, expected)
    for name, p in model.named_parameters():  # the same float32 parameters (an optimiser holds these), unchanged
        assert p is parameters[name][0] and p.dtype == torch.float32 and torch.equal(p, parameters[name][1])


def test_validation_sees_cast_weights_while_training_and_checkpoints_keep_float32(tmp_path):
    torch.manual_seed(0)
    model = small_image_classifier()
    seen = recording_weight_dtypes(model)
    x, y = torch.randn(32, 2, 2, 2), torch.randint(0, 2, (32,)).float()
    trainer = build_trainer(max_epochs=2, accelerator="cpu", precision="bf16-mixed", default_root_dir=str(tmp_path),
                            logger=False, enable_progress_bar=False, num_sanity_val_steps=0)
    trainer.fit(model, batch_loader(BatchTensors(x, y), 8, shuffle=True), batch_loader(BatchTensors(x, y), 16))
    assert seen == ([(True, torch.float32)] * 4 + [(False, torch.bfloat16)] * 2) * 2
    assert all(p.dtype == torch.float32 for p in model.parameters())
    checkpoints = list(tmp_path.rglob("*.ckpt"))
    assert len(checkpoints) == 2  # best and last
    for path in checkpoints:
        state = torch.load(path, weights_only=True)["state_dict"]
        assert all(weights.dtype == torch.float32 for weights in state.values()), path.name
    last = torch.load(next(tmp_path.rglob("last.ckpt")), weights_only=True)["state_dict"]
    assert all(torch.equal(last[name], p) for name, p in model.state_dict().items())


def test_a_failing_evaluation_gives_the_float32_weights_back(tmp_path):
    model = small_image_classifier()
    first_weight = next(model.parameters())

    def fail_with_cast_weights(module, inputs):
        raise RuntimeError(f"stopped with {first_weight.dtype} weights")

    model.register_forward_pre_hook(fail_with_cast_weights)
    trainer = build_trainer(accelerator="cpu", precision="bf16-mixed", default_root_dir=str(tmp_path), logger=False,
                            enable_checkpointing=False, enable_progress_bar=False)
    with pytest.raises(RuntimeError, match="torch.bfloat16 weights"):
        trainer.predict(model, batch_loader(BatchTensors(torch.randn(4, 2, 2, 2)), 4))
    assert all(p.dtype == torch.float32 for p in model.parameters())


@pytest.mark.parametrize("nvml_present", [False, True])
def test_the_nvml_cuda_check_is_skipped_only_where_nvml_is_absent(tmp_path, monkeypatch, nvml_present):
    from common import devices

    monkeypatch.setenv(devices.NVML_CUDA_CHECK, "1")
    monkeypatch.setattr(devices, "nvml_loadable", lambda: nvml_present)
    cuda_before = torch.cuda.is_available()
    build_trainer(accelerator="cpu", default_root_dir=str(tmp_path), logger=False, enable_checkpointing=False)
    assert (devices.NVML_CUDA_CHECK in os.environ) == nvml_present
    assert torch.cuda.is_available() == cuda_before



def test_callbacks_running_the_model_around_an_evaluation_loop_see_float32_weights(tmp_path):
    import lightning as L

    class ForwardOutsideAutocast(L.Callback):
        """Runs the model in float32, without autocast, where plotting callbacks do."""

        def __init__(self) -> None:
            self.dtypes: list[torch.dtype] = []

        def run(self, trainer, pl_module, *_) -> None:
            with torch.no_grad():
                self.dtypes.append(pl_module(torch.randn(2, 2, 2, 2)).dtype)

        on_validation_start = on_validation_epoch_end = on_validation_end = run
        on_predict_start = on_predict_epoch_end = on_predict_end = run

    model = small_image_classifier()
    seen = recording_weight_dtypes(model)
    probe = ForwardOutsideAutocast()
    x, y = torch.randn(16, 2, 2, 2), torch.randint(0, 2, (16,)).float()
    trainer = build_trainer(max_epochs=1, accelerator="cpu", precision="bf16-mixed", default_root_dir=str(tmp_path),
                            logger=False, enable_progress_bar=False, num_sanity_val_steps=0, callbacks=[probe])
    trainer.fit(model, batch_loader(BatchTensors(x, y), 8), batch_loader(BatchTensors(x, y), 8))
    trainer.predict(model, batch_loader(BatchTensors(x), 8))
    assert probe.dtypes == [torch.float32] * 6
    assert seen.count((False, torch.bfloat16)) == 4  # the 2 validation and 2 prediction batches still ran cast weights


class PoolingBackbone(nn.Module):
    """Conv -> HalvingMaxPool -> flatten on (N, 2, 8, 8) channels-last input; records its pooling's backward op."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(2, 4, 3, padding=1)
        self.pool = HalvingMaxPool(2)
        self.out_features = 4 * 4 * 4
        self.seen: list[str] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        pooled = self.pool(self.conv(x))
        if pooled.grad_fn is not None:
            self.seen.append(type(pooled.grad_fn).__name__)
        return pooled.flatten(1)


@pytest.mark.parametrize("setting,steps,expected", [
    (None, 2, "MaxPool2DWithIndicesBackward0"),  # auto: 2 steps of 8 x 512 elements would not pay the compiler back
    (True, 2, "CodedMaxPoolBackward"),
    (False, 2, "MaxPool2DWithIndicesBackward0")])
def test_cpu_training_compiles_pooling_as_compile_pooling_says_and_states_it(tmp_path, capsys, setting, steps,
                                                                             expected, request):
    if expected == "CodedMaxPoolBackward":
        request.getfixturevalue("cxx_compiler")
    backbone = PoolingBackbone()
    x = torch.rand(16, 2, 8, 8).contiguous(memory_format=torch.channels_last)
    trainer = build_trainer(max_steps=steps, accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, compile_pooling=setting)
    trainer.fit(Classifier(backbone, ["no", "yes"]),
                train_dataloaders=batch_loader(BatchTensors(x, torch.randint(0, 2, (16,)).float()), 8))
    assert set(backbone.seen) == {expected}
    stated = {None: "compiled max-pooling auto (only layers that 2 training steps pay back)",
              True: "compiled max-pooling on",
              False: "compiled max-pooling off"}[setting]
    assert stated in capsys.readouterr().out
    assert CompiledPooling.training_steps == 0  # handed back after the run


@pytest.mark.usefixtures("cxx_compiler")
def test_auto_compiles_pooling_for_a_run_long_enough(tmp_path, monkeypatch):
    """With the payback threshold lowered to this tiny net's work, auto compiles: the estimate counts every step."""
    monkeypatch.setattr(pooling, "PAYBACK_ELEMENT_STEPS", 8 * 4 * 8 * 8 * 6)  # one batch's input elements x 6 steps
    backbone = PoolingBackbone()
    x = torch.rand(48, 2, 8, 8).contiguous(memory_format=torch.channels_last)
    trainer = build_trainer(max_epochs=1, accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                            enable_checkpointing=False, enable_progress_bar=False)
    trainer.fit(Classifier(backbone, ["no", "yes"]),
                train_dataloaders=batch_loader(BatchTensors(x, torch.randint(0, 2, (48,)).float()), 8))
    assert set(backbone.seen) == {"CodedMaxPoolBackward"}


def test_lightning_advice_to_add_workers_is_kept_out_of_the_run_log(tmp_path, monkeypatch):
    """On a many-core machine Lightning advises workers for every loader; BatchTensors loaders must not get them."""
    import warnings

    from lightning.pytorch.trainer.connectors import data_connector

    monkeypatch.setattr(data_connector, "suggested_max_num_workers", lambda devices: 7)
    x, y = torch.rand(16, 8), torch.randint(0, 2, (16,)).float()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        trainer = build_trainer(max_epochs=1, accelerator="cpu", default_root_dir=str(tmp_path), logger=False,
                                enable_checkpointing=False, enable_progress_bar=False)
        trainer.fit(Classifier(RecordingBackbone(torch.get_num_threads), ["no", "yes"]),
                    batch_loader(BatchTensors(x, y), 8), batch_loader(BatchTensors(x, y), 8))
    assert trainer.global_step == 2
    assert not [w for w in caught if "many workers" in str(w.message)]


def test_available_cpu_cores_counts_the_cores_this_process_may_use():
    from common.devices import available_cpu_cores

    expected = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    assert available_cpu_cores() == expected >= 1
