"""In-memory data sets held on the GPU for a run: what moves, what stays, and that it all comes back."""
from __future__ import annotations

from types import SimpleNamespace

import lightning as L
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from common import gpu_data
from common.classifier import Classifier
from common.data import BatchTensors, batch_loader
from common.gpu_data import HoldDataOnGpu, batch_tensor_sets, hold_on_device
from common.trainer import build_trainer

META = torch.device("meta")  # a device every machine has: tensors with shapes and no values


def test_hold_moves_a_set_that_fits_and_batches_come_from_the_device():
    """The tensors move, the host ones are returned, and shuffled or ordered batches are slices there."""
    x, y = torch.rand(10, 3), torch.arange(10)
    dataset = BatchTensors(x, y)
    host = hold_on_device(dataset, META, free_bytes=10_000)
    assert host[0] is x and host[1] is y
    assert all(t.device == META for t in dataset.tensors)
    shuffled = dataset.__getitems__([7, 2, 5])
    ordered = dataset.__getitems__(range(2, 6))
    assert [t.device for t in shuffled + ordered] == [META] * 4
    assert shuffled[0].shape == (3, 3) and ordered[1].shape == (4,)


def test_hold_leaves_a_set_too_big_for_its_share_of_free_memory_or_already_there():
    """A set over a quarter of the free memory stays on the host; one already on the device is not moved again."""
    x = torch.rand(100, 10)  # 4,000 bytes
    dataset = BatchTensors(x)
    assert hold_on_device(dataset, META, free_bytes=15_000) is None and dataset.tensors[0] is x
    assert hold_on_device(dataset, META, free_bytes=16_000) is not None
    assert hold_on_device(dataset, META, free_bytes=16_000) is None


def test_batch_tensor_sets_finds_single_process_batch_tensor_loaders_in_collections():
    """Loaders in lists and dicts are searched; worker loaders and other datasets are left alone."""
    kept, in_workers = BatchTensors(torch.rand(4, 2)), BatchTensors(torch.rand(4, 2))
    loaders = {"a": [batch_loader(kept, 2)], "b": batch_loader(in_workers, 2, num_workers=1),
               "c": DataLoader(TensorDataset(torch.rand(4, 2)))}
    assert list(batch_tensor_sets(loaders)) == [kept]


def test_callback_holds_each_stage_data_once_and_gives_it_back(monkeypatch, capsys):
    """Training and validation sets move at their stage's start (said once), and point at the host tensors after."""
    monkeypatch.setattr(gpu_data, "free_device_memory", lambda device: 10**9)
    train, val = BatchTensors(torch.rand(8, 2)), BatchTensors(torch.rand(4, 2))
    host_train, host_val = train.tensors, val.tensors
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=META), is_global_zero=True,
                              train_dataloader=batch_loader(train, 4), val_dataloaders=batch_loader(val, 4))
    callback = HoldDataOnGpu(device_types=("meta",))
    callback.on_train_start(trainer, None)
    callback.on_train_epoch_start(trainer, None)
    callback.on_validation_start(trainer, None)
    callback.on_validation_start(trainer, None)
    assert train.tensors[0].device == META and val.tensors[0].device == META
    said = capsys.readouterr().out
    assert said.count("training data held on meta") == 1 and said.count("validation data held on meta") == 1
    callback.teardown(trainer, None, "fit")
    assert train.tensors is host_train and val.tensors is host_val and not callback.held
    callback.on_train_start(trainer, None)
    callback.on_exception(trainer, None, KeyboardInterrupt())
    assert train.tensors is host_train  # a run stopped by an error or Ctrl-C gives the memory back too


def test_callback_does_nothing_on_other_devices(monkeypatch):
    """On the CPU (by default: every device but CUDA) the data sets stay untouched."""
    dataset = BatchTensors(torch.rand(8, 2))
    trainer = SimpleNamespace(strategy=SimpleNamespace(root_device=torch.device("cpu")), is_global_zero=True,
                              train_dataloader=batch_loader(dataset, 4))
    monkeypatch.setattr(gpu_data, "hold_on_device", lambda *args: pytest.fail("nothing is held on the CPU"))
    HoldDataOnGpu().on_train_start(trainer, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a lent GPU machine)")
def test_cuda_fit_holds_its_data_on_the_gpu_learns_and_gives_it_back():
    """A real CUDA fit: training batches come from data held on the GPU, the net learns, the host data is back."""
    x = torch.randn(512, 8)
    y = (x[:, 0] > 0).float()
    train, val = BatchTensors(x[:384], y[:384]), BatchTensors(x[384:], y[384:])
    seen = []

    class Watch(L.Callback):
        def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
            seen.append(train.tensors[0].device.type)

    backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
    backbone.out_features = 16
    trainer = build_trainer(max_epochs=8, accelerator="cuda", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False, callbacks=[Watch()])
    trainer.fit(Classifier(backbone, ["neg", "pos"], lr=0.01), batch_loader(train, 32, shuffle=True), batch_loader(val, 64))
    assert set(seen) == {"cuda"}
    assert trainer.callback_metrics["val_acc"] > 0.85
    assert train.tensors[0].device.type == "cpu" and val.tensors[0].device.type == "cpu"
