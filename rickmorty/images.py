"""Reading frames from files: decode, convert to RGB, fix the size; every problem is reported by file name."""
from __future__ import annotations

import warnings
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torchvision.io import ImageReadMode, decode_image
from torchvision.transforms.v2.functional import to_dtype

from common.errors import DataError

# What torchvision.io.decode_image reads; anything else in a class folder is reported and skipped.
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".gif", ".webp"}
FRAME_SIZE = (90, 160)  # (H, W): the course's 160x90 frames
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
PNG_PALETTE = 3  # the IHDR colour type of an indexed-colour (palette) PNG


@dataclass(frozen=True)
class FileIssue:
    """One problem with one input file: which file, what was wrong, and what was done about it."""

    path: str
    problem: str
    action: str

    def as_dict(self) -> dict:
        """Return the issue as a plain dict (for JSON)."""
        return asdict(self)


def list_images(folder: Path) -> tuple[list[Path], list[FileIssue]]:
    """Return the image files of a folder (sorted) and an issue for each other file found there."""
    if not folder.is_dir():
        raise DataError(f"folder {folder} does not exist: check the data path (the course layout is described in "
                        "the rickmorty README section)")
    images, others = [], []
    for path in sorted(p for p in folder.iterdir() if p.is_file()):
        if path.suffix.lower() in IMAGE_SUFFIXES:
            images.append(path)
        else:
            others.append(FileIssue(str(path), f"not a JPEG, PNG, WebP or GIF file ({path.suffix or 'no suffix'}; "
                                               "convert other images to PNG)", "skipped"))
    return images, others


def to_rgb(image: torch.Tensor) -> torch.Tensor:
    """Return a uint8 (3, H, W) image from grey, grey+alpha, RGB or RGBA (alpha composited over white)."""
    channels = image.shape[0]
    colour, alpha = (image[:1] if channels <= 2 else image[:3]), None
    if channels in (2, 4):
        alpha = image[-1:].float() / 255
    colour = colour.expand(3, -1, -1)
    if alpha is not None:
        colour = (colour.float() * alpha + 255 * (1 - alpha)).round().to(torch.uint8)
    return colour.contiguous()


def resize_frame(image: torch.Tensor, size: tuple[int, int] = FRAME_SIZE) -> torch.Tensor:
    """Return a uint8 (3, H, W) image resized (antialiased, aspect not kept) to `size` = (H, W)."""
    resized = F.interpolate(image[None].float(), size=size, mode="bilinear", antialias=True, align_corners=False)
    return resized[0].round().clamp(0, 255).to(torch.uint8)


def palette_mode(data: bytes) -> ImageReadMode | None:
    """Return the mode that decodes palette PNG bytes to true colours (RGB, or RGB_ALPHA with a tRNS chunk); else None.

    Read as UNCHANGED, a palette PNG gives its palette indices as grey levels. RGB_ALPHA on a palette
    without transparency returns scrambled channels (torchvision 0.29), so it is asked for only with a tRNS chunk.
    """
    if len(data) < 26 or not data.startswith(PNG_SIGNATURE) or data[12:16] != b"IHDR" or data[25] != PNG_PALETTE:
        return None
    start = 8
    while start + 8 <= len(data):
        kind = data[start + 4:start + 8]
        if kind in (b"tRNS", b"IDAT"):  # the PNG standard puts tRNS before the image data
            return ImageReadMode.RGB_ALPHA if kind == b"tRNS" else ImageReadMode.RGB
        start += 12 + int.from_bytes(data[start:start + 4], "big")  # length, type, data, CRC
    return ImageReadMode.RGB


def decode_frame(data: bytes, path: Path, size: tuple[int, int] = FRAME_SIZE
                 ) -> tuple[torch.Tensor | None, list[FileIssue]]:
    """Return a file's bytes as a uint8 (3, H, W) frame of `size` (None if undecodable) and the issues fixed.

    Palette images give their palette's colours; 16-bit images are scaled to 8 bits as value >> 8 (floor(value / 256)).
    """
    palette = palette_mode(data)
    try:
        image = decode_image(torch.frombuffer(bytearray(data), dtype=torch.uint8),
                             mode=palette or ImageReadMode.UNCHANGED)
    except (RuntimeError, ValueError) as error:
        # torchvision's messages read "function, file:line, what went wrong".
        reason = str(error).split(", ", 2)[-1].strip() or type(error).__name__
        if reason.startswith("Unsupported image file"):
            reason = "not a JPEG, PNG, WebP or GIF: damaged, or another format under this name"
        return None, [FileIssue(str(path), f"cannot be decoded as an image ({reason})", "skipped")]
    issues = []
    if image.dim() == 4:  # animated GIF/WebP: keep the first frame
        issues.append(FileIssue(str(path), f"{image.shape[0]} animation frames", "first frame used"))
        image = image[0]
    if image.dtype == torch.uint16:  # a 16-bit PNG: compositing, resizing and the uint8 frame cache all assume 8 bits
        issues.append(FileIssue(str(path), "16-bit image", "scaled to 8 bits (value >> 8)"))
        image = to_dtype(image, torch.uint8, scale=True)
    if palette is not None or image.shape[0] != 3:
        channels = image.shape[0]
        mode = "palette" if palette is not None else {1: "grayscale", 2: "grayscale+alpha", 4: "RGBA"}.get(
            channels, f"{channels}-channel")
        action = "converted to RGB" + (", transparency composited over white" if channels in (2, 4) else "")
        issues.append(FileIssue(str(path), f"{mode} image", action))
        image = to_rgb(image)
    if tuple(image.shape[1:]) != tuple(size):
        issues.append(FileIssue(str(path), f"size {image.shape[2]}x{image.shape[1]} (WxH), not {size[1]}x{size[0]}",
                                f"resized to {size[1]}x{size[0]}"))
        image = resize_frame(image, size)
    return image, issues


def read_frame(path: Path, size: tuple[int, int] = FRAME_SIZE) -> tuple[torch.Tensor | None, list[FileIssue]]:
    """Return the file as a uint8 (3, H, W) frame (None if unreadable) and the issues fixed."""
    try:
        data = Path(path).read_bytes()
    except OSError as error:
        return None, [FileIssue(str(path), f"cannot be read ({error.strerror})", "skipped")]
    return decode_frame(data, Path(path), size)


def read_frames(paths: list[Path], source: str) -> tuple[torch.Tensor, list[str]]:
    """Return the readable frames among image files as uint8 (N, 3, H, W) and their file names.

    Problems are warned by file name; DataError names `source` when no file is readable.
    """
    frames, names, issues = [], [], []
    for path in paths:
        frame, found = read_frame(path)
        issues += found
        if frame is not None:
            frames.append(frame)
            names.append(Path(path).name)
    warn_issues(issues)
    if not frames:
        raise DataError(f"{source} holds no readable image")
    return torch.stack(frames), names


def read_folder(folder: str | Path) -> tuple[torch.Tensor, list[str]]:
    """Return the readable frames of a folder as uint8 (N, 3, H, W) and their file names (other files warned)."""
    paths, issues = list_images(Path(folder))
    warn_issues(issues)
    return read_frames(paths, str(folder))


def warn_issues(issues: list[FileIssue], limit: int = 20) -> None:
    """Emit one warning per issue (up to `limit`, then a count), naming each file."""
    for issue in issues[:limit]:
        warnings.warn(f"{issue.path}: {issue.problem} -> {issue.action}", stacklevel=2)
    if len(issues) > limit:
        warnings.warn(f"... and {len(issues) - limit} more file issues (see the audit)", stacklevel=2)


def as_float(images: torch.Tensor | np.ndarray, dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """Return frames as floats in [0, 1] (float32 or `dtype`): uint8 ones scaled, float ones checked to be in range.

    uint8: convert, then scale in place (faster than one promoting multiply). In bf16 or float16
    the values are float32's rounded to that dtype, bit for bit (integers up to 255 convert
    exactly and the product is taken in float32 before rounding): what autocast makes of float32 frames.
    """
    images = torch.as_tensor(images)
    if images.dtype == torch.uint8:
        return images.to(dtype).mul_(1 / 255)
    if images.numel() and float(images.max()) > 1:  # 0..255 floats would be read as far too bright
        raise DataError(f"float frames must be in [0, 1], these reach {float(images.max()):g}: pass uint8 frames "
                        "or divide by 255")
    return images.float().to(dtype)  # through float32, as autocast would cast float32 frames
