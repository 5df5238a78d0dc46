"""Look at the data before splitting it: exact duplicates, contradicting labels, scene groups, odd files."""
from __future__ import annotations

import hashlib
import json
from collections import Counter
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from common.errors import DataError
from rickmorty.images import FRAME_SIZE, FileIssue, decode_frame
from rickmorty.sources import LabelledFiles


@dataclass
class Frames:
    """Distinct frames with one target each: images uint8 (N, 3, H, W), scene group per frame, and names.

    `paths` is the first file holding each frame (None for synthetic frames); `masks`, when known,
    is uint8 (N, n_classes, H, W) with each character's pixels.
    """

    images: torch.Tensor
    targets: list
    groups: np.ndarray
    names: list[str]
    class_names: list[str]
    paths: list[Path] | None = None
    masks: torch.Tensor | None = None
    audit: "Audit | None" = None


@dataclass
class Audit:
    """What the data holds: files per folder, duplicates, contradictions, scene groups and file issues."""

    files_per_folder: dict[str, int]
    n_files: int
    n_distinct: int
    duplicate_files: int
    largest_duplicate_sets: list[list[str]]
    contradictions: list[dict]
    n_scene_groups: int
    largest_scene_group: int
    frames_per_class: dict[str, int]
    issues: list[FileIssue] = field(default_factory=list)

    def as_dict(self) -> dict:
        """Return the audit as a JSON-ready dict."""
        data = {k: v for k, v in self.__dict__.items() if k != "issues"}
        return {**data, "issues": [i.as_dict() for i in self.issues]}

    def summary(self) -> str:
        """Return the audit as a few readable lines."""
        lines = [f"files: {self.n_files} ({', '.join(f'{k}: {v}' for k, v in self.files_per_folder.items())})",
                 f"distinct images: {self.n_distinct}; exact duplicate files collapsed: {self.duplicate_files}",
                 f"contradicting labels (excluded): {len(self.contradictions)} images",
                 f"scene groups: {self.n_scene_groups} (largest: {self.largest_scene_group} frames)",
                 f"frames used per class: {self.frames_per_class}",
                 f"file issues: {len(self.issues)}"]
        lines += [f"  {i.path}: {i.problem} -> {i.action}" for i in self.issues[:20]]
        return "\n".join(lines)

    def save(self, folder: str | Path) -> Path:
        """Write audit.json and audit.txt into `folder`; return the JSON path."""
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "audit.txt").write_text(self.summary() + "\n")
        path = folder / "audit.json"
        path.write_text(json.dumps(self.as_dict(), indent=1))
        return path


def content_hashes(paths: list[Path]) -> tuple[list[str], dict[str, bytes]]:
    """Return the SHA-1 of each file's bytes and the bytes of each distinct content."""
    hashes, contents = [], {}
    for path in paths:
        try:
            data = Path(path).read_bytes()
        except OSError as error:  # no permission, a broken link, a file gone since the folder was listed
            raise DataError(f"cannot read {path} ({error.strerror or error}): check that the file exists and "
                            "that you may read it") from None
        digest = hashlib.sha1(data).hexdigest()
        hashes.append(digest)
        contents.setdefault(digest, data)
    return hashes, contents


def grey_thumbnails(images: torch.Tensor, size: tuple[int, int] = (18, 32), chunk: int = 512) -> torch.Tensor:
    """Return (N, h*w) float grey thumbnails (area-averaged) of uint8 (N, 3, H, W) frames."""
    weights = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    # In chunks: a float copy of every frame at once would be 4x the uint8 data.
    return torch.cat([F.adaptive_avg_pool2d((images[i:i + chunk].float() * weights).sum(1, keepdim=True), size)
                      .flatten(1) for i in range(0, len(images), chunk)])


# Consecutive frames of one shot correlate down to ~0.7 on the real frames: at 0.8, 57 validation frames (8.5%) kept
# a training frame above 0.7, the same scene, which lifted a 1-nearest-neighbour memoriser's accuracy by ~3 points.
SCENE_THRESHOLD = 0.7


def connected_components(n: int, edges: np.ndarray) -> np.ndarray:
    """Return a component id (0..k-1, in order of first appearance) per node, from an (E, 2) edge array."""
    parent = np.arange(n)

    def root(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for a, b in edges:
        ra, rb = root(a), root(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)
    roots = np.array([root(i) for i in range(n)])
    return np.unique(roots, return_inverse=True)[1] if n else roots


def scene_groups(images: torch.Tensor, threshold: float = SCENE_THRESHOLD, chunk: int = 1024) -> np.ndarray:
    """Return a scene id per frame: frames whose 32x18 grey thumbnails correlate above `threshold`, linked transitively."""
    thumbs = grey_thumbnails(images)
    thumbs = thumbs - thumbs.mean(1, keepdim=True)
    thumbs = thumbs / thumbs.norm(dim=1, keepdim=True).clamp(min=1e-6)  # flat frames correlate with nothing
    edges = []
    for start in range(0, len(thumbs), chunk):
        corr = thumbs[start:start + chunk] @ thumbs.T
        rows, cols = torch.nonzero(corr > threshold, as_tuple=True)
        rows = rows + start
        keep = rows < cols
        edges.append(torch.stack([rows[keep], cols[keep]], 1))
    edge_array = torch.cat(edges).numpy() if edges else np.zeros((0, 2), dtype=np.int64)
    return connected_components(len(thumbs), edge_array)


def collapse_duplicates(files: LabelledFiles, size: tuple[int, int] = FRAME_SIZE,
                        scene_threshold: float = SCENE_THRESHOLD) -> Frames:
    """Return distinct, decodable, consistently labelled frames of `files`, audited.

    Exact copies (same bytes) become one frame; a content found under different targets is a
    contradiction and is excluded; undecodable files are skipped (each copy reported); odd modes and sizes
    are converted. A class left with no frame stops the run (DataError saying why).
    """
    hashes, contents = content_hashes(files.paths)
    files_of: dict[str, list[int]] = {}
    for i, digest in enumerate(hashes):
        files_of.setdefault(digest, []).append(i)
    stacked = torch.empty((len(files_of), 3, *size), dtype=torch.uint8)
    targets, names, paths, contradictions = [], [], [], []
    issues = list(files.skipped)
    used, unreadable = set(), {}  # file indices: those giving a frame; those undecodable, with the problem
    for digest, members in files_of.items():
        member_targets = {files.targets[i] for i in members}
        if len(member_targets) > 1:
            contradictions.append({"files": [str(files.paths[i]) for i in members],
                                   "folders": sorted({files.origins[i] for i in members})})
            continue
        first = files.paths[members[0]]
        image, found = decode_frame(contents[digest], first, size)
        if image is None:  # every copy is a file to fix or remove, so every copy is reported
            issues += [replace(issue, path=str(files.paths[i])) for i in members for issue in found]
            unreadable.update((i, found[0].problem) for i in members)
            continue
        issues += found
        used.update(members)
        stacked[len(targets)].copy_(image)  # copy_ is ~100x faster than item assignment here
        targets.append(files.targets[members[0]])
        names.append(first.name)
        paths.append(first)
    if not targets:
        examples = "; ".join(f"{i.path}: {i.problem}" for i in issues[:3])
        raise DataError(f"no usable image was found among {len(files.paths)} files ({len(contradictions)} "
                        f"contradicting, the rest unreadable, e.g. {examples or 'none'})")
    empty = unusable_classes(files, used, unreadable)
    if empty:
        raise DataError(f"no usable frame is left for {len(empty)} class(es): {'; '.join(empty)}. Replace or fix "
                        "those files, or remove the class (its folder or its CSV rows)")
    stacked = stacked[:len(targets)]
    groups = scene_groups(stacked, scene_threshold)
    duplicate_sets = sorted((m for m in files_of.values() if len(m) > 1), key=len, reverse=True)
    audit = Audit(
        files_per_folder=dict(Counter(files.origins)),
        n_files=len(files.paths),
        n_distinct=len(files_of),
        duplicate_files=len(files.paths) - len(files_of),
        largest_duplicate_sets=[[str(files.paths[i]) for i in m] for m in duplicate_sets[:5]],
        contradictions=contradictions,
        n_scene_groups=int(groups.max()) + 1,
        largest_scene_group=int(np.bincount(groups).max()),
        frames_per_class=class_counts(targets, files.class_names),
        issues=issues,
    )
    return Frames(stacked, targets, groups, names, files.class_names, paths, audit=audit)


def unusable_classes(files: LabelledFiles, used: set[int], unreadable: dict[int, str]) -> list[str]:
    """Say, for each class none of whose files gave a frame, why: files unreadable, contradicting, or missing."""
    reasons = []
    for name, members in class_members(files.targets, files.class_names).items():
        if used.intersection(members):
            continue
        broken = [i for i in members if i in unreadable]
        why = []
        if broken:
            why.append(f"{len(broken)} file(s) could not be read (e.g. {files.paths[broken[0]]}: "
                       f"{unreadable[broken[0]]})")
        if len(members) > len(broken):  # a file neither used nor unreadable was excluded as a contradiction
            why.append(f"{len(members) - len(broken)} file(s) hold images also labelled otherwise (contradictions "
                       "are excluded)")
        if not members:  # only a labels CSV can name a class without a file: all its listed files were missing
            why.append("none of the files listed for it exists")
        reasons.append(f"{name!r}: {', '.join(why)}")
    return reasons


def class_members(targets: list, class_names: list[str]) -> dict[str, list[int]]:
    """Return the positions of the targets naming each class (multilabel tuples: each label present)."""
    members: dict[str, list[int]] = {name: [] for name in class_names}
    for i, target in enumerate(targets):
        for name, flag in (zip(class_names, target) if isinstance(target, tuple) else [(class_names[target], 1)]):
            if flag:
                members[name].append(i)
    return members


def class_counts(targets: list, class_names: list[str]) -> dict[str, int]:
    """Return how many targets name each class (multilabel tuples count once per label present)."""
    return {name: len(members) for name, members in class_members(targets, class_names).items()}
