"""Frame files and folders of a dataset's tree: numbered frame files, folders named as the sheets spell
them but in another case, subject folders (pipeline/datasets/sheets.py reads the sheets naming them).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

from pipeline.errors import DatasetError

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".bmp", ".png")
MISSING_FRAMES_LISTED = 3      # per clip; the rest are counted in one more problem
LAST_NUMBER = re.compile(r"(?:.*\D)?(\d+)\.(?:jpe?g|png|bmp)", re.IGNORECASE)   # img0046.jpg, 46.jpg -> 46


def numbered_files(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
    """Frame number -> file for the files in `folder` whose names `pattern` matches (group 1: the
    number, zero-padded or not)."""
    files: dict[int, Path] = {}
    for name in sorted(os.listdir(folder)):
        match = pattern.fullmatch(name)
        if match:
            files.setdefault(int(match.group(1)), folder / name)
    return files


def numbered_like(folder: Path, n: int) -> str:
    """The name frame `n` would have in `folder`, after the numbered files there (same prefix, padding
    and suffix as the first one); `<n>.jpg` if it has none."""
    if folder.is_dir():
        for name in sorted(os.listdir(folder)):
            match = LAST_NUMBER.fullmatch(name)
            if match:
                digits = match.group(1)
                width = len(digits) if digits.startswith("0") else 0
                return f"{name[:match.start(1)]}{n:0{width}d}{name[match.end(1):]}"
    return f"{n}.jpg"


def child_ignoring_case(parent: Path, name: str) -> Path:
    """parent / name, or the folder in `parent` whose name differs from it only in case (copies of a
    dataset spell some folders differently from its sheet)."""
    path = parent / name
    if path.exists() or not parent.is_dir():
        return path
    matches = [entry for entry in sub_folders(parent) if entry.lower() == name.lower()]
    return parent / matches[0] if len(matches) == 1 else path


def sub_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))


def find_subjects_root(dataset: str, root: Path, subject_folder: re.Pattern, depth: int = 2) -> Path:
    """The folder holding the subject folders: `root` or one up to `depth` levels below it."""
    level = [root]
    for _ in range(depth + 1):
        for folder in level:
            if folder.is_dir() and any(subject_folder.fullmatch(name) for name in sub_folders(folder)):
                return folder
        level = [folder / name for folder in level if folder.is_dir() for name in sub_folders(folder)]
    raise DatasetError(f"{dataset} at {root}", [f"no subject folders ({subject_folder.pattern}) in {root} or "
                                                f"{depth} levels below it"])
