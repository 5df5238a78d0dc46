"""Train-and-evaluate steps shared by the tour, the benchmark and the tests: fit + test, ISM against implants."""
from __future__ import annotations

from pathlib import Path
from typing import Callable

import numpy as np
from torch import nn

from common.classifier import Classifier, load_classifier
from common.seeding import seed_everything
from common.trainer import build_trainer
from motifs.data import MotifData
from motifs.explain import implant_auroc, position_importance, substitution_ism, zero_ism
from motifs.models import CourseCNN


def train(data: MotifData, make_backbone: Callable[[], nn.Module], run_dir: Path, name: str, epochs: int,
          optimizer: str = "adam", lr: float = 3e-3, seed: int = 0) -> tuple[Classifier, Path]:
    """Train a Classifier from scratch on `data`, test its best checkpoint; return it (with test metrics) and its run.

    The backbone is built by `make_backbone` after seeding, so the same seed gives the same start.
    """
    seed_everything(seed)
    model = Classifier(make_backbone(), data.class_names, task=data.task, optimizer=optimizer, lr=lr)
    trainer = build_trainer(max_epochs=epochs, default_root_dir=str(run_dir), run_name=name,
                            enable_progress_bar=False, log_every_n_steps=20)
    trainer.fit(model, data)
    best = load_classifier(trainer.checkpoint_callback.best_model_path)
    trainer.test(best, data, verbose=False)
    return best.eval(), Path(trainer.log_dir)


def train_on_synthetic(run_dir: Path, name: str, epochs: int = 8) -> tuple[Classifier, MotifData, Path]:
    """Train the course CNN (ReLU dense) on built-in synthetic SOX17 / PRDM1 / random windows; return it, data, run.

    100 bp windows (the course used 200), 1,500 a class with 3 implants each, a random split:
    under a minute on two cores (the tour and the explanation tests both use it).
    """
    data = MotifData(synthetic_per_class=1500, synthetic_sites=3, length=100, split="random")
    model, folder = train(data, lambda: CourseCNN(length=100, dense_activation="relu"), run_dir, name, epochs)
    return model, data, folder


def ism_against_implants(model: Classifier, data: MotifData, n: int = 60) -> dict[str, object]:
    """Return ISM of n random implanted test windows (true class as target) and its AUROC against the implants."""
    test = data.splits["test"]
    implanted = np.flatnonzero(test.implant_mask.any(1))
    rows = np.sort(np.random.default_rng(0).choice(implanted, min(n, len(implanted)), replace=False))
    x, y = test.subset(rows).tensors()
    substitutions = substitution_ism(model, x, y)
    importance = position_importance(substitutions)
    return {"x": x, "y": y, "mask": test.implant_mask[rows], "importance": importance,
            "substitution_auroc": implant_auroc(importance, test.implant_mask[rows]),
            "zero_auroc": implant_auroc(zero_ism(model, x, y), test.implant_mask[rows])}
