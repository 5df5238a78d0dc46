"""Load the course's saved keras image models (modelAE.h5, modelAEND.h5, the image CNN) into this project's modules."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from common.classifier import Classifier
from common.keras_import import KerasImportError, KerasModel, load_keras_weights, read_keras_model
from rickmorty.autoencoder import ConvAutoencoder
from rickmorty.models import CourseCNN

# The course's binary labels: sigmoid output = P(Rick) (its first one-hot column was "Rick").
COURSE_BINARY_CLASSES = ("not Rick", "Rick")


def _autoencoder_settings(keras: KerasModel) -> dict:
    """Return ConvAutoencoder arguments for a course-style autoencoder file, or raise KerasImportError."""
    layers = keras.weighted_layers
    n = (len(layers) - 1) // 2
    kinds = [layer.kind for layer in layers]
    expected = ["Conv2D"] * n + ["Conv2DTranspose"] * n + ["Conv2D"]
    activations = [layer.activation for layer in layers]
    kernels = {tuple(layer.config.get("kernel_size", ())) for layer in layers}
    if (n == 0 or kinds != expected or activations != ["relu"] * 2 * n + ["sigmoid"] or len(kernels) != 1
            or len(keras.input_shape) != 3 or keras.input_shape[-1] != 3):
        raise KerasImportError(
            f"keras file {keras.path}: not the course's autoencoder layout (Conv2D relu x n, Conv2DTranspose relu "
            f"x n, Conv2D sigmoid on RGB frames); found {list(zip(kinds, activations))} on {keras.input_shape}")
    (k, k_w), = kernels
    if k != k_w:
        raise KerasImportError(f"keras file {keras.path}: kernels {k}x{k_w} are not square")
    return {"image_size": tuple(keras.input_shape[:2]), "filters": [l.config["filters"] for l in layers[:n]],
            "kernel_size": k}


def autoencoder_from_keras(path: str | Path, **settings) -> ConvAutoencoder:
    """Return a ConvAutoencoder (eval mode) holding a course autoencoder file's weights.

    `settings` are further ConvAutoencoder arguments (e.g. noise="masking" for fine-tuning modelAEND.h5).
    """
    keras = read_keras_model(path)
    model = ConvAutoencoder(**_autoencoder_settings(keras), **settings)
    load_keras_weights(model, keras)
    return model.eval()


def image_classifier_from_keras(path: str | Path, class_names: Sequence[str] = COURSE_BINARY_CLASSES) -> Classifier:
    """Return a Classifier (eval mode) on CourseCNN holding a course image-CNN file's weights.

    The file must be the course's layout: (Conv2D relu, MaxPooling 2x2) x n, Flatten, Dense (linear or
    relu), Dropout, Dense (1 sigmoid: binary; k softmax: multiclass) on (H, W, 3) frames.
    """
    keras = read_keras_model(path)
    layers = keras.weighted_layers
    convs, dense = layers[:-2], layers[-2:]
    pools = [(layer.config["pool_size"], layer.config.get("strides")) for layer in keras.layers
             if layer.kind == "MaxPooling2D"]
    dropouts = [layer.config.get("rate", 0.0) for layer in keras.layers if layer.kind == "Dropout"]
    head = dense[-1].activation if len(dense) == 2 else None
    if (not convs or [l.kind for l in layers] != ["Conv2D"] * len(convs) + ["Dense", "Dense"]
            or any(l.activation != "relu" for l in convs) or dense[0].activation not in ("linear", "relu")
            or head not in ("sigmoid", "softmax") or len({tuple(l.config["kernel_size"]) for l in convs}) != 1
            or len(dropouts) > 1 or keras.input_shape[-1] != 3):
        raise KerasImportError(f"keras file {keras.path}: not the course's image CNN layout; found\n{keras.describe()}")
    if any(p not in ([2, 2], None) or s not in ([2, 2], None) for p, s in pools) or len(pools) != len(convs):
        raise KerasImportError(f"keras file {keras.path}: max-pooling {pools} after each convolution; CourseCNN pools "
                               "2x2 only (for other layouts use common.keras_import.keras_sequential)")
    n_outputs = dense[-1].config["units"]
    task = "binary" if head == "sigmoid" and n_outputs == 1 else "multiclass"
    if len(class_names) != (2 if task == "binary" else n_outputs):
        raise KerasImportError(f"keras file {keras.path}: {n_outputs} outputs ({head}) but class names "
                               f"{list(class_names)}")
    kernel = convs[0].config["kernel_size"][0]
    backbone = CourseCNN(input_shape=(3, *keras.input_shape[:2]), filters=tuple(l.config["filters"] for l in convs),
                         kernel_size=kernel, dense=dense[0].config["units"], dropout=dropouts[0] if dropouts else 0.0,
                         dense_activation=dense[0].activation)
    model = Classifier(backbone, list(class_names), task=task)
    load_keras_weights(model, keras)
    return model.eval()
