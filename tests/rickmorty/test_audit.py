"""The data audit: exact duplicates, contradictions, scene groups; on small trees and on the real frames."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from rickmorty.audit import collapse_duplicates, connected_components, grey_thumbnails, scene_groups
from rickmorty.data import FrameData
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
