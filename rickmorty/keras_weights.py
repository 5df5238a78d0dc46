"""Load the course's saved keras image models (modelAE.h5, modelAEND.h5) into this project's modules."""
from __future__ import annotations

from pathlib import Path

from common.keras_import import KerasImportError, KerasModel, load_keras_weights, read_keras_model
from rickmorty.autoencoder import ConvAutoencoder


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
