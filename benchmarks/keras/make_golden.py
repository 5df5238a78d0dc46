"""Write keras' own outputs for the course's .h5 models on a few fixed inputs (parity-test fixtures).

Runs in a throw-away environment with TensorFlow, never a deepbio dependency:

    python3 -m venv /work/tfenv && /work/tfenv/bin/pip install tensorflow-cpu tf-keras
    /work/tfenv/bin/python benchmarks/keras/make_golden.py ../shared/data/RickandMorty/data/models tests/fixtures/keras_golden

tf_keras (keras 2.x) loads all six files; keras 3 cannot read the autoencoders (Conv2DTranspose
'groups') nor convmodel.h5 (keras 2.2.4). Inputs are synthetic (real data stays out of the repo):
sequences are random one-hot DNA (A, C, G, T columns, as the course), frames are smooth coloured
shapes quantised to uint8 and divided by 255, as the course's readJPEG gives. Each <model>.npz holds
`inputs` (channels-last, exactly what keras saw), `outputs` (keras' predict) and the versions used.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "3")
os.environ.setdefault("CUDA_VISIBLE_DEVICES", "")

import numpy as np  # noqa: E402
import tensorflow as tf  # noqa: E402
import tf_keras  # noqa: E402


def synthetic_frames(n: int, seed: int = 0) -> np.ndarray:
    """Return n frames (n, 90, 160, 3) uint8: a colour gradient with random discs and bars."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:90, 0:160]
    frames = []
    for _ in range(n):
        image = np.stack([xx / 160, yy / 90, 1 - xx / 160], -1) * rng.uniform(0.3, 1.0, 3)
        for _ in range(6):
            cy, cx, r = rng.uniform(0, 90), rng.uniform(0, 160), rng.uniform(5, 25)
            image[(yy - cy) ** 2 + (xx - cx) ** 2 < r ** 2] = rng.uniform(0, 1, 3)
        y0, x0 = rng.integers(0, 70), rng.integers(0, 130)
        image[y0:y0 + 20, x0:x0 + 30] = rng.uniform(0, 1, 3)
        frames.append(np.clip(image + rng.normal(0, 0.02, image.shape), 0, 1))
    return (np.stack(frames) * 255).round().astype(np.uint8)


def one_hot_sequences(n: int, length: int = 200, seed: int = 0) -> np.ndarray:
    """Return n random one-hot DNA sequences (n, length, 4) uint8, columns A, C, G, T; the last has an all-zero base."""
    rng = np.random.default_rng(seed)
    x = np.eye(4, dtype=np.uint8)[rng.integers(0, 4, (n, length))]
    x[-1, length // 2] = 0  # the course's ISM sets a base to [0, 0, 0, 0]
    return x


def golden_inputs(stem: str) -> np.ndarray:
    """Return the stored (uint8 where possible) inputs for one model file."""
    if stem == "densemodel":
        return np.array([[0.0], [1.0], [4.0], [25.0], [50.0], [100.0], [150.0], [200.0]], dtype=np.float32)
    if stem.startswith("modelCNNTF"):
        return one_hot_sequences(4)
    return synthetic_frames(2)


def main(models: Path, out: Path) -> None:
    """Write each course keras model's golden inputs and outputs into `out`."""
    out.mkdir(parents=True, exist_ok=True)
    for path in sorted(models.glob("*.h5")):
        model = tf_keras.models.load_model(path, compile=False)
        inputs = golden_inputs(path.stem)
        scaled = inputs.astype(np.float32) / (255.0 if inputs.dtype == np.uint8 and inputs.ndim == 4 else 1.0)
        outputs = model.predict(scaled, verbose=0).astype(np.float32)
        np.savez_compressed(out / f"{path.stem}.npz", inputs=inputs, outputs=outputs,
                            tensorflow=tf.__version__, tf_keras=tf_keras.__version__)
        print(f"{path.name}: inputs {inputs.shape} {inputs.dtype} -> outputs {outputs.shape}")


if __name__ == "__main__":
    main(Path(sys.argv[1]), Path(sys.argv[2]))
