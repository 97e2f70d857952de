"""What every dataset adapter shares: the problem record, label mapping and the coding-sheet engine.

An adapter reads one layout as its owners distribute it and returns (records, problems):

- a record per usable clip: clip_id, subject, episode, emotion (lower case, as the dataset names it),
  label and label_index (its class under the mapping), onset, apex, offset (frame numbers),
  n_frames and frames (paths, in temporal order);
- a ClipProblem per thing wrong with a clip (clip id, file, reason), all of them at once. Clips whose
  emotion the mapping leaves out on purpose (`emotion: null` in params.yaml, e.g. CASME II's "others"
  under MEGC's 3 classes) come back as ClipProblems with `left_out` set: not errors, but listed in
  excluded.csv like the dropped clips, so every clip of the dataset is accounted for.

A record also says where its apex comes from (`apex_source`: "sheet", or "estimated" where the sheet
codes none, e.g. CASME II's '/', SAMM's -1, SMIC's folders: apex is then None and the align stage
estimates it, pipeline/apex.py) and carries `notes`: what was read differently from the sheet and why
(a correction from pipeline/datasets/corrections.csv, an offset past the clip's last frame file, an
apex outside the clip). A note is not a problem: the clip is kept.

Sheet-coded layouts (all but SMIC) share `read_coded_clips`, which turns sheet rows into
records given the layout's column names, clip naming and frame-file naming, after applying the
known corrections of the owners' sheets (`Correction`s, from pipeline/datasets/corrections.py). The
helpers for frame files and folders are in pipeline/datasets/frames.py.
"""

from __future__ import annotations

import fnmatch
import os
import re
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.datasets.frames import MISSING_FRAMES_LISTED, numbered_files, sub_folders
from pipeline.errors import BadInputError, DatasetError

HEADER_SEARCH_ROWS = 40        # how far down a sheet its header row may be (SAMM has a 13-row preamble)
NO_APEX = ("/", "-1", "")       # how sheets code "no apex": CASME II '/', SAMM -1, a blank cell


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
    if label is None and "+" in emotion:
        return None, None, [ClipProblem(clip_id, where, f"{prefix}emotion {emotion!r} names several emotions and the "
                                                        "label mapping does not name the combination: left out",
                                        left_out=True)]
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


def s_subject(value: Any) -> str | None:
    """1, 'S01', 's1' -> 'S01' (MMEW's and 4DME's subject names)."""
    number = subject_number(re.sub(r"^[sS]", "", cell_text(value)))
    return f"S{number:02d}" if number is not None else None


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
    so a preamble above it (SAMM's) is skipped; names are matched after trimming spaces. The first
    worksheet with such a row is read (CAS(ME)3's labels are on a worksheet of their own). .xlsx is read
    with openpyxl, .xls with xlrd.
    """
    try:
        tables = ([read_xls(sheet)] if sheet.suffix.lower() == ".xls" else
                  list(pd.read_excel(sheet, header=None, dtype=object, sheet_name=None).values()))
    except Exception as error:   # corrupt files raise zipfile/openpyxl/xlrd/ValueError errors alike
        raise DatasetError(f"{dataset} at {sheet.parent}", [f"{sheet}: cannot be read ({error})"]) from error
    header_row = None
    for table in tables:
        for row in range(min(HEADER_SEARCH_ROWS, len(table))):
            names = {cell_text(value) for value in table.iloc[row]}
            if set(columns) <= names:
                header_row = row
                break
        if header_row is not None:
            break
    if header_row is None:
        table = tables[0] if tables else pd.DataFrame()
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


def single_sheet(dataset: str, root: Path, pattern: str, folders: Sequence[Path]) -> Path:
    """The one coding sheet whose name matches `pattern` (ignoring case) in `folders` (Excel's ~$ lock
    files skipped), or a DatasetError saying what was found."""
    sheets = sorted({folder / name for folder in folders if folder.is_dir() for name in os.listdir(folder)
                     if fnmatch.fnmatch(name.lower(), pattern.lower()) and not name.startswith("~$")})
    if len(sheets) != 1:
        found = ", ".join(p.name for p in sheets) or "none"
        where = " or ".join(dict.fromkeys(str(folder) for folder in folders))
        raise DatasetError(f"{dataset} at {root}", [f"need one coding sheet {pattern} in {where} (found {found})"])
    return sheets[0]


def sheet_rows_and_frames(dataset: str, root: Path, pattern: str, frames_dir: str,
                          columns: list[str]) -> tuple[Path, list[tuple[int, dict[str, Any]]], Path]:
    """(sheet, its rows, frames folder) of a layout with one sheet matching `pattern` in `root` beside the
    folder `frames_dir`; a DatasetError if either is missing."""
    sheet = single_sheet(dataset, root, pattern, (root,))
    frames_root = root / frames_dir
    if not frames_root.is_dir():
        raise DatasetError(f"{dataset} at {root}", [f"frames folder {frames_root} does not exist"])
    return sheet, read_sheet_rows(sheet, columns, dataset), frames_root


def read_xls(sheet: Path) -> pd.DataFrame:
    """The first worksheet of a legacy .xls file (CASME's), read with xlrd directly (pandas' xlrd
    engine is deprecated), as a header-less table of cell values."""
    import xlrd
    with xlrd.open_workbook(os.fspath(sheet), on_demand=True) as book:
        worksheet = book.sheet_by_index(0)
        return pd.DataFrame([worksheet.row_values(r) for r in range(worksheet.nrows)], dtype=object)


# --- sheet-coded clips ----------------------------------------------------------------------------

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
    subject_cell: Callable[[Any], str | None] | None = None   # subject name from its cell, if not from a number

    @property
    def columns(self) -> list[str]:
        return [self.subject, self.filename, self.onset, self.apex, self.offset, self.emotion]


def read_coded_clips(rows: list[tuple[int, dict[str, Any]]], sheet: Path, layout: SheetLayout,
                     emotions: dict[str, str | None], classes: list[str],
                     subjects_root: Path | None = None,
                     corrections: Sequence[Correction] = ()) -> tuple[list[dict], list[ClipProblem]]:
    """Records (sorted by clip id) of the rows without problems, and the problems of the others.

    `corrections` (of this dataset) are applied to the rows they name before they are read. With
    `subjects_root`, every folder there named like a subject (layout.subject_folder) that no row
    names is a problem too: a wrong or truncated sheet.
    """
    records: list[dict] = []
    problems: list[ClipProblem] = []
    rows_of_clip: dict[str, list[int]] = defaultdict(list)
    named_subjects: set[str] = set()
    for row_number, row in rows:
        record, row_problems = parse_coded_row(row, row_number, sheet, layout, emotions, classes, corrections)
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
                                              lambda n, r=record: layout.frame_file(r["subject"], r["episode"], n),
                                              where=f"row {row_number}: {layout.offset}")
        problems += frame_problems
        check_apex(record, f"row {row_number}: {layout.apex}")
        if not row_problems and not frame_problems:
            records.append(record)

    if subjects_root is not None and subjects_root.is_dir():
        named = {name.lower() for name in named_subjects}
        problems += [ClipProblem(name, subjects_root / name, f"subject folder has no clips in {sheet.name}")
                     for name in sub_folders(subjects_root)
                     if layout.subject_folder.fullmatch(name) and name.lower() not in named]
    duplicated = {clip_id: numbers for clip_id, numbers in rows_of_clip.items() if len(numbers) > 1}
    for clip_id, numbers in duplicated.items():
        rows_text = ", ".join(str(n) for n in numbers)
        problems.append(ClipProblem(clip_id, sheet, f"duplicate clip id: sheet rows {rows_text}"))
    records = sorted((r for r in records if r["clip_id"] not in duplicated), key=lambda r: r["clip_id"])
    return records, problems


def parse_coded_row(row: dict[str, Any], row_number: int, sheet: Path, layout: SheetLayout,
                    emotions: dict[str, str | None], classes: list[str],
                    corrections: Sequence[Correction] = ()) -> tuple[dict | None, list[ClipProblem]]:
    """A clip record from one sheet row (None if the row cannot name a clip) and its problems."""
    if layout.subject_cell is not None:
        subject = layout.subject_cell(row[layout.subject])
    else:
        number = subject_number(row[layout.subject])
        subject = layout.subject_name(number) if number is not None else None
    episode = cell_text(row[layout.filename])
    if subject is None or not episode:
        return None, [ClipProblem(f"row {row_number}", sheet,
                                  f"{layout.subject} {row[layout.subject]!r} / {layout.filename} "
                                  f"{row[layout.filename]!r} do not name a clip")]
    clip_id = layout.clip_id(subject, episode)
    problems = []

    def problem(reason: str) -> None:
        problems.append(ClipProblem(clip_id, sheet, f"row {row_number}: {reason}"))

    row, notes = apply_corrections(row, clip_id, layout, corrections, f"row {row_number}")
    onset, apex, offset = (frame_number(row[c]) for c in (layout.onset, layout.apex, layout.offset))
    for column, value in ((layout.onset, onset), (layout.offset, offset)):
        if value is None:
            problem(f"{column} {row[column]!r} is not a frame number")
    if onset is not None and offset is not None and onset > offset:
        problem(f"frame range: {layout.onset} {onset} is after {layout.offset} {offset}")
    apex_text = cell_text(row[layout.apex])
    apex_source = "sheet"
    if apex_text in NO_APEX:
        apex_source = "estimated"
        shown = "blank" if not apex_text else f"'{apex_text}'"
        notes.append(f"row {row_number}: {layout.apex} is {shown} (no apex coded): estimated from the aligned face")
    elif apex is None:
        problem(f"{layout.apex} {row[layout.apex]!r} is not a frame number")

    emotion = cell_text(row[layout.emotion]).lower()
    label, label_index, label_problems = map_emotion(clip_id, emotion, emotions, classes, sheet,
                                                     f"row {row_number}")
    if label_problems and label_problems[0].left_out:
        problems = label_problems             # its other cells do not matter: the clip is not used
    else:
        problems += label_problems

    record = {"clip_id": clip_id, "subject": subject, "episode": episode, "emotion": emotion,
              "label": label, "label_index": label_index, "onset": onset,
              "apex": apex if apex_source == "sheet" else None, "apex_source": apex_source, "offset": offset,
              "n_frames": offset - onset + 1 if onset is not None and offset is not None else None,
              "frames": [], "notes": notes}
    return record, problems


def check_apex(record: dict, where: str) -> None:
    """A coded apex outside the clip's frames (onset..offset, after any clamping of the offset) is noted
    and treated as not coded: the align stage estimates it."""
    apex, onset, offset = record["apex"], record["onset"], record["offset"]
    if apex is None or onset is None or offset is None or onset <= apex <= offset:
        return
    side = f"after the offset {offset}" if apex > offset else f"before the onset {onset}"
    record["notes"].append(f"{where} {apex} is {side}: estimated from the aligned face instead")
    record["apex"], record["apex_source"] = None, "estimated"


def find_numbered_frames(record: dict, folder: Path, pattern: re.Pattern,
                         expected_name: Callable[[int], str], where: str = "offset") -> list[ClipProblem]:
    """Fill record["frames"] with the files of frames onset..offset in `folder`; problems for a
    missing folder or missing files. A record with an unusable frame range gets no frames.

    An offset past the clip's last frame file (every frame from the onset to that file present, none
    after it) is a quirk of the sheets, not a missing frame: the clip ends at its last file, and a
    note says so.
    """
    clip_id = record["clip_id"]
    if not folder.is_dir():
        return [ClipProblem(clip_id, folder, "clip folder is missing")]
    onset, offset = record["onset"], record["offset"]
    if onset is None or offset is None or onset > offset:
        return []
    files = numbered_files(folder, pattern)
    last = max((n for n in files if n >= onset), default=None)
    if last is not None and onset < last < offset and all(n in files for n in range(onset, last + 1)):
        record.setdefault("notes", []).append(f"{where} {offset} is past the clip's last frame file "
                                              f"{files[last].name}: the clip ends at frame {last}")
        offset = last
        record["offset"], record["n_frames"] = last, last - onset + 1
    frames = [files[n] if n in files else folder / expected_name(n) for n in range(onset, offset + 1)]
    missing = [n for n in range(onset, offset + 1) if n not in files]
    problems = [ClipProblem(clip_id, folder / expected_name(n), "frame file is missing")
                for n in missing[:MISSING_FRAMES_LISTED]]
    if len(missing) > MISSING_FRAMES_LISTED:
        problems.append(ClipProblem(clip_id, folder, f"{len(missing) - MISSING_FRAMES_LISTED} more frame files "
                                                     f"of {expected_name(onset)}..{expected_name(offset)} are "
                                                     "missing"))
    record["frames"] = frames
    return problems


# --- corrections of the owners' sheets, applied to their rows --------------------------------------

@dataclass(frozen=True)
class Correction:
    """One known error of an owner's sheet: in `dataset` (a layout name), clip `clip`'s `field` reads
    `sheet` and should read `corrected`, because of `source`."""

    dataset: str
    clip: str
    field: str
    sheet: str
    corrected: str
    source: str

    def __str__(self) -> str:
        return f"{self.dataset} {self.clip} {self.field}: sheet {self.sheet} -> {self.corrected} ({self.source})"


def apply_corrections(row: dict[str, Any], clip_id: str, layout: SheetLayout, corrections: Sequence[Correction],
                      where: str) -> tuple[dict[str, Any], list[str]]:
    """The row with the corrections of its clip applied, and a note per correction. A correction whose
    sheet value is not what the row holds (a later, fixed sheet) is not applied, and says so."""
    notes: list[str] = []
    columns = {"onset": layout.onset, "apex": layout.apex, "offset": layout.offset, "emotion": layout.emotion}
    for correction in corrections:
        if correction.clip != clip_id:
            continue
        column = columns[correction.field]
        found = cell_text(row[column])
        if found.lower() != correction.sheet.lower():
            notes.append(f"{where}: correction of {column} not applied: the sheet has {found!r}, the correction "
                         f"expects {correction.sheet!r} ({correction.source})")
            continue
        row = {**row, column: correction.corrected}
        notes.append(f"{where}: {column} {correction.sheet} corrected to {correction.corrected} ({correction.source})")
    return row, notes
