"""Keras HDF5 import: layout conversions on hand-made files, and clear errors for bad input."""
from __future__ import annotations

import json
import shutil

import h5py
import numpy as np
import pytest
import torch
from torch import nn

from common.keras_import import KerasImportError, keras_sequential, load_keras_weights, read_keras_model


def write_keras_h5(path, layers: list[tuple[str, dict, list[np.ndarray]]], class_name: str = "Sequential"):
    """Write a minimal keras 2.x HDF5 model: (class_name, config, [kernel, bias]) per layer."""
    config = {"class_name": class_name,
              "config": {"name": "sequential", "layers": [{"class_name": k, "config": c} for k, c, _ in layers]}}
    with h5py.File(path, "w") as handle:
        handle.attrs["model_config"] = json.dumps(config)
        handle.attrs["keras_version"] = "2.7.0"
        weights = handle.create_group("model_weights")
        for _, layer_config, arrays in layers:
            group = weights.create_group(layer_config["name"])
            names = [f"{layer_config['name']}/{n}:0" for n in ("kernel", "bias")][:len(arrays)]
            group.attrs["weight_names"] = [n.encode() for n in names]
            for name, array in zip(names, arrays):
                group.create_dataset(name, data=array.astype(np.float32))
    return path


def conv_flatten_dense(rng) -> list:
    """Conv2D(3, k=2, relu) on (4, 5, 2) -> Flatten (3*4*3 = 36) -> Dense(2): exercises the Flatten order."""
    return [("Conv2D", {"name": "conv", "filters": 3, "kernel_size": [2, 2], "activation": "relu",
                        "batch_input_shape": [None, 4, 5, 2]}, [rng.normal(size=(2, 2, 2, 3)), rng.normal(size=3)]),
            ("Flatten", {"name": "flatten"}, []),
            ("Dense", {"name": "dense", "units": 2, "activation": "linear"},
             [rng.normal(size=(36, 2)), rng.normal(size=2)])]


def keras_reference(x: np.ndarray, layers) -> np.ndarray:
    """Compute conv_flatten_dense the keras way, channels-last, in NumPy."""
    kernel, bias = layers[0][2]
    out = np.zeros((len(x), 3, 4, 3))
    for i in range(3):
        for j in range(4):
            out[:, i, j] = np.einsum("nhwc,hwcf->nf", x[:, i:i + 2, j:j + 2], kernel) + bias
    flat = np.maximum(out, 0).reshape(len(x), -1)  # keras flattens (H, W, C)
    return flat @ layers[2][2][0] + layers[2][2][1]


def test_conv_flatten_dense_matches_keras_semantics(tmp_path):
    rng = np.random.default_rng(0)
    layers = conv_flatten_dense(rng)
    path = write_keras_h5(tmp_path / "tiny.h5", layers)
    x = rng.normal(size=(3, 4, 5, 2))
    model = keras_sequential(path)
    ours = model(torch.tensor(x, dtype=torch.float32).permute(0, 3, 1, 2)).detach().numpy()
    assert np.abs(ours - keras_reference(x, layers)).max() < 1e-5
    # Without the row permutation the Dense would read the features in the wrong order.
    assert read_keras_model(path).layers[2].flattened_from == (3, 4, 3)


def test_kernel_layouts_conv1d_and_transpose(tmp_path):
    rng = np.random.default_rng(1)
    path = write_keras_h5(tmp_path / "t.h5", [
        ("Conv1D", {"name": "c1", "filters": 6, "kernel_size": [3], "batch_input_shape": [None, 10, 4]},
         [rng.normal(size=(3, 4, 6)), rng.normal(size=6)])])
    layer = read_keras_model(path).layers[0]
    weight, _ = layer.torch_weights()
    assert weight.shape == (6, 4, 3) and weight[5, 1, 2] == layer.weights[0][2, 1, 5]  # (k, in, out) -> (out, in, k)
    path = write_keras_h5(tmp_path / "tt.h5", [
        ("Conv2DTranspose", {"name": "ct", "filters": 5, "kernel_size": [3, 2], "batch_input_shape": [None, 6, 6, 2]},
         [rng.normal(size=(3, 2, 5, 2)), rng.normal(size=5)])])
    layer = read_keras_model(path).layers[0]
    assert layer.output_shape == (8, 7, 5)
    weight, _ = layer.torch_weights()
    # keras (kh, kw, out, in) -> ConvTranspose2d (in, out, kh, kw); a non-square kernel shows kh and kw apart
    assert weight.shape == (2, 5, 3, 2) and weight[1, 4, 2, 0] == layer.weights[0][2, 0, 4, 1]


def test_missing_truncated_and_non_hdf5_files_are_refused(tmp_path):
    with pytest.raises(KerasImportError, match="does not exist"):
        read_keras_model(tmp_path / "absent.h5")
    text = tmp_path / "notes.h5"
    text.write_text("not a model")
    with pytest.raises(KerasImportError, match="not a readable HDF5 file"):
        read_keras_model(text)
    whole = write_keras_h5(tmp_path / "whole.h5", conv_flatten_dense(np.random.default_rng(0)))
    truncated = tmp_path / "truncated.h5"
    truncated.write_bytes(whole.read_bytes()[: whole.stat().st_size // 2])
    with pytest.raises(KerasImportError, match="truncated"):
        read_keras_model(truncated)
    with h5py.File(tmp_path / "weights_only.h5", "w") as handle:
        handle.create_group("dense")
    with pytest.raises(KerasImportError, match="no keras model"):
        read_keras_model(tmp_path / "weights_only.h5")


def test_unsupported_architectures_are_refused_by_name(tmp_path):
    lstm = [("LSTM", {"name": "lstm_1", "units": 4, "batch_input_shape": [None, 10, 4]}, [])]
    with pytest.raises(KerasImportError, match="'lstm_1' is a LSTM, which this project cannot represent"):
        read_keras_model(write_keras_h5(tmp_path / "lstm.h5", lstm))
    with pytest.raises(KerasImportError, match="only Sequential"):
        read_keras_model(write_keras_h5(tmp_path / "f.h5", conv_flatten_dense(np.random.default_rng(0)), "Functional"))
    rng = np.random.default_rng(0)
    dilated = [("Conv1D", {"name": "dil", "filters": 2, "kernel_size": [3], "dilation_rate": [2],
                           "batch_input_shape": [None, 10, 4]}, [rng.normal(size=(3, 4, 2)), rng.normal(size=2)])]
    with pytest.raises(KerasImportError, match="'dil'.*dilation"):
        read_keras_model(write_keras_h5(tmp_path / "d.h5", dilated))
    swish = [("Dense", {"name": "d", "units": 2, "activation": "swish", "batch_input_shape": [None, 3]},
              [rng.normal(size=(3, 2)), rng.normal(size=2)])]
    with pytest.raises(KerasImportError, match="activation 'swish'"):
        read_keras_model(write_keras_h5(tmp_path / "s.h5", swish))


def test_mismatched_modules_are_refused_naming_both_layers(tmp_path):
    path = write_keras_h5(tmp_path / "tiny.h5", conv_flatten_dense(np.random.default_rng(0)))
    wrong_width = nn.Sequential(nn.Conv2d(2, 3, 2), nn.Flatten(), nn.Linear(35, 2))
    with pytest.raises(KerasImportError, match=r"'dense' has weights of shape \[\(2, 36\), \(2,\)\].*'2'.*\(2, 35\)"):
        load_keras_weights(wrong_width, path)
    with pytest.raises(KerasImportError, match="has 2 layers with weights .* but Sequential has 1"):
        load_keras_weights(nn.Sequential(nn.Linear(36, 2)), path)
    with pytest.raises(KerasImportError, match="'conv' \\(Conv2D\\) would go into '0', a Conv1d"):
        load_keras_weights(nn.Sequential(nn.Conv1d(2, 3, 2), nn.Linear(36, 2)), path)
    with pytest.raises(KerasImportError, match="padding"):
        load_keras_weights(nn.Sequential(nn.Conv2d(2, 3, 2, padding=1), nn.Linear(36, 2)), path)


def test_course_files_parse_with_their_parameter_counts(course_data):
    models = course_data / "RickandMorty/data/models"
    counts = {"densemodel": 261, "modelCNNTF": 308_087, "modelCNNTF_rerun": 308_087, "modelAE": 189_611,
              "modelAEND": 189_611, "convmodel": 69_405}
    for stem, count in counts.items():
        model = read_keras_model(models / f"{stem}.h5")
        assert model.parameter_count() == count, stem
    cnn = read_keras_model("course:RickandMorty/data/models/modelCNNTF.h5")  # as the README's course: paths
    assert cnn.layers[-4].output_shape == (3008,)  # 47 positions x 64 filters
    assert [l.activation for l in cnn.weighted_layers] == ["relu", "relu", "linear", "softmax"]


def test_copied_course_file_truncated_is_refused(course_data, tmp_path):
    source = course_data / "RickandMorty/data/models/densemodel.h5"
    shutil.copy(source, tmp_path / "copy.h5")
    data = (tmp_path / "copy.h5").read_bytes()
    (tmp_path / "cut.h5").write_bytes(data[: len(data) - 4000])
    with pytest.raises(KerasImportError, match="truncated"):
        read_keras_model(tmp_path / "cut.h5")


def test_activation_layers_fold_across_dropout_flatten_and_pooling(tmp_path):
    rng = np.random.default_rng(2)
    path = write_keras_h5(tmp_path / "folded.h5", [
        ("Conv2D", {"name": "conv", "filters": 3, "kernel_size": [2, 2], "batch_input_shape": [None, 5, 5, 2]},
         [rng.normal(size=(2, 2, 2, 3)), rng.normal(size=3)]),
        ("MaxPooling2D", {"name": "pool", "pool_size": [2, 2]}, []),
        ("Activation", {"name": "act0", "activation": "relu"}, []),
        ("Flatten", {"name": "flatten"}, []),
        ("Dense", {"name": "hidden", "units": 4}, [rng.normal(size=(12, 4)), rng.normal(size=4)]),
        ("Dropout", {"name": "dropout", "rate": 0.5}, []),
        ("Activation", {"name": "act1", "activation": "sigmoid"}, []),
        ("Dense", {"name": "out", "units": 3}, [rng.normal(size=(4, 3)), rng.normal(size=3)]),
        ("Dropout", {"name": "dropout2", "rate": 0.5}, []),
        ("Activation", {"name": "act2", "activation": "softmax"}, [])])
    keras = read_keras_model(path)
    assert [l.activation for l in keras.weighted_layers] == ["relu", "sigmoid", "softmax"]
    # A module built from the folded activations computes what the file's layers compute in keras' order.
    module = nn.Sequential(nn.Conv2d(2, 3, 2), nn.ReLU(), nn.MaxPool2d(2), nn.Flatten(), nn.Linear(12, 4),
                           nn.Sigmoid(), nn.Linear(4, 3), nn.Softmax(dim=1)).eval()
    load_keras_weights(module, keras)
    x = torch.randn(4, 2, 5, 5, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        torch.testing.assert_close(module(x), keras_sequential(path)(x))


@pytest.mark.parametrize("layers, module, why", [
    ([("Dense", {"name": "d", "units": 2, "activation": "relu", "batch_input_shape": [None, 3]}, "dense"),
      ("Activation", {"name": "act", "activation": "sigmoid"}, None)],
     nn.Sequential(nn.Linear(3, 2), nn.ReLU()), "'act' \\(sigmoid\\): it follows 'd', which already applies relu"),
    ([("Activation", {"name": "act", "activation": "tanh", "batch_input_shape": [None, 3]}, None),
      ("Dense", {"name": "d", "units": 2}, "dense")],
     nn.Sequential(nn.Linear(3, 2)), "'act' \\(tanh\\): no layer with weights comes before it"),
    ([("Dense", {"name": "d", "units": 2, "batch_input_shape": [None, 3]}, "dense"),
      ("Activation", {"name": "act", "activation": "relu"}, None),
      ("Activation", {"name": "again", "activation": "sigmoid"}, None)],
     nn.Sequential(nn.Linear(3, 2), nn.ReLU()), "'again' \\(sigmoid\\): it follows another Activation layer, 'act'"),
    ([("Conv1D", {"name": "c", "filters": 2, "kernel_size": [3], "batch_input_shape": [None, 8, 3]}, "conv"),
      ("MaxPooling1D", {"name": "pool", "pool_size": [2]}, None),
      ("Activation", {"name": "act", "activation": "softmax"}, None)],
     nn.Sequential(nn.Conv1d(3, 2, 3)), "'act' \\(softmax\\): it follows 'pool' \\(MaxPooling1D\\)"),
], ids=["after_an_activated_layer", "before_any_weights", "two_in_a_row", "softmax_after_pooling"])
def test_activation_layers_that_cannot_be_folded_are_refused_not_dropped(tmp_path, layers, module, why):
    rng = np.random.default_rng(3)
    arrays = {"dense": [rng.normal(size=(3, 2)), rng.normal(size=2)],
              "conv": [rng.normal(size=(3, 3, 2)), rng.normal(size=2)]}
    path = write_keras_h5(tmp_path / "unfoldable.h5",
                          [(kind, config, arrays.get(weights, [])) for kind, config, weights in layers])
    with pytest.raises(KerasImportError, match=f"unfoldable.h5: Activation layer {why}.*keras_sequential"):
        load_keras_weights(module, path)
    # The remedy the error names: the generic import keeps every layer, so it loads the file.
    assert isinstance(keras_sequential(path), nn.Sequential)
