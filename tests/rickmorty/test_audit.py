"""The data audit: exact duplicates, contradictions, scene groups; on small trees and on the real frames."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import DataError
from rickmorty.audit import collapse_duplicates, connected_components, grey_thumbnails, scene_groups
from rickmorty.data import FrameData
from rickmorty.images import FRAME_SIZE
from rickmorty.sources import find_labelled_files
from rickmorty.synthetic import synthetic_frames
from tests.rickmorty.conftest import write_jpeg


def test_connected_components_follow_chains():
    groups = connected_components(6, np.array([[0, 1], [1, 2], [4, 5]]))
    assert groups.tolist() == [0, 0, 0, 1, 2, 2]


def test_grey_thumbnails_are_32_by_18():
    assert grey_thumbnails(torch.zeros((2, 3, 90, 160), dtype=torch.uint8)).shape == (2, 18 * 32)


def test_scene_groups_join_near_copies_and_keep_different_frames_apart():
    images, _, _ = synthetic_frames(4, seed=0)
    shifted = torch.roll(images[0], 1, dims=2)  # the next frame of a scene: almost the same picture
    noisy = (images[1].int() + torch.randint(-8, 9, images[1].shape)).clamp(0, 255).to(torch.uint8)
    groups = scene_groups(torch.stack([images[0], shifted, images[1], noisy, images[2], images[3]]))
    assert groups[0] == groups[1] and groups[2] == groups[3]
    assert len(set(groups.tolist())) == 4


def test_duplicates_are_collapsed_and_contradictions_excluded(tmp_path):
    images, _, _ = synthetic_frames(3, seed=5)
    for i in range(3):
        write_jpeg(tmp_path / "rick" / f"r{i}.jpg", images[0])  # one frame, three copies
    write_jpeg(tmp_path / "rick" / "both.jpg", images[1])
    write_jpeg(tmp_path / "morty" / "both_again.jpg", images[1])  # the same frame labelled "morty"
    write_jpeg(tmp_path / "morty" / "m.jpg", images[2])
    frames = collapse_duplicates(find_labelled_files(tmp_path, "binary"))
    audit = frames.audit
    assert audit.n_files == 6 and audit.n_distinct == 3 and audit.duplicate_files == 3
    assert len(audit.contradictions) == 1 and audit.contradictions[0]["folders"] == ["morty", "rick"]
    assert sorted(frames.names) == ["m.jpg", "r0.jpg"] and audit.frames_per_class == {"morty": 1, "rick": 1}
    assert "contradicting labels (excluded): 1" in audit.summary()


@pytest.mark.parametrize("task", ["binary", "multilabel", "multiclass"])
def test_real_audit_finds_duplicates_contradictions_and_scenes(course_data, task, tmp_path):
    data = FrameData(str(course_data / "RickandMorty"), task=task, split="grouped")
    data.setup("fit")
    audit = data.frames.audit
    # The data README: heavy exact duplication, ~20 contradicting images, near-duplicate scenes.
    assert audit.duplicate_files > 0.15 * audit.n_files
    assert audit.n_distinct < 0.85 * audit.n_files
    assert len(audit.contradictions) >= (1 if task == "binary" else 10)
    if task != "binary":
        assert any(c["folders"] == ["AllMortyImages", "Neither"] for c in audit.contradictions)
    assert audit.n_scene_groups < 0.8 * len(data.frames.targets)
    report = data.split_report()
    assert report["scene_groups_shared"] == 0 and report["val_frames_in_shared_scenes"] == 0
    train, val = (set(data.frames.names[i] for i in data.parts[p]) for p in ("train", "val"))
    assert not train & val
    # Every frame is distinct content: no exact duplicate can straddle the split.
    hashes = {hash(data.frames.images[i].numpy().tobytes()) for i in data.parts["train"]}
    assert not any(hash(data.frames.images[i].numpy().tobytes()) in hashes for i in data.parts["val"])
    random_split = FrameData(str(course_data / "RickandMorty"), task=task, split="random")
    random_split.setup("fit")
    assert random_split.split_report()["scene_groups_shared"] > 100  # what the course's random split leaks
    assert data.frames.audit.save(tmp_path).is_file()


def test_a_class_of_only_unreadable_files_stops_the_run_from_folders_and_from_a_csv(tmp_path):
    images, _, _ = synthetic_frames(4, seed=5)
    for i in range(4):
        write_jpeg(tmp_path / "a" / f"a{i}.jpg", images[i])
    (tmp_path / "b").mkdir()
    for i in range(3):
        (tmp_path / "b" / f"junk{i}.jpg").write_text("junk")  # three identical unreadable files
    expected = r"no usable frame is left for 1 class\(es\): 'b': 3 file\(s\) could not be read \(e\.g\. .*junk0\.jpg: "
    with pytest.raises(DataError, match=expected):
        FrameData(str(tmp_path), task="binary", cache_dir=None).load_frames()
    csv = tmp_path / "labels.csv"
    csv.write_text("path,label\n" + "".join(f"a/a{i}.jpg,a\n" for i in range(4))
                   + "".join(f"b/junk{i}.jpg,b\n" for i in range(3)))
    with pytest.raises(DataError, match=expected):
        FrameData(None, task="binary", labels_csv=str(csv), cache_dir=None).load_frames()
    csv.write_text("path,label\n" + "".join(f"a/a{i}.jpg,a\n" for i in range(4)) + "b/gone.jpg,b\n")
    with pytest.raises(DataError, match="'b': none of the files listed for it exists"):
        FrameData(None, task="binary", labels_csv=str(csv), cache_dir=None).load_frames()


def test_a_class_whose_every_image_contradicts_another_stops_the_run(tmp_path):
    images, _, _ = synthetic_frames(2, seed=5)
    for name in ("rick", "morty"):
        write_jpeg(tmp_path / name / "same.jpg", images[0])
    write_jpeg(tmp_path / "rick" / "other.jpg", images[1])
    with pytest.raises(DataError, match=r"'morty': 1 file\(s\) hold images also labelled otherwise"):
        collapse_duplicates(find_labelled_files(tmp_path, "binary"))


def test_each_copy_of_an_unreadable_file_is_an_audit_issue(tmp_path):
    images, _, _ = synthetic_frames(2, seed=5)
    for i, name in enumerate(("rick", "morty")):
        write_jpeg(tmp_path / name / "frame.jpg", images[i])
    for i in range(3):
        (tmp_path / "morty" / f"junk{i}.jpg").write_text("junk")
    audit = collapse_duplicates(find_labelled_files(tmp_path, "binary")).audit
    assert sorted(Path(i.path).name for i in audit.issues) == ["junk0.jpg", "junk1.jpg", "junk2.jpg"]
    assert all(i.action == "skipped" and "cannot be decoded" in i.problem for i in audit.issues)
    assert "file issues: 3" in audit.summary()


def test_a_file_that_cannot_be_read_is_named(tmp_path):
    images, _, _ = synthetic_frames(2, seed=5)
    for i, name in enumerate(("rick", "morty")):
        write_jpeg(tmp_path / name / "frame.jpg", images[i])
    files = find_labelled_files(tmp_path, "binary")
    (tmp_path / "rick" / "frame.jpg").unlink()  # gone since the folder was listed (or unreadable)
    with pytest.raises(DataError, match=r"cannot read .*rick/frame\.jpg \(No such file or directory\)"):
        collapse_duplicates(files)


def test_16_bit_frames_are_stored_scaled_not_wrapped(tmp_path):
    images, _, _ = synthetic_frames(1, seed=5)
    write_jpeg(tmp_path / "morty" / "m.jpg", images[0])
    (tmp_path / "rick").mkdir()
    Image.fromarray(np.full(FRAME_SIZE, 20000, dtype=np.uint16)).save(tmp_path / "rick" / "deep.png")  # mode I;16
    frames = collapse_duplicates(find_labelled_files(tmp_path, "binary"))
    assert (frames.images[frames.names.index("deep.png")] == 20000 >> 8).all()  # 78, not 20000 % 256 = 32
