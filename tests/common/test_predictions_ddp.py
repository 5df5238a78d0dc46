"""predictions.csv rows sit next to their ids: under 2-process CPU DDP, and in one process with or without indices."""
from __future__ import annotations

import csv
import importlib.util
import os
import subprocess
import sys
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from common.callbacks import PredictionsCSV

# Run as a script: Lightning's DDP launcher starts the second rank by running the same file again.
SCRIPT = '''
import sys

import torch
from torch import nn

from common.callbacks import PredictionsCSV
from common.classifier import Classifier
from common.trainer import build_trainer
from motifs.data import MotifData


class FlatBackbone(nn.Module):
    """One linear layer over the flattened one-hot window."""

    def __init__(self, length: int = 200, width: int = 8):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(4 * length, width), nn.ReLU())
        self.out_features = width

    def forward(self, x):
        return self.net(x)


def make_data(fasta, index_dir):
    return MotifData(predict_fasta=fasta, index_dir=index_dir, batch_size=3)


def make_model(class_names):
    torch.manual_seed(0)
    return Classifier(FlatBackbone(), class_names, task="multiclass")


if __name__ == "__main__":
    fasta, index_dir, run_dir = sys.argv[1:4]
    data = make_data(fasta, index_dir)
    trainer = build_trainer(accelerator="cpu", devices=2, strategy="ddp", default_root_dir=run_dir, logger=False,
                            enable_checkpointing=False, enable_progress_bar=False, callbacks=[PredictionsCSV()])
    trainer.predict(make_model(data.class_names), datamodule=data, return_predictions=False)
'''


def test_two_process_predict_writes_every_row_next_to_its_id(tmp_path):
    rng = np.random.default_rng(3)
    names = [f"window_{i}" for i in range(7)]  # 7 rows on 2 ranks: one row padded in, and batches of 3 leave a partial
    fasta = tmp_path / "query.fa"
    fasta.write_text("".join(f">{name}\n{''.join(rng.choice(list('ACGT'), 200))}\n" for name in names))
    script = tmp_path / "predict_ddp.py"
    script.write_text(SCRIPT)
    spec = importlib.util.spec_from_file_location("predict_ddp", script)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)

    # The single-process reference also writes the FASTA index, so the two ranks only read it.
    data = module.make_data(str(fasta), str(tmp_path / "index"))
    data.setup("predict")
    model = module.make_model(data.class_names).eval()
    with torch.no_grad():
        expected = dict(zip(data.predict_ids, model.predict_step((data.predict_x,), 0).tolist()))
    assert list(expected) == names

    env = {**os.environ, "PYTHONUNBUFFERED": "1", "OMP_NUM_THREADS": "1"}
    result = subprocess.run([sys.executable, str(script), str(fasta), str(tmp_path / "index"), str(tmp_path / "run")],
                            cwd=tmp_path, capture_output=True, text=True, timeout=120, env=env)
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "devices=2" in result.stdout and "strategy=DDPStrategy" in result.stdout  # RunInfo's line: really DDP
    assert result.stdout.count("predictions written to") == 1  # global rank zero alone writes the file

    with open(tmp_path / "run" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert [row["name"] for row in rows] == names  # each row once, in file order
    for row in rows:
        probs = [float(row[f"prob_{name}"]) for name in data.class_names]
        assert probs == pytest.approx(expected[row["name"]], abs=2e-6), row["name"]
        assert row["label"] == data.class_names[int(np.argmax(expected[row["name"]]))]


def test_one_process_rows_follow_their_indices_or_else_the_file_order(tmp_path):
    ids = ["a", "b", "c"]
    trainer = SimpleNamespace(world_size=1, is_global_zero=True, log_dir=str(tmp_path),
                              datamodule=SimpleNamespace(predict_id_column="name", predict_ids=ids))
    model = SimpleNamespace(output_names=["yes"], hard_labels=lambda probs: ["x"] * len(probs))
    predictions = [torch.tensor([[0.3], [0.1]]), torch.tensor([[0.2]])]
    PredictionsCSV().write_on_epoch_end(trainer, model, predictions, [[[2, 0], [1]]])  # a shuffled loader's indices
    assert (tmp_path / "predictions.csv").read_text().splitlines()[1:] == ["a,0.100000,x", "b,0.200000,x",
                                                                           "c,0.300000,x"]
    PredictionsCSV().write_on_epoch_end(trainer, model, predictions, [[]])  # indices not tracked: file order
    assert (tmp_path / "predictions.csv").read_text().splitlines()[1:] == ["a,0.300000,x", "b,0.100000,x",
                                                                           "c,0.200000,x"]


def test_indices_that_do_not_cover_the_predicted_rows_stop_the_writer(tmp_path):
    """Under DDP (or any loader that tracks fewer indices than rows) rows could not be matched to ids: refused."""
    trainer = SimpleNamespace(world_size=1, is_global_zero=True, log_dir=str(tmp_path),
                              datamodule=SimpleNamespace(predict_id_column="name", predict_ids=["a", "b", "c"]))
    model = SimpleNamespace(output_names=["yes"], hard_labels=lambda probs: ["x"] * len(probs))
    predictions = [torch.tensor([[0.3], [0.1]]), torch.tensor([[0.2]])]
    with pytest.raises(RuntimeError, match="2 dataset indices for 3 predicted rows, so rows cannot be matched"):
        PredictionsCSV().write_on_epoch_end(trainer, model, predictions, [[[2, 0]]])
    assert not (tmp_path / "predictions.csv").exists()
