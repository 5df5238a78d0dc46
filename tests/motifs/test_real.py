"""Real SOX17 ChIP-seq peaks (../shared/data) against their dinucleotide shuffles, split by chromosome."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from motifs.data import MotifData
from motifs.explain import top_position_enrichment, zero_ism
from motifs.models import CourseCNN
from motifs.pwm import hit_mask, known_matrix
from motifs.experiment import train
from motifs.io import read_fasta

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def sox17_model(course_data, tmp_path_factory):
    """The course CNN trained 2 epochs on all SOX17 peaks vs shuffles (validation chr7, test chr10)."""
    data = MotifData(sources={"SOX17": str(course_data / "ChIP" / "SOX17.fa")}, task="binary", negatives=["shuffle"],
                     negative_class="shuffled", val_chromosomes=["chr7"], test_chromosomes=["chr10"])
    model, _ = train(data, lambda: CourseCNN(dense_activation="relu"), tmp_path_factory.mktemp("sox17"), "sox17",
                     epochs=2, lr=2e-3)
    return model, data


def test_the_real_data_config_finds_the_peaks_from_any_folder(course_data, tmp_path, monkeypatch):
    config = yaml.safe_load((ROOT / "configs" / "motifs" / "sox17_vs_shuffled.yaml").read_text())
    monkeypatch.setenv("DEEPBIO_DATA", str(course_data))
    monkeypatch.chdir(tmp_path)  # where ../shared/data is not
    names, _ = read_fasta(config["data"]["sources"]["SOX17"], index_dir=tmp_path / "index")
    assert len(names) == 11_843
    data = MotifData(**config["data"])
    assert str(course_data / "ChIP" / "SOX17.fa") in data.data_source  # the run log names the file read


def test_the_real_peaks_are_all_read(sox17_model):
    _, data = sox17_model
    everything = data.splits["all"]
    assert (everything.labels == 1).sum() == 11_843 and (everything.labels == 0).sum() == 11_843
    assert set(data.splits["test"].chromosomes) == {"chr10"} and set(data.splits["val"].chromosomes) == {"chr7"}
    assert not {"chr8", "chr9"} & set(everything.chromosomes)  # held back by the data's curators


def test_course_cnn_separates_held_out_peaks_from_shuffles(sox17_model):
    model, _ = sox17_model
    assert model.last_metrics["test_auroc"] > 0.75  # far above chance, on chromosome 10 only


def test_ism_top_positions_are_enriched_for_sox17_sites(sox17_model):
    model, data = sox17_model
    test = data.splits["test"]
    x, _ = test.subset(np.flatnonzero(test.labels == 1)[:100]).tensors()
    importance = zero_ism(model, x, 1)  # drop of P(SOX17) when a base is zeroed
    enrichment = top_position_enrichment(importance, hit_mask(x, known_matrix("SOX17")), top_k=5)
    assert enrichment["enrichment"] > 4  # untrained CourseCNNs: 0.4-2.1 over seeds 0-5; trained: ~7.4
