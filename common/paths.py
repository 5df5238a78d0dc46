"""Find the course's real data: $DEEPBIO_DATA, else ../shared/data beside the project."""
from __future__ import annotations

import os
from pathlib import Path

from common.errors import DataError

PROJECT_ROOT = Path(__file__).resolve().parent.parent


def data_root() -> Path | None:
    """Return the folder holding the course data, or None when none is found."""
    env = os.environ.get("DEEPBIO_DATA")
    if env:
        return Path(env).expanduser().resolve()
    for candidate in (PROJECT_ROOT.parent / "shared" / "data", Path.cwd().parent / "shared" / "data"):
        if candidate.is_dir():
            return candidate.resolve()
    return None


def course_data(relative: str) -> Path:
    """Return an existing path inside the course data, or raise DataError saying how to get it."""
    root = data_root()
    if root is None:
        raise DataError(
            "The course data was not found. Download the folder 'data/' of the public course repository "
            "cap76/AZCourse_Winter2022 and set DEEPBIO_DATA to it (or place it at ../shared/data)."
        )
    path = root / relative
    if not path.exists():
        where = f"DEEPBIO_DATA={root}" if os.environ.get("DEEPBIO_DATA") else f"the course data found at {root}"
        raise DataError(f"{path} does not exist: {where} does not hold the course's '{relative}'.")
    return path


COURSE_PREFIX = "course:"


def data_path(path: str | Path) -> Path:
    """Return a file's path; "course:<relative>" names one inside the course data, wherever that is (see data_root)."""
    text = str(path)
    return course_data(text[len(COURSE_PREFIX):]) if text.startswith(COURSE_PREFIX) else Path(path)


def shown_path(path: str | Path) -> str:
    """Return a path as given, plus the file a "course:" path names now (for run logs: the data actually used)."""
    text, root = str(path), data_root()
    return f"{text} ({root / text[len(COURSE_PREFIX):]})" if text.startswith(COURSE_PREFIX) and root else text
