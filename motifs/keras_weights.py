"""Load the course's saved keras motif CNN (modelCNNTF.h5, modelCNNTF_rerun.h5) into a Classifier on CourseCNN."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

from common.classifier import Classifier
from common.keras_import import KerasImportError, load_keras_weights, read_keras_model
from motifs.models import CourseCNN

COURSE_CLASSES = ("SOX17", "PRDM1", "random")  # the course's label order: [1,0,0], [0,1,0], [0,0,1]


def motif_classifier_from_keras(path: str | Path, class_names: Sequence[str] = COURSE_CLASSES) -> Classifier:
    """Return a multiclass Classifier (eval mode) on CourseCNN holding a course motif-CNN file's weights.

    The file must be the course's layout: Conv1D relu, MaxPool 2, Conv1D relu, MaxPool 2, Flatten,
    Dense (linear or relu), Dropout, Dense softmax, on (L, 4) one-hot DNA (A, C, G, T).
    """
    keras = read_keras_model(path)
    layers = keras.weighted_layers
    kinds = [layer.kind for layer in layers]
    pools = [layer.config.get("pool_size") for layer in keras.layers if layer.kind == "MaxPooling1D"]
    dropouts = [layer.config.get("rate", 0.0) for layer in keras.layers if layer.kind == "Dropout"]
    if (kinds != ["Conv1D", "Conv1D", "Dense", "Dense"] or keras.input_shape[-1] != 4 or pools != [[2], [2]]
            or layers[0].config["kernel_size"] != layers[1].config["kernel_size"] or len(dropouts) > 1
            or [l.activation for l in layers[:2]] != ["relu", "relu"] or layers[2].activation not in ("linear", "relu")
            or layers[3].activation != "softmax"):
        raise KerasImportError(f"keras file {keras.path}: not the course's motif CNN layout; found\n{keras.describe()}")
    if len(class_names) != layers[3].config["units"]:
        raise KerasImportError(f"keras file {keras.path}: {layers[3].config['units']} outputs but class names "
                               f"{list(class_names)}")
    filters = (layers[0].config["filters"], layers[1].config["filters"])
    backbone = CourseCNN(length=keras.input_shape[0], filters=filters,
                         kernel_size=layers[0].config["kernel_size"][0], dense=layers[2].config["units"],
                         dropout=dropouts[0] if dropouts else 0.0, dense_activation=layers[2].activation)
    model = Classifier(backbone, list(class_names), task="multiclass")
    load_keras_weights(model, keras)
    return model.eval()
