"""The command line: fit a config, then predict on any FASTA into predictions.csv (name, prob_<class>..., label)."""
from __future__ import annotations

import csv
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


def run_cli(*args, cwd):
    env = {**os.environ, "PYTHONUNBUFFERED": "1"}
    return subprocess.run([sys.executable, "-m", "motifs", *args], cwd=cwd, capture_output=True, text=True,
                          timeout=300, env=env)


def test_fit_then_predict_writes_predictions_csv(tmp_path):
    config = str(ROOT / "configs/motifs/course_synthetic.yaml")
    common = ["--trainer.enable_progress_bar", "false", "--trainer.default_root_dir", str(tmp_path),
              "--data.index_dir", str(tmp_path / "index")]
    fit = run_cli("fit", "--config", config, "--trainer.max_epochs", "1", "--data.synthetic_per_class", "200", *common,
                  cwd=tmp_path)
    assert fit.returncode == 0, fit.stderr[-3000:]
    run = tmp_path / "motifs_course_synthetic" / "version_0"
    assert "data_source=synthetic" in fit.stdout and "Total params: 308,087" in fit.stdout
    for name in ("training_curves.png", "metrics.csv", "checkpoints/last.ckpt"):
        assert (run / name).is_file(), name

    query = tmp_path / "query.fa"
    query.write_text(">chr1:100-300\n" + "ACGT" * 50 + "\n>my_window\n" + "acgtN" * 40 + "\n")
    ckpt = next((run / "checkpoints").glob("best-*.ckpt"))
    predict = run_cli("predict", "--config", config, "--ckpt_path", str(ckpt), "--data.predict_fasta", str(query),
                      *common, cwd=tmp_path)
    assert predict.returncode == 0, predict.stderr[-3000:]
    assert f"predict_source={query}" in predict.stdout  # the run log names the file predicted on
    with open(tmp_path / "motifs_course_synthetic" / "version_1" / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["name", "prob_SOX17", "prob_PRDM1", "prob_random", "label"]
    assert [r["name"] for r in rows] == ["chr1:100-300", "my_window"]
    for row in rows:
        probs = [float(row[f"prob_{c}"]) for c in ("SOX17", "PRDM1", "random")]
        assert abs(sum(probs) - 1) < 1e-4 and row["label"] == ["SOX17", "PRDM1", "random"][probs.index(max(probs))]

    short = tmp_path / "short.fa"  # a bad file ends the command with one clear line
    short.write_text(">short\nACGTACGTAC\n")
    bad = run_cli("predict", "--config", config, "--ckpt_path", str(ckpt), "--data.predict_fasta", str(short), *common,
                  cwd=tmp_path)
    assert bad.returncode == 1
    assert f"error: {short}: record 'short' is 10 bp long" in bad.stderr and "Traceback" not in bad.stderr



@pytest.mark.parametrize("config", ["course_synthetic", "multikernel_synthetic"])
def test_the_shipped_synthetic_configs_learn(tmp_path, config):
    """As a user runs them (every setting as shipped): validation AUROC well above chance (0.83-0.92 measured)."""
    result = run_cli("fit", "--config", str(ROOT / f"configs/motifs/{config}.yaml"), "--trainer.enable_progress_bar",
                     "false", "--trainer.default_root_dir", str(tmp_path), "--data.index_dir", str(tmp_path / "index"),
                     cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with open(next(tmp_path.glob("*/version_0/metrics.csv"))) as handle:
        auroc = [float(row["val_auroc"]) for row in csv.DictReader(handle) if row.get("val_auroc")]
    assert auroc[-1] > 0.78, auroc


def test_evaluating_needs_a_checkpoint_that_exists(tmp_path):
    """Without one, Lightning would predict with the untrained model and write its guesses as results."""
    config = str(ROOT / "configs/motifs/course_synthetic.yaml")
    untrained = run_cli("predict", "--config", config, "--trainer.default_root_dir", str(tmp_path), cwd=tmp_path)
    assert untrained.returncode == 1 and "Traceback" not in untrained.stderr
    assert untrained.stderr.strip().splitlines()[-1] == (
        "error: predict needs the trained model: give --ckpt_path <run folder>/checkpoints/<name>.ckpt")
    missing = run_cli("test", "--config", config, "--ckpt_path", str(tmp_path / "best.ckpt"), cwd=tmp_path)
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert missing.stderr.strip().splitlines()[-1] == f"error: checkpoint {tmp_path / 'best.ckpt'} does not exist"
    assert not any(tmp_path.iterdir())  # nothing ran: no run folder
    (tmp_path / "checkpoints").mkdir()
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    folder = run_cli("predict", "--config", config, "--ckpt_path", str(tmp_path / "checkpoints"), cwd=tmp_path)
    assert folder.stderr.strip().splitlines()[-1] == (
        f"error: checkpoint {tmp_path / 'checkpoints'} is a folder: give a .ckpt file inside it")
    text = run_cli("predict", "--config", config, "--ckpt_path", str(tmp_path / "notes.txt"), cwd=tmp_path)
    last = text.stderr.strip().splitlines()[-1]
    assert last.startswith(f"error: checkpoint {tmp_path / 'notes.txt'} could not be read: it is not a PyTorch "
                           "checkpoint (.ckpt), or it is damaged (") and "weights_only" not in text.stderr, text.stderr


def test_help_names_the_command_and_options_are_spelled_out(tmp_path):
    assert "usage: python -m motifs" in run_cli("--help", cwd=tmp_path).stdout
    result = run_cli("fit", "--config", str(ROOT / "configs/motifs/course_synthetic.yaml"), "--trainer.max_epoch", "1",
                     cwd=tmp_path)  # argparse would take the prefix of --trainer.max_epochs
    assert result.returncode == 2 and "unrecognized arguments: --trainer.max_epoch" in result.stderr
