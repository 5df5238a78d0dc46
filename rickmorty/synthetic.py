"""Procedural 160x90 cartoon frames with rick-like and morty-like figures, distractors and clutter, plus pixel masks.

A "rick" is tall: spiky pale-blue hair, pale face, white lab coat, brown trousers. A "morty" is
short: round brown hair, yellow shirt, blue trousers. Distractors have the same build with other
colours and hair, so colour alone or shape alone does not give the answer away.
"""
from __future__ import annotations

import numpy as np
import torch

from rickmorty.images import FRAME_SIZE

CHARACTERS = ("rick", "morty")
# (hair, skin, shirt, trousers) RGB colours and build (height in pixels, spiky hair?)
LOOKS = {
    "rick": dict(hair=(170, 215, 235), skin=(240, 220, 200), shirt=(250, 250, 250), legs=(120, 80, 50), height=58,
                 spiky=True),
    "morty": dict(hair=(110, 60, 25), skin=(250, 215, 180), shirt=(250, 220, 40), legs=(40, 70, 170), height=42,
                  spiky=False),
}
# Probabilities of a frame holding: nobody, only rick, only morty, both.
CAST_PROBABILITIES = (0.3, 0.25, 0.25, 0.2)


def _ellipse(yy, xx, cy, cx, ry, rx) -> np.ndarray:
    return ((yy - cy) / ry) ** 2 + ((xx - cx) / rx) ** 2 <= 1


def _rect(yy, xx, top, left, height, width) -> np.ndarray:
    return (yy >= top) & (yy < top + height) & (xx >= left) & (xx < left + width)


def figure_parts(look: dict, cx: float, feet: float, scale: float, grid) -> list[tuple[np.ndarray, tuple]]:
    """Return (mask, colour) pairs drawing one figure, bottom to top, standing with its feet at row `feet`."""
    yy, xx = grid
    h = look["height"] * scale
    head_r = 0.14 * h
    legs_h, body_h = 0.35 * h, 0.33 * h
    body_top = feet - legs_h - body_h
    head_cy = body_top - head_r * 0.9
    parts = [
        (_rect(yy, xx, feet - legs_h, cx - 0.16 * h, legs_h, 0.13 * h), look["legs"]),
        (_rect(yy, xx, feet - legs_h, cx + 0.03 * h, legs_h, 0.13 * h), look["legs"]),
        (_rect(yy, xx, body_top, cx - 0.2 * h, body_h, 0.4 * h), look["shirt"]),
    ]
    if look["spiky"]:  # a crown of triangles above and behind the head
        spikes = np.zeros_like(yy, dtype=bool)
        for k in range(5):
            tip_x = cx + (k - 2) * 0.09 * h
            base = head_cy - 0.2 * head_r
            height = 1.4 * head_r
            inside = (yy <= base) & (yy >= base - height)
            spikes |= inside & (np.abs(xx - tip_x) <= 0.06 * h * (yy - (base - height)) / height + 0.5)
        parts.append((spikes | _ellipse(yy, xx, head_cy - 0.3 * head_r, cx, head_r, 1.2 * head_r), look["hair"]))
    else:
        parts.append((_ellipse(yy, xx, head_cy - 0.35 * head_r, cx, 1.05 * head_r, 1.15 * head_r), look["hair"]))
    parts.append((_ellipse(yy, xx, head_cy, cx, head_r, 0.9 * head_r), look["skin"]))
    return parts


def random_look(rng: np.random.Generator) -> dict:
    """Return a distractor's look: random colours, build and hair that is neither rick's nor morty's combination."""
    def colour():
        return tuple(int(c) for c in rng.integers(0, 256, 3))
    return dict(hair=colour(), skin=colour(), shirt=colour(), legs=colour(), height=float(rng.uniform(40, 60)),
                spiky=bool(rng.random() < 0.5))


def clutter(rng: np.random.Generator, grid, n_shapes: int) -> list[tuple[np.ndarray, tuple]]:
    """Return background shapes (rectangles, ellipses) in muted random colours."""
    yy, xx = grid
    shapes = []
    for _ in range(n_shapes):
        colour = tuple(int(c) for c in rng.integers(40, 200, 3))
        cy, cx = rng.uniform(0, yy.shape[0]), rng.uniform(0, yy.shape[1])
        ry, rx = rng.uniform(4, 25), rng.uniform(4, 40)
        mask = _ellipse(yy, xx, cy, cx, ry, rx) if rng.random() < 0.5 else _rect(yy, xx, cy - ry, cx - rx, 2 * ry, 2 * rx)
        shapes.append((mask, colour))
    return shapes


def draw_frame(rng: np.random.Generator, cast: tuple[str, ...], n_distractors: int, size: tuple[int, int] = FRAME_SIZE
               ) -> tuple[np.ndarray, np.ndarray]:
    """Return one frame uint8 (3, H, W) and its masks uint8 (len(CHARACTERS), H, W) for the characters in `cast`."""
    height, width = size
    grid = np.mgrid[0:height, 0:width].astype(np.float32)
    top, bottom = rng.integers(30, 230, 3), rng.integers(30, 230, 3)
    ramp = np.linspace(0, 1, height)[:, None, None]
    canvas = np.broadcast_to(top * (1 - ramp) + bottom * ramp, (height, width, 3)).copy()
    for mask, colour in clutter(rng, grid, int(rng.integers(3, 9))):
        canvas[mask] = colour
    figures = [(name, LOOKS[name]) for name in cast] + [(None, random_look(rng)) for _ in range(n_distractors)]
    order = rng.permutation(len(figures))
    masks = np.zeros((len(CHARACTERS), height, width), dtype=np.uint8)
    slots = rng.permutation(np.linspace(18, width - 18, 5))[:len(figures)]  # spread figures along the frame
    for slot, index in zip(slots, order):
        name, look = figures[index]
        scale = rng.uniform(0.75, 1.25)
        cx, feet = slot + rng.uniform(-8, 8), rng.uniform(0.8, 1.02) * height
        drawn = np.zeros((height, width), dtype=bool)
        for mask, colour in figure_parts(look, cx, feet, scale, grid):
            canvas[mask] = colour
            drawn |= mask
        masks[:, drawn] = 0  # a later figure hides what it covers
        if name is not None:
            masks[CHARACTERS.index(name), drawn] = 1
    if rng.random() < 0.5:
        canvas, masks = canvas[:, ::-1], masks[:, :, ::-1]
    noise = rng.normal(0, 6, canvas.shape)
    image = np.clip(canvas + noise, 0, 255).astype(np.uint8).transpose(2, 0, 1)
    return np.ascontiguousarray(image), np.ascontiguousarray(masks)


def synthetic_frames(n: int, seed: int = 0, size: tuple[int, int] = FRAME_SIZE, max_distractors: int = 2
                     ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Return n frames uint8 (n, 3, H, W), presence labels float (n, 2) [rick, morty] and masks uint8 (n, 2, H, W)."""
    rng = np.random.default_rng(seed)
    casts = [(), ("rick",), ("morty",), ("rick", "morty")]
    images = np.empty((n, 3, *size), dtype=np.uint8)
    masks = np.empty((n, len(CHARACTERS), *size), dtype=np.uint8)
    labels = np.zeros((n, len(CHARACTERS)), dtype=np.float32)
    for i in range(n):
        cast = casts[rng.choice(len(casts), p=CAST_PROBABILITIES)]
        images[i], masks[i] = draw_frame(rng, cast, int(rng.integers(0, max_distractors + 1)), size)
        labels[i] = [name in cast for name in CHARACTERS]
    return torch.from_numpy(images), torch.from_numpy(labels), torch.from_numpy(masks)
