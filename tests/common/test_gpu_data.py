"""In-memory data sets held on the GPU for a run: what moves, what stays, and that it all comes back."""
from __future__ import annotations

from types import SimpleNamespace

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode
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
    host = hold_on_device(dataset, META, budget_bytes=1_000)
    assert host[0] is x and host[1] is y
    assert all(t.device == META for t in dataset.tensors)
    shuffled = dataset.__getitems__([7, 2, 5])
    ordered = dataset.__getitems__(range(2, 6))
    assert [t.device for t in shuffled + ordered] == [META] * 4
    assert shuffled[0].shape == (3, 3) and ordered[1].shape == (4,)


def test_a_shuffled_batch_is_gathered_with_an_index_on_the_data_device():
    """index_select needs its index where the data is: a CPU index on CUDA data fails (meta data accepts one)."""
    devices = []

    class RecordIndex(TorchFunctionMode):
        def __torch_function__(self, func, types, args=(), kwargs=None):
            if func is torch.Tensor.index_select:
                devices.append(args[2].device)
            return func(*args, **(kwargs or {}))

    dataset = BatchTensors(torch.rand(10, 3))
    with RecordIndex():
        dataset.__getitems__([7, 2, 5])
        hold_on_device(dataset, META, budget_bytes=1_000)
        dataset.__getitems__([7, 2, 5])
    assert devices == [torch.device("cpu"), META]


def test_hold_leaves_a_set_over_its_budget_or_already_there():
    """A set over the budget stays on the host; one already on the device is not moved again."""
    x = torch.rand(100, 10)  # 4,000 bytes
    dataset = BatchTensors(x)
    assert hold_on_device(dataset, META, budget_bytes=3_999) is None and dataset.tensors[0] is x
    assert hold_on_device(dataset, META, budget_bytes=4_000) is not None
    assert hold_on_device(dataset, META, budget_bytes=4_000) is None


def test_batch_tensor_sets_finds_single_process_unpinned_batch_tensor_loaders_in_collections():
    """Loaders in lists and dicts are searched; worker loaders, pinned loaders and other datasets are left alone."""
    kept, in_workers, pinned = (BatchTensors(torch.rand(4, 2)) for _ in range(3))
    loaders = {"a": [batch_loader(kept, 2)], "b": batch_loader(in_workers, 2, num_workers=1),
               "c": DataLoader(TensorDataset(torch.rand(4, 2))), "d": DataLoader(pinned, pin_memory=True)}
    assert list(batch_tensor_sets(loaders)) == [kept]


def stub_trainer(device: torch.device = META, **loaders) -> SimpleNamespace:
    """Return what HoldDataOnGpu reads of a Trainer: its device (meta unless given), rank-zero flag and loaders."""
    return SimpleNamespace(strategy=SimpleNamespace(root_device=device), is_global_zero=True, **loaders)


@pytest.fixture
def meta_is_held(monkeypatch):
    """Let HoldDataOnGpu hold data on the meta device, with 10,000 bytes free."""
    monkeypatch.setattr(gpu_data, "HELD_DEVICE_TYPES", ("meta",))
    monkeypatch.setattr(gpu_data, "free_device_memory", lambda device: 10_000)


def test_callback_holds_each_stage_data_once_and_gives_it_back(meta_is_held, capsys):
    """Training and validation sets move at their stage's start (said once), and point at the host tensors after."""
    train, val = BatchTensors(torch.rand(8, 2)), BatchTensors(torch.rand(4, 2))
    host_train, host_val = train.tensors, val.tensors
    trainer = stub_trainer(train_dataloader=batch_loader(train, 4), val_dataloaders=batch_loader(val, 4))
    callback = HoldDataOnGpu()
    callback.on_validation_start(trainer, None)  # the sanity check runs first
    callback.on_train_start(trainer, None)
    callback.on_train_epoch_start(trainer, None)
    callback.on_validation_start(trainer, None)
    assert train.tensors[0].device == META and val.tensors[0].device == META
    said = capsys.readouterr().out
    assert said.count("training data held on meta") == 1 and said.count("validation data held on meta") == 1
    callback.teardown(trainer, None, "fit")
    assert train.tensors is host_train and val.tensors is host_val and not callback.held
    callback.on_train_start(trainer, None)
    callback.on_exception(trainer, None, KeyboardInterrupt())
    assert train.tensors is host_train  # a run stopped by an error or Ctrl-C releases the data too


def test_a_reloaded_loader_releases_the_set_it_replaces(meta_is_held):
    """reload_dataloaders_every_n_epochs builds new sets: the old one goes back to the host, only the new one is held."""
    first, second = BatchTensors(torch.rand(8, 2)), BatchTensors(torch.rand(8, 2))
    host_first = first.tensors
    trainer = stub_trainer(train_dataloader=batch_loader(first, 4))
    callback = HoldDataOnGpu()
    callback.on_train_epoch_start(trainer, None)
    trainer.train_dataloader = batch_loader(second, 4)
    callback.on_train_epoch_start(trainer, None)
    assert first.tensors is host_first and second.tensors[0].device == META
    assert [dataset for dataset, _ in callback.held["training"]] == [second]


def test_all_held_sets_together_stay_within_the_memory_fraction(meta_is_held):
    """With 10,000 bytes free and a quarter to fill, a 2,000-byte set is held and a second one is not."""
    first, second = BatchTensors(torch.rand(500)), BatchTensors(torch.rand(500))  # 2,000 bytes each
    HoldDataOnGpu().on_train_start(stub_trainer(train_dataloader=[batch_loader(first, 4), batch_loader(second, 4)]),
                                   None)
    assert first.tensors[0].device == META and second.tensors[0].device == torch.device("cpu")


def test_callback_does_nothing_on_other_devices(monkeypatch):
    """On the CPU (every device but CUDA) the data sets stay untouched."""
    dataset = BatchTensors(torch.rand(8, 2))
    trainer = stub_trainer(torch.device("cpu"), train_dataloader=batch_loader(dataset, 4))
    monkeypatch.setattr(gpu_data, "hold_on_device", lambda *args: pytest.fail("nothing is held on the CPU"))
    HoldDataOnGpu().on_train_start(trainer, None)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU (run on a lent GPU machine)")
def test_cuda_fit_holds_its_data_on_the_gpu_learns_and_gives_it_back():
    """A real CUDA fit: training batches come from data held on the GPU, the net learns, the host data is back."""
    seen = []

    class Recording(BatchTensors):
        def __getitems__(self, indices):
            batch = super().__getitems__(indices)
            seen.append(batch[0].device.type)  # as the loader hands it over, before Lightning's copy to the GPU
            return batch

    x = torch.randn(512, 8)
    y = (x[:, 0] > 0).float()
    train, val = Recording(x[:384], y[:384]), Recording(x[384:], y[384:])
    backbone = nn.Sequential(nn.Linear(8, 16), nn.ReLU())
    backbone.out_features = 16
    trainer = build_trainer(max_epochs=8, accelerator="cuda", logger=False, enable_checkpointing=False,
                            enable_progress_bar=False)
    trainer.fit(Classifier(backbone, ["neg", "pos"], lr=0.01), batch_loader(train, 32, shuffle=True), batch_loader(val, 64))
    assert set(seen) == {"cuda"}
    assert trainer.callback_metrics["val_acc"] > 0.85
    assert train.tensors[0].device.type == "cpu" and val.tensors[0].device.type == "cpu"
