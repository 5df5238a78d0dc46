"""Where labelled frames come from: the course's folders, a folder-per-class tree, or a CSV of path,labels."""
from __future__ import annotations

import difflib
import warnings
from dataclasses import dataclass, field
from pathlib import Path

from common.data import read_csv_table
from common.errors import ConfigError, DataError
from rickmorty.images import FileIssue, list_images

# The course's folders and what each means per label mode. Targets: a class index (binary,
# multiclass) or a 0/1 tuple per class (multilabel). "Both" is left out of the 3-class task, as in the course.
COURSE_LAYOUT = {
    "binary": (["not_rick", "rick"], {"altdata/AllMortyImages": 0, "altdata/AllRickImages": 1}),
    "multilabel": (["rick", "morty"], {"data/ThreeClassModel/AllRickImages": (1, 0),
                                       "data/ThreeClassModel/AllMortyImages": (0, 1),
                                       "data/ThreeClassModel/Both": (1, 1),
                                       "data/ThreeClassModel/Neither": (0, 0)}),
    "multiclass": (["rick", "morty", "neither"], {"data/ThreeClassModel/AllRickImages": 0,
                                                  "data/ThreeClassModel/AllMortyImages": 1,
                                                  "data/ThreeClassModel/Neither": 2}),
}
MULTILABEL_SEPARATOR = ";"
RARE_LABEL_ROWS, RARE_LABEL_CONTRAST = 2, 10  # a label on <= 2 rows, spelled like one on >= 20: likely a typo


@dataclass
class LabelledFiles:
    """Image files with one target each, the folder (or CSV label) each came from, and the files skipped."""

    paths: list[Path]
    targets: list
    origins: list[str]
    class_names: list[str]
    skipped: list[FileIssue] = field(default_factory=list)


def is_course_layout(root: Path) -> bool:
    """Return True if `root` holds the course's altdata/ and data/ThreeClassModel/ folders."""
    return (root / "altdata").is_dir() and (root / "data" / "ThreeClassModel").is_dir()


def class_folders(root: Path) -> list[str]:
    """Return the sub-folder names of `root`, sorted (the ImageFolder class order)."""
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    return sorted(p.name for p in root.iterdir() if p.is_dir() and not p.name.startswith("."))


def source_class_names(root: Path | None, task: str, labels_csv: Path | None = None) -> list[str]:
    """Return the class names a data source has for a label mode, without reading any image."""
    if task not in COURSE_LAYOUT:
        raise ConfigError(f"unknown task {task!r}; choose binary, multilabel or multiclass")
    if labels_csv is not None:
        return csv_class_names(read_label_rows(labels_csv))
    if root is None or is_course_layout(root):
        return list(COURSE_LAYOUT[task][0])
    names = class_folders(root)
    if task == "multilabel":
        raise ConfigError(f"{root}: a folder-per-class tree gives one label per image; for multi-label data give "
                          f"data.labels_csv (path,labels with labels joined by '{MULTILABEL_SEPARATOR}')")
    if task == "binary" and len(names) != 2:
        raise ConfigError(f"{root}: the binary task needs exactly two class folders, found {names}")
    if len(names) < 2:
        raise DataError(f"{root}: found class folders {names}; at least two are needed (one folder per class)")
    return names


def labelled_folders(folders: dict[Path, object], class_names: list[str]) -> LabelledFiles:
    """Return the images of each folder with the folder's target; an empty or missing folder stops the run."""
    files = LabelledFiles([], [], [], class_names)
    for folder, target in folders.items():
        images, others = list_images(folder)
        if not images:
            raise DataError(f"class folder {folder} holds no images: add images or remove the folder")
        files.paths += images
        files.targets += [target] * len(images)
        files.origins += [folder.name] * len(images)
        files.skipped += others
    return files


def course_files(root: Path, task: str) -> LabelledFiles:
    """Return the course layout's files for a label mode (see COURSE_LAYOUT)."""
    class_names, folders = COURSE_LAYOUT[task]
    return labelled_folders({root / rel: target for rel, target in folders.items()}, list(class_names))


def folder_tree_files(root: Path, task: str) -> LabelledFiles:
    """Return a folder-per-class tree's files (ImageFolder convention: classes in alphabetical order)."""
    names = source_class_names(root, task)
    return labelled_folders({root / name: i for i, name in enumerate(names)}, names)


def read_label_rows(path: Path) -> list[tuple[int, str, list[str]]]:
    """Read a CSV with columns path,label (labels joined by ';' for multi-label) into (line, path, labels) rows."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"labels CSV {path} does not exist")
    header, table_rows = read_csv_table(path)
    if not {"path", "label"} <= set(header or []):
        raise DataError(f"{path}: needs the columns 'path' and 'label', the header has {header}")
    rows = [(line, row["path"] or "",
             [x.strip() for x in (row["label"] or "").split(MULTILABEL_SEPARATOR) if x.strip()])
            for line, row in table_rows]
    if not rows:
        raise DataError(f"{path} has no rows")
    check_label_spelling(path, rows)
    return rows


def check_label_spelling(path: Path, rows: list[tuple[int, str, list[str]]]) -> None:
    """Refuse labels that differ only in case, and warn of a rare label spelled like a common one.

    Every distinct label becomes a class, so a typo ('Rick', 'rikc') would silently add one.
    """
    lines: dict[str, list[int]] = {}
    for line, _, labels in rows:
        for label in labels:
            lines.setdefault(label, []).append(line)
    by_case: dict[str, str] = {}
    for label in sorted(lines):
        other = by_case.setdefault(label.casefold(), label)
        if other != label:
            raise DataError(f"{path}: labels {other!r} and {label!r} differ only in case (first on lines "
                            f"{lines[other][0]} and {lines[label][0]}); every distinct label is a class: spell them alike")
    common = [label for label, used in lines.items() if len(used) >= RARE_LABEL_CONTRAST * RARE_LABEL_ROWS]
    for label, used in lines.items():
        if len(used) > RARE_LABEL_ROWS:
            continue  # a label this common is meant
        close = difflib.get_close_matches(label, common, n=1, cutoff=0.75)
        if close:
            warnings.warn(f"{path}: label {label!r} is used on {len(used)} row(s) (line {used[0]}) and looks like "
                          f"{close[0]!r} ({len(lines[close[0]])} rows): a typo? Every distinct label is a class",
                          stacklevel=2)


def csv_class_names(rows: list[tuple[int, str, list[str]]]) -> list[str]:
    """Return the sorted set of labels used in CSV rows."""
    return sorted({label for _, _, labels in rows for label in labels})


def csv_files(labels_csv: Path, task: str, root: Path | None = None) -> LabelledFiles:
    """Return the files a labels CSV lists (paths relative to `root`, else to the CSV's folder)."""
    rows = read_label_rows(labels_csv)
    names = csv_class_names(rows)
    base = root or Path(labels_csv).parent
    files = LabelledFiles([], [], [], names)
    for line, rel, labels in rows:
        if task != "multilabel" and len(labels) != 1:
            raise DataError(f"{labels_csv} line {line}: {rel} has labels {labels}; the {task} task needs exactly "
                            "one label per image")
        if task == "binary" and len(names) != 2:
            raise DataError(f"{labels_csv}: the binary task needs two labels, found {names}")
        path = base / rel
        if not path.is_file():
            files.skipped.append(FileIssue(str(path), f"listed in {labels_csv} line {line} but missing", "skipped"))
            continue
        files.paths.append(path)
        files.targets.append(tuple(int(n in labels) for n in names) if task == "multilabel" else names.index(labels[0]))
        files.origins.append("+".join(labels) or "none")
    if not files.paths:
        raise DataError(f"{labels_csv}: none of the listed image files exists under {base} (paths are read relative "
                        "to data_dir when it is set, else to the CSV's folder)")
    return files


def find_labelled_files(root: Path, task: str, labels_csv: Path | None = None) -> LabelledFiles:
    """Return the labelled files of any supported source: labels CSV, course layout, or folder per class."""
    if labels_csv is not None:
        return csv_files(Path(labels_csv), task, root)
    if not root.is_dir():
        raise DataError(f"data folder {root} does not exist")
    return course_files(root, task) if is_course_layout(root) else folder_tree_files(root, task)
