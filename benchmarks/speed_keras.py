"""The course's keras models timed in keras-TF, as a worker for benchmarks/speed.py (never a project dependency).

Runs under the separate benchmark environment (/work/tfbench, see benchmarks/README.md), not the
project's. Reads one JSON request per line on stdin ({"model", "batch", "warmup", "steps",
"infer_steps", "infer_batch", "n_classes"}) and answers one JSON line: training and inference samples/s over `steps` batches
after `warmup` batches, timed between batch-end callbacks exactly as the PyTorch side is.
Inputs are random arrays of the course's shapes: speed does not depend on the pixel values.
"""
from __future__ import annotations

import json
import os
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
os.environ.setdefault("KERAS_BACKEND", "tensorflow")

import keras  # noqa: E402
import numpy as np  # noqa: E402
from keras import layers  # noqa: E402


def dense_regression(n_classes: int) -> keras.Model:
    """Course section 1: 1 -> 100 relu -> 120 relu -> 1 linear, MSE, Adam."""
    model = keras.Sequential([keras.Input((1,)), layers.Dense(100, activation="relu"),
                              layers.Dense(120, activation="relu"), layers.Dense(1)])
    model.compile(loss="mse", optimizer="adam", metrics=["mse"])
    return model


def dense_image(n_classes: int) -> keras.Model:
    """The course's dense Rick classifier: Flatten(90x160x3) -> 100 relu -> 70 relu -> 1 sigmoid."""
    model = keras.Sequential([keras.Input((90, 160, 3)), layers.Flatten(), layers.Dense(100, activation="relu"),
                              layers.Dense(70, activation="relu"), layers.Dense(1, activation="sigmoid")])
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["binary_accuracy"])
    return model


def image_cnn(n_classes: int) -> keras.Model:
    """The course's image CNN: 3 x (Conv 5x5 relu, MaxPool 2), Flatten, Dense 100, Dropout 0.3, Dense 1 sigmoid."""
    stack = [keras.Input((90, 160, 3))]
    for filters in (20, 20, 64):
        stack += [layers.Conv2D(filters, 5), layers.Activation("relu"), layers.MaxPooling2D(2)]
    stack += [layers.Flatten(), layers.Dense(100), layers.Dropout(0.3), layers.Dense(1, activation="sigmoid")]
    model = keras.Sequential(stack)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["binary_accuracy"])
    return model


def autoencoder(n_classes: int) -> keras.Model:
    """The course's autoencoder: Conv 20, 20, 64 (5x5 relu), ConvTranspose 64, 20, 20, Conv 3 'same' sigmoid."""
    stack = [keras.Input((90, 160, 3))]
    stack += [layer for f in (20, 20, 64) for layer in (layers.Conv2D(f, 5), layers.Activation("relu"))]
    stack += [layer for f in (64, 20, 20) for layer in (layers.Conv2DTranspose(f, 5), layers.Activation("relu"))]
    stack += [layers.Conv2D(3, 5, padding="same"), layers.Activation("sigmoid")]
    model = keras.Sequential(stack)
    model.compile(loss="binary_crossentropy", optimizer="adam", metrics=["mse"])
    return model


def motif_cnn(n_classes: int) -> keras.Model:
    """The course's motif CNN: Conv1D 20@5 relu, MaxPool 2, Conv1D 64@5 relu, MaxPool 2, Dense 100, Dropout, softmax."""
    model = keras.Sequential([keras.Input((200, 4)), layers.Conv1D(20, 5, activation="relu"), layers.MaxPooling1D(2),
                              layers.Conv1D(64, 5, activation="relu"), layers.MaxPooling1D(2), layers.Flatten(),
                              layers.Dense(100), layers.Dropout(0.3), layers.Dense(n_classes, activation="softmax")])
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


def multikernel_cnn(n_classes: int) -> keras.Model:
    """Functional API: Conv1D 16@5, 16@9, 16@15 ('same') concatenated, relu, MaxPool 2, then the course stack."""
    inputs = keras.Input((200, 4))
    x = layers.Concatenate()([layers.Conv1D(16, k, padding="same")(inputs) for k in (5, 9, 15)])
    x = layers.MaxPooling1D(2)(layers.Activation("relu")(x))
    x = layers.MaxPooling1D(2)(layers.Conv1D(64, 5, activation="relu")(x))
    x = layers.Dropout(0.3)(layers.Dense(100, activation="relu")(layers.Flatten()(x)))
    model = keras.Model(inputs, layers.Dense(n_classes, activation="softmax")(x))
    model.compile(loss="sparse_categorical_crossentropy", optimizer="adam", metrics=["accuracy"])
    return model


MODELS = {f.__name__: f for f in (dense_regression, dense_image, image_cnn, autoencoder, motif_cnn, multikernel_cnn)}


def random_batch(name: str, n: int, n_classes: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Return (x, y) of the course shapes: channels-last images, (200, 4) one-hot DNA, or x for sqrt."""
    if name == "dense_regression":
        x = rng.uniform(0, 100, (n, 1)).astype("float32")
        return x, np.sqrt(x)
    if name in ("dense_image", "image_cnn", "autoencoder"):
        x = rng.random((n, 90, 160, 3), dtype=np.float32)
        return x, (x if name == "autoencoder" else rng.integers(0, 2, (n, 1)).astype("float32"))
    x = np.eye(4, dtype="float32")[rng.integers(0, 4, (n, 200))]
    return x, rng.integers(0, n_classes, n)


class BatchClock(keras.callbacks.Callback):
    """Record the time at the end of every batch (training or prediction)."""

    def __init__(self) -> None:
        super().__init__()
        self.times: list[float] = []

    def on_train_batch_end(self, batch, logs=None):
        """Record the time a training batch ended."""
        self.times.append(time.perf_counter())

    def on_predict_batch_end(self, batch, logs=None):
        """Record the time a prediction batch ended."""
        self.times.append(time.perf_counter())


def samples_per_second(times: list[float], warmup: int, batch: int) -> float:
    """Return samples/s over the batches after the warm-up (timed from the end of the last warm-up batch)."""
    return batch * (len(times) - warmup) / (times[-1] - times[warmup - 1])


def measure(request: dict, built: dict) -> dict:
    """Return train/infer samples/s for one request; the model is built once and reused across repeats."""
    name, batch, warmup, steps = request["model"], request["batch"], request["warmup"], request["steps"]
    if name not in built:
        built[name] = MODELS[name](request.get("n_classes", 2))
    model = built[name]
    x, y = random_batch(name, batch * (warmup + steps), request.get("n_classes", 2), np.random.default_rng(0))
    clock = BatchClock()
    model.fit(x, y, batch_size=batch, epochs=1, shuffle=False, verbose=0, callbacks=[clock])
    train = samples_per_second(clock.times, warmup, batch)
    infer_steps, infer_batch = request.get("infer_steps", steps), request.get("infer_batch", batch)
    x, _ = random_batch(name, infer_batch * (warmup + infer_steps), request.get("n_classes", 2),
                        np.random.default_rng(1))
    clock = BatchClock()
    model.predict(x, batch_size=infer_batch, verbose=0, callbacks=[clock])
    return {"train": train, "infer": samples_per_second(clock.times, warmup, infer_batch)}


def main() -> None:
    """Answer requests until stdin closes; the first line out says which versions run."""
    import tensorflow as tf

    print(json.dumps({"keras": keras.__version__, "tensorflow": tf.__version__}), flush=True)
    built: dict = {}
    for line in sys.stdin:
        print(json.dumps(measure(json.loads(line), built)), flush=True)


if __name__ == "__main__":
    main()
