"""CASME II as its owners distribute it: a coding sheet plus one folder of JPEG frames per clip.

    <root>/CASME2-coding-20140508.xlsx            (any CASME2-coding-*.xlsx; the synthetic tree has
                                                   CASME2-coding-synthetic.xlsx)
    <root>/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ... img86.jpg

Sheet columns: Subject (1 or '01'), Filename (the episode, e.g. EP02_01f), OnsetFrame, ApexFrame
(the real sheet has '/' where no apex was coded), OffsetFrame, Action Units, Estimated Emotion
(happiness, disgust, sadness, fear, surprise, repression, others). Frame files are named by the
frame numbers in the sheet, from OnsetFrame to OffsetFrame.

`read_casme2` checks what it can see without decoding images (the sheet's values, folders, which
frame files exist); the index stage then decodes every frame (pipeline/index.py).
"""

from __future__ import annotations

import os
import re
from collections import defaultdict
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.errors import BadInputError, DatasetError

SHEET_GLOB = "CASME2-coding-*.xlsx"
FRAMES_DIR = "CASME2_RAW_selected"
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"]
MISSING_FRAMES_LISTED = 3      # per clip; the rest are counted in one more problem


class ClipProblem(str):
    """One problem with one clip: the line a user reads ("clip sub01_EP02_01f (path): reason"),
    keeping its parts (clip_id, path, reason) for excluded.csv.

    A str, so a list of problems prints and joins like the plain strings it stands for. Every
    dataset adapter reports its problems this way.
    """

    clip_id: str
    path: str
    reason: str

    def __new__(cls, clip_id: str, path: str | os.PathLike | None, reason: str) -> ClipProblem:
        problem = super().__new__(cls, str(BadInputError(clip_id, path, reason)))
        problem.clip_id = clip_id
        problem.path = os.fspath(path) if path is not None else ""
        problem.reason = reason
        return problem


def read_casme2(root: Path, emotions: dict[str, str], classes: list[str]) -> tuple[list[dict], list[str]]:
    """Clip records (sorted by clip id) of every clip without problems, and the problems found.

    A record: clip_id (sub01_EP02_01f), subject (sub01), episode (EP02_01f), emotion (as in the
    sheet, lower case), label and label_index (its class under `emotions` and position in
    `classes`), onset, apex, offset (frame numbers), n_frames and frames (paths, in temporal order).
    A missing or unreadable sheet or frames folder is not a clip problem: it raises DatasetError.
    """
    root = Path(root)
    sheet = coding_sheet(root)
    frames_root = root / FRAMES_DIR
    if not frames_root.is_dir():
        raise DatasetError(f"CASME II at {root}", [f"frames folder {frames_root} does not exist"])
    rows = read_sheet(sheet)

    records: list[dict] = []
    problems: list[ClipProblem] = []
    rows_of_clip: dict[str, list[int]] = defaultdict(list)
    for row_number, row in rows:
        record, row_problems = parse_row(row, row_number, sheet, emotions, classes)
        problems += row_problems
        if record is None:
            continue
        rows_of_clip[record["clip_id"]].append(row_number)
        if len(rows_of_clip[record["clip_id"]]) > 1:
            continue                          # a duplicate: reported below, with all its rows
        folder = frames_root / record["subject"] / record["episode"]
        frame_problems = find_frames(record, folder)
        problems += frame_problems
        if not row_problems and not frame_problems:
            records.append(record)

    for clip_id, row_numbers in rows_of_clip.items():
        if len(row_numbers) > 1:
            rows_text = ", ".join(str(n) for n in row_numbers)
            problems.append(ClipProblem(clip_id, sheet, f"duplicate clip id: sheet rows {rows_text}"))
    duplicated = {clip_id for clip_id, row_numbers in rows_of_clip.items() if len(row_numbers) > 1}
    records = sorted((r for r in records if r["clip_id"] not in duplicated), key=lambda r: r["clip_id"])
    return records, list(problems)


def coding_sheet(root: Path) -> Path:
    sheets = sorted(p for p in root.glob(SHEET_GLOB) if not p.name.startswith("~$"))   # skip Excel locks
    if not sheets:
        raise DatasetError(f"CASME II at {root}", [f"no coding sheet {SHEET_GLOB} in {root}"])
    if len(sheets) > 1:
        names = ", ".join(p.name for p in sheets)
        raise DatasetError(f"CASME II at {root}", [f"several coding sheets ({names}): keep one"])
    return sheets[0]


def read_sheet(sheet: Path) -> list[tuple[int, dict[str, Any]]]:
    """(spreadsheet row number, {column: cell}) for every non-empty row, cells as typed in the sheet."""
    try:
        table = pd.read_excel(sheet, dtype=object)
    except Exception as error:   # a corrupt .xlsx raises zipfile/openpyxl/ValueError errors alike
        raise DatasetError(f"CASME II at {sheet.parent}", [f"{sheet}: cannot be read ({error})"]) from error
    table.columns = [str(column).strip() for column in table.columns]
    missing = [column for column in COLUMNS if column not in table.columns]
    if missing:
        raise DatasetError(f"CASME II at {sheet.parent}", [f"{sheet}: missing column(s) {', '.join(missing)}"])
    table = table.dropna(how="all", subset=COLUMNS)
    # pandas row 0 is spreadsheet row 2 (row 1 is the header).
    return [(int(index) + 2, row) for index, row in zip(table.index, table[COLUMNS].to_dict("records"),
                                                        strict=True)]


def parse_row(row: dict[str, Any], row_number: int, sheet: Path, emotions: dict[str, str],
              classes: list[str]) -> tuple[dict | None, list[ClipProblem]]:
    """A clip record from one sheet row (None if the row cannot name a clip) and its problems."""
    subject = subject_number(row["Subject"])
    episode = "" if is_blank(row["Filename"]) else str(row["Filename"]).strip()
    if subject is None or not episode:
        where = f"row {row_number}"
        return None, [ClipProblem(where, sheet, f"Subject {row['Subject']!r} / Filename {row['Filename']!r} "
                                                "do not name a clip")]
    clip_id = f"sub{subject:02d}_{episode}"
    problems = []

    def problem(reason: str) -> None:
        problems.append(ClipProblem(clip_id, sheet, f"row {row_number}: {reason}"))

    onset, apex, offset = (frame_number(row[c]) for c in ("OnsetFrame", "ApexFrame", "OffsetFrame"))
    for column, value in (("OnsetFrame", onset), ("OffsetFrame", offset)):
        if value is None:
            problem(f"{column} {row[column]!r} is not a frame number")
    if onset is not None and offset is not None and onset > offset:
        problem(f"frame range: OnsetFrame {onset} is after OffsetFrame {offset}")
    if str(row["ApexFrame"]).strip() == "/":
        problem("ApexFrame is '/' (no apex coded)")
    elif apex is None:
        problem(f"ApexFrame {row['ApexFrame']!r} is not a frame number")
    elif onset is not None and offset is not None and not onset <= apex <= offset:
        problem(f"ApexFrame {apex} is outside the clip's frames {onset}..{offset}")

    emotion = "" if is_blank(row["Estimated Emotion"]) else str(row["Estimated Emotion"]).strip().lower()
    label = emotions.get(emotion)
    if label is None:
        problem(f"emotion {emotion!r} is not in the label mapping ({', '.join(sorted(emotions))})")
    elif label not in classes:
        problem(f"emotion {emotion!r} maps to {label!r}, which is not one of the classes {classes}")

    record = {"clip_id": clip_id, "subject": f"sub{subject:02d}", "episode": episode, "emotion": emotion,
              "label": label, "label_index": classes.index(label) if label in classes else None,
              "onset": onset, "apex": apex, "offset": offset,
              "n_frames": offset - onset + 1 if onset is not None and offset is not None else None,
              "frames": []}
    return record, problems


def find_frames(record: dict, folder: Path) -> list[ClipProblem]:
    """Fill record["frames"] with img{onset}.jpg .. img{offset}.jpg in `folder`; problems for a
    missing folder or missing files. A record with an unusable frame range gets no frames."""
    clip_id = record["clip_id"]
    if not folder.is_dir():
        return [ClipProblem(clip_id, folder, "clip folder is missing")]
    if record["onset"] is None or record["offset"] is None or record["onset"] > record["offset"]:
        return []
    present = set(os.listdir(folder))
    frames = [folder / f"img{n}.jpg" for n in range(record["onset"], record["offset"] + 1)]
    missing = [path for path in frames if path.name not in present]
    problems = [ClipProblem(clip_id, path, "frame file is missing") for path in missing[:MISSING_FRAMES_LISTED]]
    if len(missing) > MISSING_FRAMES_LISTED:
        problems.append(ClipProblem(clip_id, folder, f"{len(missing) - MISSING_FRAMES_LISTED} more frame "
                                                     f"files of img{record['onset']}..img{record['offset']}.jpg "
                                                     "are missing"))
    record["frames"] = frames
    return problems


def subject_number(value: Any) -> int | None:
    """1, 1.0, '01', 'sub01' -> 1."""
    if is_blank(value):
        return None
    match = re.fullmatch(r"(?:sub)?0*(\d+)(?:\.0+)?", str(value).strip(), flags=re.IGNORECASE)
    return int(match.group(1)) if match else None


def frame_number(value: Any) -> int | None:
    """46, 46.0, '46' -> 46; anything else (blank, '/', 46.5) -> None."""
    if is_blank(value):
        return None
    match = re.fullmatch(r"(\d+)(?:\.0+)?", str(value).strip())
    return int(match.group(1)) if match else None


def is_blank(value: Any) -> bool:
    return value is None or (isinstance(value, float) and value != value) or str(value).strip() == ""
