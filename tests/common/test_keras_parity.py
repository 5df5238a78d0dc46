"""Parity with keras itself: the course's .h5 files, loaded here, reproduce keras' own outputs.

Golden outputs come from tf_keras on the same files (tests/fixtures/keras_golden/, made by
benchmarks/keras/make_golden.py). Tolerance: float32 round-off (observed max abs diff <= 1e-6).
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from common.keras_import import KerasImportError, keras_sequential, read_keras_model
from motifs.keras_weights import motif_classifier_from_keras
from regression.keras_weights import dense_regressor_from_keras
from rickmorty.keras_weights import autoencoder_from_keras, image_classifier_from_keras
from tests.common.keras_golden import golden, keras_layout
from tests.common.test_keras_import import write_keras_h5

FILES = ["densemodel", "modelCNNTF", "modelCNNTF_rerun", "modelAE", "modelAEND", "convmodel"]


def assert_parity(ours: np.ndarray, keras: np.ndarray) -> None:
    assert ours.shape == keras.shape
    np.testing.assert_allclose(ours, keras, rtol=1e-5, atol=2e-6)


@pytest.fixture(scope="module")
def models_dir(course_data) -> Path:
    return course_data / "RickandMorty/data/models"


@pytest.mark.parametrize("stem", FILES)
def test_generic_import_reproduces_keras(models_dir, stem):
    x, expected = golden(stem)
    with torch.no_grad():
        assert_parity(keras_layout(keras_sequential(models_dir / f"{stem}.h5")(x)), expected)


def test_dense_regressor_reproduces_densemodel(models_dir):
    model = dense_regressor_from_keras(models_dir / "densemodel.h5")
    assert list(model.hparams.hidden) == [10, 20]
    x, expected = golden("densemodel")
    with torch.no_grad():
        assert_parity(model(x).numpy(), expected)


@pytest.mark.parametrize("stem", ["modelCNNTF", "modelCNNTF_rerun"])
def test_motif_classifier_reproduces_course_cnn(models_dir, stem):
    model = motif_classifier_from_keras(models_dir / f"{stem}.h5")
    assert model.class_names == ["SOX17", "PRDM1", "random"] and model.backbone.flat_features == 3008
    x, expected = golden(stem)
    with torch.no_grad():
        assert_parity(model.probabilities(model(x)).numpy(), expected)


@pytest.mark.parametrize("stem", ["modelAE", "modelAEND"])
def test_autoencoder_reproduces_course_autoencoders(models_dir, stem):
    model = autoencoder_from_keras(models_dir / f"{stem}.h5")
    assert sum(p.numel() for p in model.parameters()) == 189_611
    x, expected = golden(stem)
    with torch.no_grad():
        assert_parity(keras_layout(model(x)), expected)


def test_task_loaders_refuse_files_of_another_architecture(models_dir):
    with pytest.raises(KerasImportError, match="not the course's autoencoder layout"):
        autoencoder_from_keras(models_dir / "convmodel.h5")
    with pytest.raises(KerasImportError, match="not the course's motif CNN layout"):
        motif_classifier_from_keras(models_dir / "modelAE.h5")
    with pytest.raises(KerasImportError, match="not a dense network"):
        dense_regressor_from_keras(models_dir / "modelCNNTF.h5")
    with pytest.raises(KerasImportError, match="CourseCNN pools 2x2 only"):
        image_classifier_from_keras(models_dir / "convmodel.h5")  # pools 3x3: keras_sequential loads it
    with pytest.raises(KerasImportError, match="3 outputs but class names"):
        motif_classifier_from_keras(models_dir / "modelCNNTF.h5", class_names=["SOX17", "other"])


def course_image_cnn_file(path: Path, seed: int = 0) -> Path:
    """Write a keras file of the course's image CNN (modelCNN.h5's layout) with random weights."""
    rng = np.random.default_rng(seed)
    layers, channels = [], 3
    for i, filters in enumerate((20, 20, 64)):
        config = {"name": f"conv{i}", "filters": filters, "kernel_size": [5, 5], "activation": "relu"}
        if i == 0:
            config["batch_input_shape"] = [None, 90, 160, 3]
        layers += [("Conv2D", config, [rng.normal(0, (25 * channels) ** -0.5, (5, 5, channels, filters)),
                                       rng.normal(0, 0.1, filters)]),
                   ("MaxPooling2D", {"name": f"pool{i}", "pool_size": [2, 2], "strides": [2, 2]}, [])]
        channels = filters
    layers += [("Flatten", {"name": "flatten"}, []),
               ("Dense", {"name": "dense", "units": 100},
                [rng.normal(0, 7168 ** -0.5, (7168, 100)), rng.normal(0, 0.1, 100)]),
               ("Dropout", {"name": "dropout", "rate": 0.3}, []),
               ("Dense", {"name": "out", "units": 1, "activation": "sigmoid"},
                [rng.normal(0, 0.3, (100, 1)), np.zeros(1)])]
    return write_keras_h5(path, layers)


def test_image_classifier_imports_the_course_cnn_layout(tmp_path):
    path = course_image_cnn_file(tmp_path / "modelCNN.h5")
    model = image_classifier_from_keras(path)
    assert model.task == "binary" and model.backbone.flat_features == 7168  # 64 x 7 x 16, permuted from (7, 16, 64)
    x = torch.rand(3, 3, 90, 160)
    with torch.no_grad():
        ours, reference = model.probabilities(model(x)), keras_sequential(path)(x)
    assert 0.05 < reference.min() and reference.max() < 0.95  # not saturated: the comparison means something
    assert_parity(ours.numpy(), reference.numpy())


def test_dense_regressor_keeps_activations_after_dropout(models_dir, tmp_path):
    # The course's sqrt model saved as Dense(linear) -> Dropout -> Activation(relu): keras applies the relus.
    (w0, b0), (w1, b1), (w2, b2) = [layer.weights for layer in read_keras_model(models_dir / "densemodel.h5")
                                    .weighted_layers]
    layers = [("Flatten", {"name": "flatten", "batch_input_shape": [None, 1]}, [])]
    for i, (kernel, bias) in enumerate([(w0, b0), (w1, b1)]):
        layers += [("Dense", {"name": f"dense{i}", "units": len(bias)}, [kernel, bias]),
                   ("Dropout", {"name": f"dropout{i}", "rate": 0.2}, []),
                   ("Activation", {"name": f"relu{i}", "activation": "relu"}, [])]
    path = write_keras_h5(tmp_path / "dropout_relu.h5", layers + [("Dense", {"name": "out", "units": 1}, [w2, b2])])
    x = np.linspace(-20, 100, 25, dtype=np.float32)[:, None]
    expected = np.maximum(np.maximum(x @ w0 + b0, 0) @ w1 + b1, 0) @ w2 + b2
    with torch.no_grad():
        assert_parity(dense_regressor_from_keras(path)(torch.from_numpy(x)).numpy(), expected)


def test_dense_regressor_takes_rows_flattened_as_keras_flattens(tmp_path):
    rng = np.random.default_rng(4)
    (w0, b0), (w1, b1) = (rng.normal(size=(10, 4)), rng.normal(size=4)), (rng.normal(size=(4, 1)), rng.normal(size=1))
    path = write_keras_h5(tmp_path / "flat.h5", [
        ("Flatten", {"name": "flatten", "batch_input_shape": [None, 5, 2]}, []),
        ("Dense", {"name": "hidden", "units": 4, "activation": "relu"}, [w0, b0]),
        ("Dense", {"name": "out", "units": 1}, [w1, b1])])
    x = rng.normal(size=(6, 5, 2)).astype(np.float32)
    rows = x.reshape(6, 10)  # keras' Flatten: row-major over (5, 2)
    expected = np.maximum(rows @ w0 + b0, 0) @ w1 + b1
    with torch.no_grad():
        assert_parity(dense_regressor_from_keras(path)(torch.from_numpy(rows)).numpy(), expected)
        # The generic import still takes channels-first input, as for every file.
        assert_parity(keras_sequential(path)(torch.from_numpy(x).transpose(1, 2)).numpy(), expected)
