"""`python -m rickmorty fit` then `predict` on a folder: predictions.csv (the documented contract) and the grid."""
from __future__ import annotations

import csv
import json
import warnings
from pathlib import Path

import lightning as L
import pytest
import torch

from rickmorty.__main__ import main

CONFIGS = Path(__file__).resolve().parents[2] / "configs" / "rickmorty"


@pytest.mark.parametrize("config", ["dense", "cnn_binary", "cnn_multilabel", "cnn_multiclass", "transfer",
                                    "cnn_synthetic", "improved_binary", "improved_multiclass"])
def test_every_config_parses(config, capsys):
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(CONFIGS / f"{config}.yaml"), "--print_config"])
    assert stop.value.code == 0
    assert "class_path: common.classifier.Classifier" in capsys.readouterr().out



def test_a_misspelled_setting_is_one_error_line_with_the_setting_meant(capsys):
    """No screenful of usage before the error: the message, the closest setting and how to list them all."""
    with pytest.raises(SystemExit) as stop:
        main(["fit", "--config", str(CONFIGS / "cnn_synthetic.yaml"), "--trainer.max_epoch", "3"])
    assert stop.value.code == 2
    lines = capsys.readouterr().err.strip().splitlines()
    assert lines == ["tip: For details of accepted options run: python -m rickmorty fit --help",
                     "error: unrecognized arguments: --trainer.max_epoch 3 (did you mean --trainer.max_epochs?)"]
    with pytest.raises(SystemExit):
        main(["fit", "--config", str(CONFIGS / "cnn_synthetic.yaml"), "--trainer.max-epochs", "3"])
    assert "(did you mean --trainer.max_epochs?)" in capsys.readouterr().err

def test_fit_then_predict_writes_the_predictions_contract(tmp_path, frame_tree):
    common = ["--config", str(CONFIGS / "cnn_synthetic.yaml"), "--trainer.default_root_dir", str(tmp_path),
              "--trainer.enable_progress_bar", "false"]
    main(["fit", *common, "--trainer.max_epochs", "1", "--data.synthetic_count", "120", "--data.task", "multilabel"])
    run = tmp_path / "rickmorty_cnn_synthetic" / "version_0"
    for name in ("training_curves.png", "gallery_rick.png", "gallery_morty.png", "confusion_rick.png",
                 "grad_cam_morty.png"):
        assert (run / name).is_file(), name
    best = next((run / "checkpoints").glob("best*.ckpt"))
    with warnings.catch_warnings(record=True) as caught:
        main(["predict", *common, "--data.task", "multilabel", "--ckpt_path", str(best),
              "--data.predict_dir", str(frame_tree / "rick")])
    assert not [w for w in caught if "dirpath has changed" in str(w.message)]  # predict writes no checkpoints
    out = tmp_path / "rickmorty_cnn_synthetic" / "version_1"
    assert json.loads((out / "run_info_predict.json").read_text())["predict_source"] == str(frame_tree / "rick")
    with open(out / "predictions.csv") as handle:
        rows = list(csv.DictReader(handle))
    assert list(rows[0]) == ["file", "prob_rick", "prob_morty", "label"]
    assert [r["file"] for r in rows] == sorted(p.name for p in (frame_tree / "rick").iterdir())
    assert all(0 <= float(r["prob_rick"]) <= 1 and r["label"] in ("rick", "morty", "rick+morty", "none") for r in rows)
    assert (out / "predictions.png").is_file()


def test_a_transfer_checkpoint_predicts_after_its_imagenet_file_is_gone(tmp_path, frame_tree, monkeypatch):
    """The shipped transfer config names resnet18.pt; the checkpoint holds the weights, so predict must not need it."""
    from torchvision.models import resnet18

    monkeypatch.chdir(tmp_path)
    torch.save(resnet18(weights=None).state_dict(), tmp_path / "resnet18.pt")
    common = ["--config", str(CONFIGS / "transfer.yaml"), "--trainer.default_root_dir", str(tmp_path),
              "--trainer.enable_progress_bar", "false", "--data.init_args.data_dir", "null",
              "--data.init_args.synthetic_count", "48", "--data.init_args.augment", "false"]
    main(["fit", *common, "--trainer.max_epochs", "1", "--trainer.limit_train_batches", "1",
          "--trainer.limit_val_batches", "1"])
    (tmp_path / "resnet18.pt").unlink()
    last = tmp_path / "rickmorty_transfer" / "version_0" / "checkpoints" / "last.ckpt"
    main(["predict", *common, "--ckpt_path", str(last), "--data.init_args.predict_dir", str(frame_tree / "rick")])
    with open(tmp_path / "rickmorty_transfer" / "version_1" / "predictions.csv") as handle:
        assert len(list(csv.DictReader(handle))) == len(list((frame_tree / "rick").iterdir()))


class FrameMeans(L.LightningModule):
    """A model without labels (like the autoencoder): the CLI must not force class names on it."""

    def __init__(self) -> None:
        super().__init__()
        self.scale = torch.nn.Parameter(torch.ones(1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scale * x.mean()

    def training_step(self, batch, batch_idx):
        return (self(batch[0]) - 0.5).pow(2)

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1)


def test_the_entry_point_also_runs_models_without_labels(tmp_path):
    cli = main(["fit", "--data", "rickmorty.data.FrameData", "--data.synthetic_count", "40", "--model",
                "tests.rickmorty.test_cli.FrameMeans", "--trainer.max_epochs", "1", "--trainer.limit_val_batches", "0",
                "--trainer.default_root_dir", str(tmp_path), "--trainer.enable_progress_bar", "false",
                "--trainer.enable_checkpointing", "false"])
    assert list(tmp_path.rglob("run_info_fit.json"))
    assert isinstance(cli.model, FrameMeans) and cli.model.scale.item() != 1  # it was built and trained
