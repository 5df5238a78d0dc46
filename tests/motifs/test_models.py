"""The course motif CNN exactly (3,008 flattened features, keras' parameter count) and the multi-kernel variant."""
from __future__ import annotations

import pytest
import torch

from common.checkpoints import module_spec
from common.classifier import Classifier, load_classifier
from common.errors import DataError
from common.summary import count_parameters
from motifs.models import CourseCNN, MultiKernelCNN


def test_course_cnn_matches_the_keras_model():
    model = Classifier(CourseCNN(), ["SOX17", "PRDM1", "random"], task="multiclass", optimizer="sgd", lr=0.01)
    assert model.backbone.flat_features == 3008  # 47 positions x 64 filters
    assert count_parameters(model) == 308_087  # as modelCNNTF.h5: 420 + 6,464 + 300,900 + 303
    assert model(torch.zeros(2, 4, 200)).shape == (2, 3)
    assert model.backbone.first_layer.weight.shape == (20, 4, 5)


def test_multi_kernel_variant_and_other_lengths():
    backbone = MultiKernelCNN(length=120, kernel_sizes=(3, 7, 11), filters_per_kernel=8)
    model = Classifier(backbone, ["SOX17", "PRDM1"], task="multilabel")
    assert model(torch.zeros(3, 4, 120)).shape == (3, 2)
    assert Classifier(CourseCNN(length=101), ["a", "b"], task="binary")(torch.zeros(1, 4, 101)).shape == (1, 1)


def test_windows_of_another_length_are_refused_naming_both():
    model = Classifier(CourseCNN(length=60), ["a", "b"], task="binary")
    for length in (59, 61, 63):  # 61..63 would pass the pooling unnoticed, their last bases ignored
        with pytest.raises(DataError, match=f"the windows are {length} bp, but this model reads 60 bp windows"):
            model(torch.zeros(1, 4, length))
    with pytest.raises(DataError, match="reads 120 bp"):
        MultiKernelCNN(length=120)(torch.zeros(1, 4, 121))


def test_checkpoint_rebuilds_the_backbone(tmp_path):
    model = Classifier(MultiKernelCNN(dense=32), ["neg", "pos"], task="binary").eval()
    checkpoint = {"state_dict": model.state_dict(), "hyper_parameters": dict(model.hparams),
                  "backbone_spec": module_spec(model.backbone)}
    torch.save(checkpoint, tmp_path / "model.ckpt")
    loaded = load_classifier(tmp_path / "model.ckpt")
    x = torch.rand(4, 4, 200)
    assert isinstance(loaded.backbone, MultiKernelCNN) and torch.allclose(loaded(x), model(x))
