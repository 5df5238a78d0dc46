"""Built-in synthetic data: genome-like composition, implants of the JASPAR matrices at the recorded positions."""
from __future__ import annotations

import numpy as np
import torch

from motifs.encode import one_hot
from motifs.pwm import known_matrix, scan, similarity
from motifs.synthetic import synthetic_windows


def test_composition_labels_and_recorded_implants():
    data = synthetic_windows(n_per_class=200, length=200, sites_per_window=1, seed=0)
    assert data.class_names == ["SOX17", "PRDM1", "random"]
    assert data.codes.shape == (600, 200) and np.bincount(data.labels).tolist() == [200, 200, 200]
    background = data.codes[data.labels == 2]
    assert abs(np.isin(background, [1, 2]).mean() - 0.41) < 0.01  # human-like 41% GC
    widths = data.implant_mask.sum(1)
    assert (widths[data.labels == 0] == 9).all() and (widths[data.labels == 1] == 15).all()
    assert (widths[data.labels == 2] == 0).all()
    # The recorded place holds a strong match: the best PRDM1 score inside the mask beats the best outside.
    x = one_hot(data.codes[data.labels == 1])
    scores = scan(x, known_matrix("PRDM1"))
    starts = torch.as_tensor(data.implant_mask[data.labels == 1].argmax(1))
    inside = scores[torch.arange(len(x)), starts]
    assert (inside >= scores.amax(1) - 1e-5).float().mean() > 0.95


def test_multilabel_windows_can_hold_both_factors():
    data = synthetic_windows(n_per_class=300, task="multilabel", seed=1)
    assert data.labels.shape == (600, 2) and data.class_names == ["SOX17", "PRDM1"]
    both = (data.labels.sum(1) == 2).mean()
    assert 0.15 < both < 0.35


def test_matrix_similarity_is_one_for_itself_and_its_reverse_complement():
    sox = known_matrix("SOX17")
    assert similarity(sox, sox) > 0.999
    assert similarity(sox, sox[::-1, ::-1]) > 0.999
    assert similarity(sox, known_matrix("PRDM1")) < 0.8
