"""Shared helpers: splits, batching, devices, summaries, plots, reports, data location."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn
from torch.utils.data import BatchSampler, DataLoader, RandomSampler

from common import paths
from common.cli import check_checkpoint_model, run_command_line
from common.data import (BatchTensors, RangeBatchSampler, batch_loader, group_split_indices, keep_batch,
                         random_split_indices)
from common.devices import resolve_accelerator, resolve_precision
from common.errors import ConfigError, DataError
from common.paths import course_data, data_root
from common.plots import plot_confusion, plot_training_curves
from common.report import Figure, Section, write_report
from common.summary import summarize

ROOT = Path(__file__).resolve().parents[2]


def test_group_split_keeps_every_group_in_one_part():
    groups = np.repeat(np.arange(100), np.random.default_rng(0).integers(1, 6, 100))
    parts = group_split_indices(groups, [0.7, 0.15, 0.15], seed=1)
    assert sum(len(p) for p in parts) == len(groups)
    seen = [set(groups[p]) for p in parts]
    assert not (seen[0] & seen[1] or seen[0] & seen[2] or seen[1] & seen[2])
    assert abs(len(parts[0]) / len(groups) - 0.7) < 0.05


def test_random_split_is_a_partition():
    parts = random_split_indices(103, [0.2, 0.8], seed=0)
    assert sorted(np.concatenate(parts).tolist()) == list(range(103))
    assert len(parts[0]) == 21


def test_batch_loader_fetches_whole_batches_in_order():
    x, y = torch.arange(10).float()[:, None], torch.arange(10)
    batches = list(batch_loader(BatchTensors(x, y), 4))
    assert [len(b[0]) for b in batches] == [4, 4, 2]
    assert batches[1][1].tolist() == [4, 5, 6, 7]
    with pytest.raises(ValueError, match="different lengths"):
        BatchTensors(x, y[:5])


def test_unshuffled_batches_are_views_and_shuffled_ones_are_gathered():
    x = torch.arange(40).float().view(20, 2)
    dataset = BatchTensors(x)
    (view,) = dataset.__getitems__([4, 5, 6])
    assert view.data_ptr() == x[4].data_ptr() and view.tolist() == x[4:7].tolist()
    (gathered,) = dataset.__getitems__([5, 4, 6])  # spans 3 rows but out of order: not a slice
    assert gathered.tolist() == x[[5, 4, 6]].tolist()
    frames = torch.randint(0, 256, (20, 3, 4, 5), dtype=torch.uint8)
    gathered_frames, gathered_x = BatchTensors(frames, x).__getitems__([7, 0, 19])
    assert torch.equal(gathered_frames, frames[[7, 0, 19]]) and gathered_x.tolist() == x[[7, 0, 19]].tolist()
    shuffled = list(batch_loader(dataset, 5, shuffle=True))
    assert sorted(torch.cat([b[0] for b in shuffled])[:, 0].tolist()) == x[:, 0].tolist()



def test_gathered_batches_keep_the_layout_of_their_data():
    """Channels-fastest DNA windows (one_hot's layout) and NHWC frames come out of a shuffled gather as they are held."""
    from motifs.encode import one_hot

    windows = one_hot(np.random.default_rng(0).integers(0, 4, (30, 12)))
    frames = torch.rand(30, 3, 4, 5).contiguous(memory_format=torch.channels_last)
    rows = [9, 2, 17, 2]
    got_windows, got_frames = BatchTensors(windows, frames).__getitems__(rows)
    assert windows.stride(1) == 1 and got_windows.stride() == (48, 1, 4) and torch.equal(got_windows, windows[rows])
    assert got_frames.is_contiguous(memory_format=torch.channels_last) and torch.equal(got_frames, frames[rows])

def test_device_and_precision_choice():
    assert resolve_accelerator("cpu") == "cpu"
    assert resolve_accelerator("gpu") == "cuda"
    with pytest.raises(ConfigError, match="unknown accelerator"):
        resolve_accelerator("tpu9")
    assert resolve_precision("cpu", "auto", cpu_bf16=False) == "32-true"
    assert resolve_precision("mps", "auto") == "32-true"
    assert resolve_precision("cpu", "16-mixed") == "16-mixed"


def test_keras_style_summary_lists_shapes_and_counts():
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 8 * 8, 2))
    table = summarize(model, (3, 10, 10))
    assert "(None, 4, 8, 8)" in table and "(None, 2)" in table
    assert f"Total params: {sum(p.numel() for p in model.parameters()):,}" in table


def test_plots_and_report_are_written(tmp_path):
    metrics = tmp_path / "metrics.csv"
    metrics.write_text("epoch,step,train_loss,val_loss\n0,5,1.0,\n0,5,,0.9\n1,10,0.5,\n1,10,,0.6\n")
    curves = plot_training_curves(metrics, tmp_path / "curves.png")
    confusion = plot_confusion(np.array([[5, 1], [2, 7]]), ["a", "b"], tmp_path / "cm.png")
    assert curves.stat().st_size > 1000 and confusion.stat().st_size > 1000
    page = write_report([Section("Demo", "text <b>", {"acc": 0.5}, [Figure(curves, "Loss per epoch.")])],
                        tmp_path / "report.html", note="Made today.")
    content = page.read_text()
    assert "data:image/png;base64," in content and "text &lt;b&gt;" in content and "0.5" in content
    assert "<figcaption>Loss per epoch." in content and "Made today." in content


def test_data_location_from_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("DEEPBIO_DATA", str(tmp_path))
    assert data_root() == tmp_path.resolve()
    with pytest.raises(DataError, match="DEEPBIO_DATA=.* does not hold the course's 'ChIP/SOX17.fa'"):
        course_data("ChIP/SOX17.fa")
    monkeypatch.delenv("DEEPBIO_DATA")
    monkeypatch.setattr(paths, "data_root", lambda: tmp_path)  # as if found at ../shared/data
    with pytest.raises(DataError, match="the course data found at .* does not hold the course's 'ChIP/SOX17.fa'"):
        course_data("ChIP/SOX17.fa")


def test_only_errors_raised_from_a_deepbio_error_end_a_command_in_one_line():
    def wrapped():  # as jsonargparse wraps an error of a class it builds
        try:
            raise DataError("bad file")
        except DataError as error:
            raise ValueError("does not validate") from error

    def buggy():  # a bug while handling a deepbio error keeps its traceback
        try:
            raise DataError("bad file")
        except DataError:
            return {}["missing"]

    with pytest.raises(SystemExit, match="error: bad file"):
        run_command_line(wrapped)
    with pytest.raises(KeyError):
        run_command_line(buggy)


class TakesAnything:
    """A model class whose constructor takes any settings (**kwargs)."""

    def __init__(self, lr: float = 0.1, **kwargs) -> None:
        self.lr = lr


def test_a_checkpoint_is_checked_against_the_model_the_config_builds(tmp_path):
    def saved(name, hparams):
        torch.save({"hyper_parameters": hparams, "state_dict": {}}, tmp_path / name)
        return tmp_path / name

    classifier = "common.classifier.Classifier"
    check_checkpoint_model(saved("ok.ckpt", {"lr": 0.1, "task": "binary", "_instantiator": "x"}), classifier)
    check_checkpoint_model(saved("same.ckpt", {"_class_path": classifier, "lr": 0.1}), classifier)
    autoencoder = saved("ae.ckpt", {"_class_path": "rickmorty.autoencoder.ConvAutoencoder", "lr": 0.1})
    with pytest.raises(ConfigError, match=r"ae\.ckpt holds a rickmorty\.autoencoder\.ConvAutoencoder, but the "
                                          r"config builds a common\.classifier\.Classifier"):
        check_checkpoint_model(autoencoder, classifier)
    with pytest.raises(ConfigError, match=r"reg\.ckpt holds settings a Classifier does not take \(hidden, n_inputs\): "
                                          r"another kind of model saved it"):
        check_checkpoint_model(saved("reg.ckpt", {"hidden": [3], "n_inputs": 1, "lr": 0.1}), classifier)
    # A model that takes **kwargs, or a recorded class path that matches, is never judged by its settings' names.
    check_checkpoint_model(saved("kw.ckpt", {"task": "binary", "class_names": ["a"]}), f"{__name__}.TakesAnything")
    check_checkpoint_model(saved("cls.ckpt", {"_class_path": classifier, "hidden": [3]}), classifier)
    (tmp_path / "junk.ckpt").write_text("junk")
    with pytest.raises(DataError, match=r"junk\.ckpt could not be read"):
        check_checkpoint_model(tmp_path / "junk.ckpt", classifier)


def test_ordered_loaders_hand_out_ranges_and_shuffled_ones_index_tensors():
    dataset = BatchTensors(torch.arange(10).float())
    ordered = batch_loader(dataset, 4)
    assert list(ordered.batch_sampler) == [range(0, 4), range(4, 8), range(8, 10)]
    assert list(batch_loader(dataset, 4, drop_last=True).batch_sampler) == [range(0, 4), range(4, 8)]
    assert [b[0].tolist() for b in ordered] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    in_worker = list(batch_loader(dataset, 4, num_workers=1))  # rows are copied there, not shipped as views
    assert [b[0].tolist() for b in in_worker] == [[0, 1, 2, 3], [4, 5, 6, 7], [8, 9]]
    assert all(b[0].untyped_storage().nbytes() == b[0].numel() * 4 for b in in_worker)  # not the whole set's
    for drop_last in (False, True):  # the batches, in the order, of torch's BatchSampler over the same RandomSampler
        torch.manual_seed(0)
        shuffled = list(batch_loader(dataset, 4, shuffle=True, drop_last=drop_last).batch_sampler)
        after = torch.rand(1)
        torch.manual_seed(0)
        lists = list(BatchSampler(RandomSampler(dataset), 4, drop_last))
        assert all(isinstance(b, torch.Tensor) for b in shuffled) and [b.tolist() for b in shuffled] == lists
        assert torch.equal(torch.rand(1), after)  # both drew the same from the global generator
    torch.manual_seed(1)
    batches = [b[0].tolist() for b in batch_loader(dataset, 4, shuffle=True)]
    torch.manual_seed(1)
    lists = DataLoader(dataset, batch_sampler=BatchSampler(RandomSampler(dataset), 4, False), collate_fn=keep_batch)
    assert batches == [b[0].tolist() for b in lists]
    generator = torch.Generator().manual_seed(2)  # a sampler with a generator of its own: torch's lists
    lists = RangeBatchSampler(RandomSampler(dataset, generator=generator), 4, False)
    assert all(isinstance(b, list) for b in lists) and sorted(sum(list(lists), [])) == list(range(10))


def test_a_process_group_left_open_is_closed_at_exit():
    # An exit handler registered before common.trainer's runs after it (atexit is last in, first out).
    script = """
import atexit, os
import torch.distributed as dist
atexit.register(lambda: print("open at exit" if dist.is_initialized() else "closed at exit"))
import common.trainer
os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT="0")
dist.init_process_group("gloo", rank=0, world_size=1)
print("open" if dist.is_initialized() else "not opened")
"""
    result = subprocess.run([sys.executable, "-c", script], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stdout.split() == ["open", "closed", "at", "exit"]
