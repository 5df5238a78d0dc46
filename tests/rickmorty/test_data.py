"""FrameData: label modes, splits, loaders (cache and stream with augmentation), folder trees, CSV and test folders."""
from __future__ import annotations

import os
import warnings

import numpy as np
import pytest
import torch

from common.errors import ConfigError, DataError
import rickmorty.data
import rickmorty.data as data_module
from rickmorty.augment import augmentation
from rickmorty.data import FrameData, presence_targets, take_groups, target_tensor
from rickmorty.images import FRAME_SIZE, read_frame
from rickmorty.sources import read_label_rows
from tests.conftest import bf16_fits_as_taken_and_in_float32


def test_presence_targets_per_task():
    presence = torch.tensor([[0, 0], [1, 0], [0, 1], [1, 1]])
    assert presence_targets(presence, "binary")[0] == [0, 1, 0, 1]
    assert presence_targets(presence, "multilabel")[0] == [(0, 0), (1, 0), (0, 1), (1, 1)]
    targets, keep = presence_targets(presence, "multiclass")
    assert targets == [2, 0, 1] and keep.tolist() == [0, 1, 2]  # "both" is left out


def test_target_tensor_dtypes():
    assert target_tensor([0, 1], "binary").dtype == torch.float32
    assert target_tensor([(0, 1)], "multilabel").shape == (1, 2)
    assert target_tensor([2, 0], "multiclass").dtype == torch.int64


def test_take_groups_keeps_whole_groups():
    groups = np.array([0, 0, 0, 1, 1, 2, 3, 3])
    assert take_groups(groups, 5, seed=0).tolist() == [0, 1, 2, 5]  # scenes 0 and 2: 4 frames
    for seed in range(8):
        kept = take_groups(groups, 5, seed=seed)
        assert 0 < len(kept) <= 5
        for g in set(groups[kept].tolist()):
            assert (groups[kept] == g).sum() == (groups == g).sum()
    assert take_groups(groups, 8, seed=0).tolist() == list(range(8))  # a limit above the total keeps every frame


def test_augmentation_changes_frames_but_keeps_shape_and_range():
    image = torch.randint(0, 256, (3, *FRAME_SIZE), dtype=torch.uint8)
    torch.manual_seed(0)
    out = augmentation()(image)
    assert out.shape == (3, *FRAME_SIZE) and out.dtype == torch.float32 and 0 <= out.min() and out.max() <= 1
    assert not torch.allclose(out, image.float() / 255)
    assert torch.allclose(augmentation(0, 0, 0, False, 0, 0)(image), image.float() / 255)


@pytest.mark.parametrize("task,shape,dtype", [("binary", (16,), torch.float32), ("multilabel", (16, 2), torch.float32),
                                              ("multiclass", (16,), torch.int64)])
def test_synthetic_batches_per_task(task, shape, dtype):
    data = FrameData(None, task=task, synthetic_count=120, batch_size=16)
    data.setup("fit")
    x, y = data.on_after_batch_transfer(next(iter(data.train_dataloader())), 0)
    assert x.shape == (16, 3, *FRAME_SIZE) and x.dtype == torch.float32 and x.max() <= 1
    assert y.shape == shape and y.dtype == dtype
    counts = data.train_label_counts()
    assert counts.shape == {"binary": (2,), "multilabel": (2, 2), "multiclass": (3,)}[task]
    assert int(counts.sum()) == len(data.parts["train"]) * (2 if task == "multilabel" else 1)
    assert data.class_names == {"binary": ["not_rick", "rick"], "multilabel": ["rick", "morty"],
                                "multiclass": ["rick", "morty", "neither"]}[task]


def test_folder_tree_stream_loading_with_augmentation_in_workers(frame_tree):
    data = FrameData(str(frame_tree), task="multiclass", loading="stream", augment=True, batch_size=4,
                     num_workers=1, cache_dir=None, val_fraction=0.25)
    assert data.class_names == ["morty", "rick"]
    data.setup("fit")
    loader = data.train_dataloader()
    x, y = next(iter(loader))
    assert x.shape == (4, 3, *FRAME_SIZE) and x.dtype == torch.float32 and y.dtype == torch.int64
    first, again = loader.dataset[0][0], loader.dataset[0][0]  # read from its file each time, augmented anew
    as_read = read_frame(loader.dataset.paths[0], FRAME_SIZE)[0].float() / 255
    assert not torch.allclose(first, again) and not torch.allclose(first, as_read)


def test_per_frame_training_without_workers_advises_them_on_a_many_core_machine(monkeypatch):
    """Augmentation in the main process on 8 cores: the warning names the setting; with a worker it is quiet."""
    monkeypatch.setattr(rickmorty.data, "available_cpu_cores", lambda: 8)
    data = FrameData(None, task="binary", synthetic_count=40, batch_size=8, augment=True)
    data.setup("fit")
    with pytest.warns(UserWarning, match=r"augmentation prepares every training frame in the main process; this "
                                         r"machine has 8 cores: data.num_workers 1-4 would prepare them in parallel"):
        data.train_dataloader()
    data.num_workers = 1
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        data.train_dataloader()


def test_labels_csv_for_multilabel(tmp_path, frame_tree):
    rows = ["path,label"] + [f"{p.relative_to(frame_tree)},{p.parent.name};extra" for p in sorted(frame_tree.rglob("*.jpg"))]
    rows.append("missing.jpg,rick")
    csv = tmp_path / "labels.csv"
    csv.write_text("\n".join(rows) + "\n")
    data = FrameData(str(frame_tree), task="multilabel", labels_csv=str(csv), cache_dir=None)
    assert data.class_names == ["extra", "morty", "rick"]
    with pytest.warns(UserWarning, match="missing.jpg"):
        data.setup("fit")
    assert set(data.frames.targets) == {(1, 1, 0), (1, 0, 1)}


def test_a_labels_csv_alone_is_read_and_its_missing_files_reported_through_the_cache(tmp_path, frame_tree):
    rows = ["\ufeffpath, label"] + [f"{os.path.relpath(p, tmp_path)}, {p.parent.name}"  # as a spreadsheet saves it
                                     for p in sorted(frame_tree.rglob("*.jpg"))]
    listed, more = tmp_path / "labels.csv", tmp_path / "labels_more.csv"
    listed.write_text("\n".join(rows) + "\n")
    more.write_text("\n".join(rows + ["missing.jpg,rick"]) + "\n")
    data = FrameData(None, task="binary", labels_csv=str(listed), cache_dir=str(tmp_path / "cache"))
    assert len(data.load_frames().targets) == 24 and "synthetic" not in data.data_source  # paths: from the CSV
    with pytest.warns(UserWarning, match="missing.jpg"):  # the same frames, cached, but one more file listed
        FrameData(None, task="binary", labels_csv=str(more), cache_dir=str(tmp_path / "cache")).load_frames()


def test_held_out_test_folder_and_cache(tmp_path, frame_tree, monkeypatch):
    data = FrameData(str(frame_tree), task="binary", test_dir=str(frame_tree), cache_dir=str(tmp_path / "cache"),
                     val_fraction=0.25)
    data.setup("fit")
    assert len(data.parts["train"]) == 0  # the same folder: every training frame shares a scene with the test folder
    assert len(data._part("test")[0]) == 24 and data.split_report()["test"] == 24
    assert list((tmp_path / "cache").glob("frames-*.pt"))
    again = FrameData(str(frame_tree), task="binary", cache_dir=str(tmp_path / "cache"))
    assert len(again.load_frames().targets) == 24  # read back from the cache
    cached = set((tmp_path / "cache").glob("frames-*.pt"))
    monkeypatch.setattr(data_module, "FRAME_CACHE_VERSION", data_module.FRAME_CACHE_VERSION + 1)
    FrameData(str(frame_tree), task="binary", cache_dir=str(tmp_path / "cache")).load_frames()
    assert len(set((tmp_path / "cache").glob("frames-*.pt")) - cached) == 1  # a new reader version decodes afresh


def test_bad_settings_are_refused():
    with pytest.raises(ConfigError, match="unknown split 'sideways'; choose grouped or random"):
        FrameData(None, split="sideways")
    with pytest.raises(ConfigError, match="val_fraction=0.7 and test_fraction=0.4 must leave training data"):
        FrameData(None, val_fraction=0.7, test_fraction=0.4)
    with pytest.raises(ConfigError, match="unknown task 'regression'; choose binary, multilabel or multiclass"):
        FrameData(None, task="regression")
    with pytest.raises(ConfigError, match="predict needs a folder of images: set data.predict_dir"):
        FrameData(None).setup("predict")
    with pytest.raises(DataError, match="data folder /nonexistent/frames does not exist"):
        FrameData("/nonexistent/frames")


def test_labels_differing_only_in_case_are_refused_in_one_line(tmp_path):
    """'Rick' beside 'rick' would be a class of its own; the lines named are the file's (a blank line counts)."""
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\na.jpg,rick\nb.jpg,morty\n\nc.jpg,Rick\n")
    with pytest.raises(DataError) as error:
        FrameData(None, task="multiclass", labels_csv=str(csv), cache_dir=None)
    assert str(error.value) == (f"{csv}: labels 'Rick' and 'rick' differ only in case (first on lines 5 and 2); "
                                "every distinct label is a class: spell them alike")


def test_a_rare_label_spelled_like_a_common_one_is_flagged_and_a_rare_distinct_one_is_not(tmp_path):
    """'rikc' on one row beside 20 'rick' rows is a likely typo; 'summer' on one row is just a rare class."""
    common_rows = [f"r{i}.jpg,rick" for i in range(20)] + [f"m{i}.jpg,morty" for i in range(20)]
    typo, rare = tmp_path / "typo.csv", tmp_path / "rare.csv"
    typo.write_text("\n".join(["path,label", *common_rows, "x.jpg,rikc"]) + "\n")
    rare.write_text("\n".join(["path,label", *common_rows, "x.jpg,summer"]) + "\n")
    with pytest.warns(UserWarning, match=r"label 'rikc' is used on 1 row\(s\) \(line 42\) and looks like 'rick' \(20 rows\)"):
        read_label_rows(typo)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert read_label_rows(rare)[-1] == (42, "x.jpg", ["summer"])


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_uint8_frames_scale_to_a_half_dtype_as_autocast_casts_the_float32_ones(dtype):
    from rickmorty.images import as_float

    every_value = torch.arange(256, dtype=torch.uint8).view(1, 1, 16, 16)
    direct, via_float32 = as_float(every_value, dtype), as_float(every_value).to(dtype)
    assert direct.dtype == dtype and torch.equal(direct.view(torch.int16), via_float32.view(torch.int16))
    floats = torch.rand(2, 3, 4, 4, dtype=torch.float64)
    assert torch.equal(as_float(floats, dtype), floats.float().to(dtype))


@pytest.mark.parametrize("backbone", ["dense", "cnn", "resnet"])
def test_bf16_runs_give_takers_bf16_frames_and_train_and_validate_as_with_float32_frames(tmp_path, monkeypatch,
                                                                                         backbone):
    from common.classifier import Classifier
    from rickmorty.models import CourseCNN, DenseBaseline, ResNetBackbone

    make = {"dense": lambda: DenseBaseline(units=(8,)), "cnn": lambda: CourseCNN(dense=8),
            "resnet": ResNetBackbone}[backbone]
    data = FrameData(None, task="binary", synthetic_count=40, batch_size=8)
    data.setup("fit")
    (seen, metrics, weights), (seen_float32, metrics_float32, weights_float32) = bf16_fits_as_taken_and_in_float32(
        lambda: Classifier(make(), data.class_names, channels_last=backbone == "cnn"), data, tmp_path, monkeypatch)
    assert seen_float32 == {torch.float32}
    assert seen == ({torch.float32} if backbone == "resnet" else {torch.bfloat16})
    assert metrics == metrics_float32
    assert all(torch.equal(weights[name], weights_float32[name]) for name in weights)
