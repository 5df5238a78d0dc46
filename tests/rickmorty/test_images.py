"""Reading frames: conversions and bad input, each reported by file name."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from common.errors import DataError
from rickmorty.data import FrameData
from rickmorty.images import FRAME_SIZE, list_images, read_folder, read_frame, resize_frame, to_rgb
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


def over_white(image: Image.Image) -> np.ndarray:
    """Return PIL's own RGB of an image, its transparency composited over white."""
    white = Image.new("RGBA", image.size, (255, 255, 255, 255))
    return np.asarray(Image.alpha_composite(white, image.convert("RGBA")).convert("RGB"))


def test_palette_and_alpha_pngs_give_the_colours_pil_gives(tmp_path):
    rng = np.random.default_rng(0)
    height, width = FRAME_SIZE
    palette = Image.fromarray(rng.integers(0, 256, (height, width), dtype=np.uint8), mode="P")
    palette.putpalette(rng.integers(0, 256, 768, dtype=np.uint8).tolist())
    palette.save(tmp_path / "palette.png")
    palette.save(tmp_path / "palette_clear.png", transparency=bytes(rng.integers(0, 256, 256, dtype=np.uint8)))
    Image.fromarray(rng.integers(0, 256, (height, width, 4), dtype=np.uint8)).save(tmp_path / "rgba.png")
    Image.fromarray(rng.integers(0, 256, (height, width, 2), dtype=np.uint8)).save(tmp_path / "la.png")

    image, issues = read_frame(tmp_path / "palette.png")
    assert np.array_equal(image.permute(1, 2, 0).numpy(), np.asarray(palette.convert("RGB")))
    assert [(i.problem, i.action) for i in issues] == [("palette image", "converted to RGB")]
    for name in ("palette_clear.png", "rgba.png", "la.png"):
        image, issues = read_frame(tmp_path / name)
        expected = over_white(Image.open(tmp_path / name))
        assert np.abs(image.permute(1, 2, 0).numpy().astype(int) - expected).max() <= 1, name  # rounding only
        assert len(issues) == 1 and issues[0].action == "converted to RGB, transparency composited over white"
    assert read_frame(tmp_path / "palette_clear.png")[1][0].problem == "palette image"


def test_16_bit_pngs_are_scaled_to_8_bits_everywhere(tmp_path):
    values = np.array([0, 255, 256, 257, 20000, 32895, 65280, 65535], dtype=np.uint16)
    grey16 = np.resize(values, FRAME_SIZE)
    folder = tmp_path / "deep"
    folder.mkdir()
    Image.fromarray(grey16).save(folder / "deep.png")  # mode I;16
    image, issues = read_frame(folder / "deep.png")
    assert image.dtype == torch.uint8 and (image == torch.from_numpy((grey16 >> 8).astype(np.uint8))).all()
    assert [(i.problem, i.action) for i in issues] == [("16-bit image", "scaled to 8 bits (value >> 8)"),
                                                       ("grayscale image", "converted to RGB")]
    with pytest.warns(UserWarning) as record:
        frames, _ = read_folder(folder)  # only 16-bit files
    messages = " ".join(str(w.message) for w in record)
    assert "deep.png: 16-bit image -> scaled to 8 bits" in messages and torch.equal(frames[0], image)
    write_png(folder / "plain.png", torch.zeros((3, *FRAME_SIZE), dtype=torch.uint8))
    with pytest.warns(UserWarning):
        frames, names = read_folder(folder)  # 8- and 16-bit files together
    assert frames.dtype == torch.uint8 and names == ["deep.png", "plain.png"] and torch.equal(frames[0], image)
