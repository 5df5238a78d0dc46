"""Reading frames: conversions and bad input, each reported by file name."""
from __future__ import annotations

import pytest
import torch

from common.errors import DataError
from rickmorty.data import FrameData
from rickmorty.images import FRAME_SIZE, list_images, read_frame, resize_frame, to_rgb
from rickmorty.sources import find_labelled_files
from tests.rickmorty.conftest import write_jpeg, write_png


def test_to_rgb_handles_grey_and_alpha():
    grey = torch.full((1, 2, 2), 100, dtype=torch.uint8)
    assert to_rgb(grey).shape == (3, 2, 2) and (to_rgb(grey) == 100).all()
    rgba = torch.zeros((4, 2, 2), dtype=torch.uint8)  # black, fully transparent -> white
    assert (to_rgb(rgba) == 255).all()
    rgba[3] = 255  # opaque black stays black
    assert (to_rgb(rgba) == 0).all()


def test_resize_frame_gives_the_frame_size():
    image = torch.randint(0, 256, (3, 225, 225), dtype=torch.uint8)
    assert resize_frame(image).shape == (3, *FRAME_SIZE)


def test_bad_files_are_reported_by_name_and_converted_or_skipped(tmp_path):
    frame = torch.randint(0, 256, (3, *FRAME_SIZE), dtype=torch.uint8)
    folder = tmp_path / "rick"
    good = write_jpeg(folder / "good.jpg", frame)
    corrupt = folder / "corrupt.jpg"
    corrupt.write_bytes(good.read_bytes()[:200])
    write_png(folder / "frame.png", frame)
    write_png(folder / "grey.png", frame[:1])
    write_png(folder / "rgba.png", torch.cat([frame, torch.full((1, *FRAME_SIZE), 255, dtype=torch.uint8)]))
    write_jpeg(folder / "big.jpg", torch.randint(0, 256, (3, 225, 225), dtype=torch.uint8))
    (folder / "notes.txt").write_text("not an image")
    (folder / "fake.jpg").write_text("not an image either")

    images, others = list_images(folder)
    assert [o.path for o in others] == [str(folder / "notes.txt")] and others[0].action == "skipped"
    assert others[0].problem == "not a JPEG, PNG, WebP or GIF file (.txt; convert other images to PNG)"
    results = {p.name: read_frame(p) for p in images}
    for name in ("corrupt.jpg", "fake.jpg"):
        image, issues = results[name]
        assert image is None and issues[0].action == "skipped" and name in issues[0].path
    assert "truncated" in results["corrupt.jpg"][1][0].problem
    assert results["fake.jpg"][1][0].problem == ("cannot be decoded as an image (not a JPEG, PNG, WebP or GIF: damaged, "
                                                 "or another format under this name)")
    assert results["good.jpg"][1] == [] and results["frame.png"][1] == []
    assert torch.equal(results["frame.png"][0], frame)  # PNG is lossless: read as it is
    assert "grayscale" in results["grey.png"][1][0].problem
    assert results["grey.png"][1][0].action == "converted to RGB"
    assert "RGBA" in results["rgba.png"][1][0].problem and torch.equal(results["rgba.png"][0], frame)
    assert "225x225" in results["big.jpg"][1][0].problem and results["big.jpg"][0].shape == (3, *FRAME_SIZE)


def test_data_module_skips_bad_files_with_warnings_naming_them(tmp_path, frame_tree):
    import shutil
    root = tmp_path / "tree"
    shutil.copytree(frame_tree, root)
    (root / "rick" / "broken.jpg").write_bytes(b"\xff\xd8\xff garbage")
    (root / "rick" / "Thumbs.db").write_bytes(b"\x00")
    data = FrameData(str(root), task="binary", cache_dir=None, batch_size=8)
    with pytest.warns(UserWarning) as record:
        data.setup("fit")
    messages = " ".join(str(w.message) for w in record)
    assert "broken.jpg" in messages and "Thumbs.db" in messages
    assert len(data.frames.targets) == 24
    x, y = next(iter(data.train_dataloader()))
    assert x.dtype == torch.uint8 and y.dtype == torch.float32


def test_empty_and_missing_class_folders_stop_with_a_clear_message(tmp_path, frame_tree):
    (tmp_path / "rick").mkdir()
    (tmp_path / "morty").mkdir()
    write_jpeg(tmp_path / "morty" / "a.jpg", torch.zeros((3, *FRAME_SIZE), dtype=torch.uint8))
    with pytest.raises(DataError, match=r"rick holds no images"):
        find_labelled_files(tmp_path, "binary")
    with pytest.raises(DataError, match="does not exist"):
        FrameData(str(tmp_path / "nowhere"), task="binary")
    with pytest.raises(DataError, match="does not exist"):
        list_images(tmp_path / "nowhere")


def test_a_folder_of_only_bad_files_stops_with_a_clear_message(tmp_path):
    for name in ("rick", "morty"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "x.jpg").write_bytes(name.encode())
    data = FrameData(str(tmp_path), task="binary", cache_dir=None)
    with pytest.raises(DataError, match=r"no usable image.*morty/x.jpg: cannot be decoded"):
        data.setup("fit")


def test_course_folders_are_found_through_deepbio_data(tmp_path, frame_tree, monkeypatch):
    monkeypatch.setenv("DEEPBIO_DATA", str(frame_tree.parent))
    monkeypatch.chdir(tmp_path)
    data = FrameData(f"course:{frame_tree.name}", predict_dir=f"course:{frame_tree.name}/rick", cache_dir=None)
    data.setup("fit")
    assert sum(len(rows) for rows in data.parts.values()) == 24  # 12 rick + 12 morty frames
    data.setup("predict")
    assert data.predict_ids == sorted(p.name for p in (frame_tree / "rick").iterdir())


def test_predict_dir_reads_any_folder_and_names_rows_by_file(tmp_path, frame_tree):
    folder = tmp_path / "predict"
    folder.mkdir()
    for path in sorted((frame_tree / "rick").iterdir())[:3]:
        (folder / path.name).write_bytes(path.read_bytes())
    (folder / "readme.md").write_text("hi")
    data = FrameData(None, predict_dir=str(folder))
    with pytest.warns(UserWarning, match="readme.md"):
        data.setup("predict")
    assert data.predict_ids == ["rick_00.jpg", "rick_01.jpg", "rick_02.jpg"]
    (batch,) = next(iter(data.predict_dataloader()))
    assert batch.shape == (3, 3, *FRAME_SIZE) and batch.dtype == torch.uint8
    assert torch.equal(batch[0], read_frame(folder / "rick_00.jpg")[0])
