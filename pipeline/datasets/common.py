"""What every dataset adapter shares: the problem record, label mapping, coding-sheet rows and frame files.

An adapter reads one layout as its owners distribute it and returns (records, problems):

- a record per usable clip: clip_id, subject, episode, emotion (lower case, as the dataset names it),
  label and label_index (its class under the mapping), onset, apex, offset (frame numbers),
  n_frames and frames (paths, in temporal order);
- a ClipProblem per thing wrong with a clip (clip id, file, reason), all of them at once. Clips whose
  emotion the mapping leaves out on purpose (`emotion: null` in params.yaml, e.g. CASME II's "others"
  under MEGC's 3 classes) come back as ClipProblems with `left_out` set: not errors, but listed in
  excluded.csv like the dropped clips, so every clip of the dataset is accounted for.

Sheet-coded layouts (CASME II, CASME, SAMM) share `read_coded_clips`, which turns sheet rows into
records given the layout's column names, clip naming and frame-file naming.
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import BadInputError, DatasetError

MISSING_FRAMES_LISTED = 3      # per clip; the rest are counted in one more problem
HEADER_SEARCH_ROWS = 40        # how far down a sheet its header row may be (SAMM has a 13-row preamble)
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".bmp", ".png")


class ClipProblem(str):
    """One problem with one clip: the line a user reads ("clip sub01_EP02_01f (path): reason"),
    keeping its parts (clip_id, path, reason) for excluded.csv.

    A str, so a list of problems prints and joins like the plain strings it stands for. `left_out`
    marks a clip the label mapping leaves out on purpose: listed, never an error.
    """

    clip_id: str
    path: str
    reason: str
    left_out: bool

    def __new__(cls, clip_id: str, path: str | os.PathLike | None, reason: str, *,
                left_out: bool = False) -> ClipProblem:
        problem = super().__new__(cls, str(BadInputError(clip_id, path, reason)))
        problem.clip_id = clip_id
        problem.path = os.fspath(path) if path is not None else ""
        problem.reason = reason
        problem.left_out = left_out
        return problem


# --- labels ---------------------------------------------------------------------------------------

def map_emotion(clip_id: str, emotion: str, emotions: dict[str, str | None], classes: list[str],
                where: str | os.PathLike, context: str = "") -> tuple[str | None, int | None, list[ClipProblem]]:
    """(label, label_index, problems) of a clip's emotion under a mapping; an emotion mapped to None
    gives a single left-out ClipProblem."""
    prefix = f"{context}: " if context else ""
    if emotion in emotions and emotions[emotion] is None:
        return None, None, [ClipProblem(clip_id, where, f"{prefix}emotion {emotion!r} is left out by the label "
                                                        "mapping", left_out=True)]
    label = emotions.get(emotion)
    if label is None:
        known = ", ".join(sorted(e for e, c in emotions.items() if c is not None))
        return None, None, [ClipProblem(clip_id, where, f"{prefix}emotion {emotion!r} is not in the label mapping "
                                                        f"({known})")]
    if label not in classes:
        return None, None, [ClipProblem(clip_id, where, f"{prefix}emotion {emotion!r} maps to {label!r}, which is "
                                                        f"not one of the classes {classes}")]
    return label, classes.index(label), []


# --- cells ----------------------------------------------------------------------------------------

def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() == ""


def frame_number(value: Any) -> int | None:
    """46, 46.0, '46' -> 46; anything else (blank, '/', -1, 46.5) -> None."""
    if is_blank(value):
        return None
    match = re.fullmatch(r"(\d+)(?:\.0+)?", str(value).strip())
    return int(match.group(1)) if match else None


def subject_number(value: Any) -> int | None:
    """1, 1.0, '01', 'sub01', '006' -> the number."""
    if is_blank(value):
        return None
    match = re.fullmatch(r"(?:sub)?0*(\d+)(?:\.0+)?", str(value).strip(), flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def cell_text(value: Any) -> str:
    """A cell as trimmed text; whole numbers typed as floats (6.0) lose their '.0'."""
    if is_blank(value):
        return ""
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value).strip()


# --- sheets ---------------------------------------------------------------------------------------

def read_sheet_rows(sheet: Path, columns: list[str], dataset: str) -> list[tuple[int, dict[str, Any]]]:
    """(spreadsheet row number, {column: cell}) for every non-empty row below the header row.

    The header is the first row (of the first HEADER_SEARCH_ROWS) that holds every name in `columns`,
    so a preamble above it (SAMM's) is skipped; names are matched after trimming spaces. .xlsx is read
    with openpyxl, .xls with xlrd.
    """
    try:
        table = read_xls(sheet) if sheet.suffix.lower() == ".xls" else pd.read_excel(sheet, header=None, dtype=object)
    except Exception as error:   # corrupt files raise zipfile/openpyxl/xlrd/ValueError errors alike
        raise DatasetError(f"{dataset} at {sheet.parent}", [f"{sheet}: cannot be read ({error})"]) from error
    header_row = None
    for row in range(min(HEADER_SEARCH_ROWS, len(table))):
        names = {cell_text(value) for value in table.iloc[row]}
        if set(columns) <= names:
            header_row = row
            break
    if header_row is None:
        found = [cell_text(v) for v in table.iloc[0]] if len(table) else []
        missing = [c for c in columns if c not in found]
        raise DatasetError(f"{dataset} at {sheet.parent}",
                           [f"{sheet}: no header row with the columns {', '.join(columns)} "
                            f"(first row lacks {', '.join(missing)})"])
    header = [cell_text(value) for value in table.iloc[header_row]]
    position = {name: header.index(name) for name in columns}
    rows = []
    for index in range(header_row + 1, len(table)):
        cells = {name: table.iat[index, position[name]] for name in columns}
        if all(is_blank(value) for value in cells.values()):
            continue
        rows.append((index + 1, cells))          # spreadsheet rows count from 1
    return rows


def read_xls(sheet: Path) -> pd.DataFrame:
    """The first worksheet of a legacy .xls file (CASME's), read with xlrd directly (pandas' xlrd
    engine is deprecated), as a header-less table of cell values."""
    import xlrd
    with xlrd.open_workbook(os.fspath(sheet), on_demand=True) as book:
        worksheet = book.sheet_by_index(0)
        return pd.DataFrame([worksheet.row_values(r) for r in range(worksheet.nrows)], dtype=object)


@dataclass(frozen=True)
class SheetLayout:
    """How a sheet-coded dataset names things: its column names, and clip ids, subjects, clip folders
    and frame files from a row's subject number and filename."""

    dataset: str                                          # for messages: "CASME II"
    subject: str                                          # column names
    filename: str
    onset: str
    apex: str
    offset: str
    emotion: str
    subject_name: Callable[[int], str]                    # 1 -> "sub01"
    clip_id: Callable[[str, str], str]                    # (subject name, filename) -> clip id
    clip_folder: Callable[[str, str], Path]               # (subject name, filename) -> folder
    frame_file: Callable[[str, str, int], str]            # (subject name, filename, n) -> expected name
    frame_pattern: Callable[[str, str], re.Pattern]       # matches frame names; group 1 is the number
    subject_folder: re.Pattern                            # names of subject folders ("sub\\d+")

    @property
    def columns(self) -> list[str]:
        return [self.subject, self.filename, self.onset, self.apex, self.offset, self.emotion]


def read_coded_clips(rows: list[tuple[int, dict[str, Any]]], sheet: Path, layout: SheetLayout,
                     emotions: dict[str, str | None], classes: list[str],
                     subjects_root: Path | None = None) -> tuple[list[dict], list[ClipProblem]]:
    """Records (sorted by clip id) of the rows without problems, and the problems of the others.

    With `subjects_root`, every folder there named like a subject (layout.subject_folder) that no row
    names is a problem too: a wrong or truncated sheet.
    """
    records: list[dict] = []
    problems: list[ClipProblem] = []
    rows_of_clip: dict[str, list[int]] = defaultdict(list)
    named_subjects: set[str] = set()
    for row_number, row in rows:
        record, row_problems = parse_coded_row(row, row_number, sheet, layout, emotions, classes)
        problems += row_problems
        if record is None:
            continue
        named_subjects.add(record["subject"])
        rows_of_clip[record["clip_id"]].append(row_number)
        if len(rows_of_clip[record["clip_id"]]) > 1 or any(p.left_out for p in row_problems):
            continue                          # a duplicate (reported below), or left out on purpose
        folder = layout.clip_folder(record["subject"], record["episode"])
        frame_problems = find_numbered_frames(record, folder, layout.frame_pattern(record["subject"],
                                                                                  record["episode"]),
                                              lambda n, r=record: layout.frame_file(r["subject"], r["episode"], n))
        problems += frame_problems
        if not row_problems and not frame_problems:
            records.append(record)

    if subjects_root is not None and subjects_root.is_dir():
        problems += [ClipProblem(name, subjects_root / name, f"subject folder has no clips in {sheet.name}")
                     for name in sub_folders(subjects_root)
                     if layout.subject_folder.fullmatch(name) and name not in named_subjects]
    duplicated = {clip_id: numbers for clip_id, numbers in rows_of_clip.items() if len(numbers) > 1}
    for clip_id, numbers in duplicated.items():
        rows_text = ", ".join(str(n) for n in numbers)
        problems.append(ClipProblem(clip_id, sheet, f"duplicate clip id: sheet rows {rows_text}"))
    records = sorted((r for r in records if r["clip_id"] not in duplicated), key=lambda r: r["clip_id"])
    return records, problems


def parse_coded_row(row: dict[str, Any], row_number: int, sheet: Path, layout: SheetLayout,
                    emotions: dict[str, str | None], classes: list[str]) -> tuple[dict | None, list[ClipProblem]]:
    """A clip record from one sheet row (None if the row cannot name a clip) and its problems."""
    number = subject_number(row[layout.subject])
    episode = cell_text(row[layout.filename])
    if number is None or not episode:
        return None, [ClipProblem(f"row {row_number}", sheet,
                                  f"{layout.subject} {row[layout.subject]!r} / {layout.filename} "
                                  f"{row[layout.filename]!r} do not name a clip")]
    subject = layout.subject_name(number)
    clip_id = layout.clip_id(subject, episode)
    problems = []

    def problem(reason: str) -> None:
        problems.append(ClipProblem(clip_id, sheet, f"row {row_number}: {reason}"))

    onset, apex, offset = (frame_number(row[c]) for c in (layout.onset, layout.apex, layout.offset))
    for column, value in ((layout.onset, onset), (layout.offset, offset)):
        if value is None:
            problem(f"{column} {row[column]!r} is not a frame number")
    if onset is not None and offset is not None and onset > offset:
        problem(f"frame range: {layout.onset} {onset} is after {layout.offset} {offset}")
    apex_text = cell_text(row[layout.apex])
    if apex_text in ("/", "-1", ""):
        shown = "blank" if not apex_text else f"'{apex_text}'"
        problem(f"{layout.apex} is {shown} (no apex coded)")
    elif apex is None:
        problem(f"{layout.apex} {row[layout.apex]!r} is not a frame number")
    elif onset is not None and offset is not None and not onset <= apex <= offset:
        problem(f"{layout.apex} {apex} is outside the clip's frames {onset}..{offset}")

    emotion = cell_text(row[layout.emotion]).lower()
    label, label_index, label_problems = map_emotion(clip_id, emotion, emotions, classes, sheet,
                                                     f"row {row_number}")
    if label_problems and label_problems[0].left_out:
        problems = label_problems             # its other cells do not matter: the clip is not used
    else:
        problems += label_problems

    record = {"clip_id": clip_id, "subject": subject, "episode": episode, "emotion": emotion,
              "label": label, "label_index": label_index, "onset": onset, "apex": apex, "offset": offset,
              "n_frames": offset - onset + 1 if onset is not None and offset is not None else None,
              "frames": []}
    return record, problems


# --- frame files ----------------------------------------------------------------------------------

def numbered_files(folder: Path, pattern: re.Pattern) -> dict[int, Path]:
    """Frame number -> file for the files in `folder` whose names `pattern` matches (group 1: the
    number, zero-padded or not)."""
    files: dict[int, Path] = {}
    for name in sorted(os.listdir(folder)):
        match = pattern.fullmatch(name)
        if match:
            files.setdefault(int(match.group(1)), folder / name)
    return files


def find_numbered_frames(record: dict, folder: Path, pattern: re.Pattern,
                         expected_name: Callable[[int], str]) -> list[ClipProblem]:
    """Fill record["frames"] with the files of frames onset..offset in `folder`; problems for a
    missing folder or missing files. A record with an unusable frame range gets no frames."""
    clip_id = record["clip_id"]
    if not folder.is_dir():
        return [ClipProblem(clip_id, folder, "clip folder is missing")]
    onset, offset = record["onset"], record["offset"]
    if onset is None or offset is None or onset > offset:
        return []
    files = numbered_files(folder, pattern)
    frames = [files.get(n, folder / expected_name(n)) for n in range(onset, offset + 1)]
    missing = [n for n in range(onset, offset + 1) if n not in files]
    problems = [ClipProblem(clip_id, folder / expected_name(n), "frame file is missing")
                for n in missing[:MISSING_FRAMES_LISTED]]
    if len(missing) > MISSING_FRAMES_LISTED:
        problems.append(ClipProblem(clip_id, folder, f"{len(missing) - MISSING_FRAMES_LISTED} more frame files "
                                                     f"of {expected_name(onset)}..{expected_name(offset)} are "
                                                     "missing"))
    record["frames"] = frames
    return problems


def sub_folders(folder: Path) -> list[str]:
    return sorted(entry.name for entry in os.scandir(folder) if entry.is_dir() and not entry.name.startswith("."))
