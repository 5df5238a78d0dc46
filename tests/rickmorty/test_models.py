"""Backbones: the course's exact sizes, the transfer backbone's local weights and freezing, the BN CNN."""
from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torchvision.models import resnet18

from common.classifier import Classifier, load_classifier
from common.errors import DataError
from common.pooling import HalvingMaxPool
from rickmorty.models import BatchNormCNN, CourseCNN, DenseBaseline, ResNetBackbone

BINARY = ["not_rick", "rick"]


def n_params(model) -> int:
    return sum(p.numel() for p in model.parameters())


def test_dense_baseline_has_the_course_parameter_count():
    assert n_params(Classifier(DenseBaseline(), BINARY)) == 4_332_341


@pytest.mark.parametrize("task,classes,outputs", [("binary", BINARY, 1), ("multilabel", ["rick", "morty"], 2),
                                                  ("multiclass", ["rick", "morty", "neither"], 3)])
def test_course_cnn_layers_and_outputs(task, classes, outputs):
    backbone = CourseCNN()
    assert backbone.flat_features == 64 * 7 * 16
    convs = [m for m in backbone.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [(c.out_channels, c.kernel_size, c.padding) for c in convs] == [(20, (5, 5), (0, 0)), (20, (5, 5), (0, 0)),
                                                                         (64, (5, 5), (0, 0))]
    assert isinstance(backbone.dense[2], torch.nn.Identity) and backbone.dense[3].p == 0.3  # keras Dense(100): linear
    model = Classifier(backbone, classes, task=task)
    assert model(torch.rand(2, 3, 90, 160)).shape == (2, outputs)


def test_relu_after_pool_keeps_the_course_values_and_gradients():
    """ReLU and max-pooling commute: the faster order (ReLU inside the pooling) gives keras' Conv(relu) -> MaxPool values and gradients."""
    torch.manual_seed(0)
    fast = CourseCNN().eval()
    keras_order = copy.deepcopy(fast)
    for i, block in enumerate(keras_order.features):
        if block[1].__class__ is HalvingMaxPool and block[1].relu:
            keras_order.features[i] = torch.nn.Sequential(block[0], torch.nn.ReLU(), HalvingMaxPool(2))
    assert fast.features[0][1].relu and isinstance(keras_order.features[0][1], torch.nn.ReLU)
    x = torch.rand(3, 3, 90, 160)
    for model in (fast, keras_order):
        model(x).sum().backward()
    assert torch.equal(fast(x), keras_order(x))
    assert torch.equal(fast.features[0][0].weight.grad, keras_order.features[0][0].weight.grad)
    assert fast.last_conv is fast.features[-1][1] and isinstance(fast.last_conv, torch.nn.ReLU)  # pre-pool map


def test_batchnorm_cnn_is_size_independent():
    model = Classifier(BatchNormCNN(widths=(8, 16)), BINARY)
    assert model(torch.rand(2, 3, 90, 160)).shape == model(torch.rand(2, 3, 64, 64)).shape == (2, 1)


def test_resnet_backbone_loads_local_weights_and_freezes(tmp_path):
    reference = resnet18(weights=None)
    path = tmp_path / "resnet18.pt"
    torch.save(reference.state_dict(), path)
    backbone = ResNetBackbone(weights_path=str(path), freeze=True)
    assert torch.equal(backbone.net.conv1.weight, reference.conv1.weight)
    assert not any(p.requires_grad for p in backbone.net.parameters())
    model = Classifier(backbone, BINARY)
    model.train()
    assert not backbone.net.training  # frozen batch norm keeps its statistics
    optimizer = model.configure_optimizers()
    assert sum(p.numel() for g in optimizer.param_groups for p in g["params"]) == n_params(model.head)
    backbone.set_frozen(False)
    assert all(p.requires_grad for p in backbone.net.parameters())
    assert model(torch.rand(2, 3, 90, 160)).shape == (2, 1)


def test_resnet_backbone_refuses_missing_or_wrong_weights(tmp_path):
    with pytest.raises(DataError, match="nothing is downloaded"):
        ResNetBackbone(weights_path=str(tmp_path / "none.pt"))
    torch.save({"conv.weight": torch.zeros(1)}, tmp_path / "other.pt")
    with pytest.raises(DataError, match="not a resnet18"):
        ResNetBackbone(weights_path=str(tmp_path / "other.pt"))


@pytest.mark.parametrize("backbone", [CourseCNN(), DenseBaseline(), BatchNormCNN(widths=(8, 16))])
def test_checkpoints_rebuild_every_backbone(tmp_path, backbone):
    import lightning as L

    model = Classifier(backbone, ["rick", "morty", "neither"], task="multiclass")
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    loaded = load_classifier(tmp_path / "m.ckpt")
    x = torch.rand(2, 3, 90, 160)
    assert torch.allclose(loaded(x), model.eval()(x))


def test_a_transfer_checkpoint_reloads_without_the_pretrained_weights_file(tmp_path, monkeypatch):
    import lightning as L

    path = tmp_path / "resnet18.pt"
    torch.save(resnet18(weights=None).state_dict(), path)
    model = Classifier(ResNetBackbone(weights_path=str(path), freeze=True), BINARY)
    trainer = L.Trainer(logger=False, enable_checkpointing=False, enable_progress_bar=False, max_epochs=0)
    trainer.strategy.connect(model)
    trainer.save_checkpoint(tmp_path / "m.ckpt")
    path.unlink()  # moved, or another folder: the checkpoint holds the weights anyway
    monkeypatch.chdir(tmp_path.parent)
    loaded = load_classifier(tmp_path / "m.ckpt")
    x = torch.rand(2, 3, 64, 64)
    assert torch.equal(loaded(x), model.eval()(x)) and loaded.backbone.frozen


def test_transfer_backbone_is_frozen_then_unfrozen_by_backbone_finetuning(tmp_path):
    from lightning.pytorch.callbacks import BackboneFinetuning

    from common.trainer import build_trainer
    from rickmorty.data import FrameData

    path = tmp_path / "resnet18.pt"
    torch.save(resnet18(weights=None).state_dict(), path)
    data = FrameData(None, synthetic_count=48, batch_size=8)
    model = Classifier(ResNetBackbone(weights_path=str(path)), data.class_names)
    before = model.backbone.net.conv1.weight.detach().clone()
    trainer = build_trainer(max_epochs=2, limit_train_batches=1, limit_val_batches=1, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, default_root_dir=str(tmp_path),
                            callbacks=[BackboneFinetuning(unfreeze_backbone_at_epoch=1)])
    with warnings.catch_warnings(record=True) as caught:
        trainer.fit(model, data)
    assert not [w for w in caught if "already exist within another group" in str(w.message)]  # BatchNorm: trainable
    groups = trainer.optimizers[0].param_groups
    assert len(groups) == 2 and groups[1]["lr"] < groups[0]["lr"]  # the backbone joined with a smaller rate
    assert all(p.requires_grad for p in model.backbone.parameters())
    assert not torch.equal(model.backbone.net.conv1.weight, before)  # trained in the second epoch
