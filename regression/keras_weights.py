"""Load the course's saved keras dense network (densemodel.h5) into this project's DenseRegressor."""
from __future__ import annotations

from pathlib import Path

from common.keras_import import KerasImportError, load_keras_weights, read_keras_model
from regression.model import ACTIVATIONS, DenseRegressor


def dense_regressor_from_keras(path: str | Path) -> DenseRegressor:
    """Return a DenseRegressor (eval mode) of a keras Dense-only file; it takes rows flattened as keras flattens."""
    keras = read_keras_model(path)
    dense = keras.weighted_layers
    if not dense or any(layer.kind != "Dense" for layer in dense):
        raise KerasImportError(f"keras file {keras.path}: not a dense network ({', '.join(l.kind for l in dense)}); "
                               "DenseRegressor holds Dense layers only")
    hidden_activations = {layer.activation for layer in dense[:-1]} or {"relu"}
    activations = hidden_activations | {dense[-1].activation}
    if len(hidden_activations) > 1 or not activations <= set(ACTIVATIONS):
        raise KerasImportError(f"keras file {keras.path}: activations {[l.activation for l in dense]} do not fit "
                               f"DenseRegressor (one hidden activation, each one of {', '.join(ACTIVATIONS)})")
    model = DenseRegressor(n_inputs=dense[0].input_shape[0], n_outputs=dense[-1].config["units"],
                           hidden=[layer.config["units"] for layer in dense[:-1]],
                           activation=hidden_activations.pop(), output_activation=dense[-1].activation)
    # DenseRegressor takes flat rows, in the order keras flattens its input: the first Dense's rows stay as
    # they are, not permuted for a channels-first PyTorch Flatten.
    dense[0].flattened_from = None
    load_keras_weights(model, keras)
    return model.eval()
