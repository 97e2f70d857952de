"""CAS(ME)³ Part A as its owners distribute it: one long video per subject and task, several
micro-expressions coded in each.

    <root>/annotation/cas(me)3_part_A_ME_label_JpgIndex_v2.xlsx    (any cas(me)3_part_A_ME_label*.xlsx,
                                                                    in root or annotation/)
    <root>/data/ME_A/spNO.1/a/color/1.jpg ...                      subject folders spNO.<n>, task
                                                                    folders a..m, frames <n>.jpg

The frames are found wherever the subject folders are: in root or up to two levels below it (the owners'
data/part_A, data/ME_A). The sheet (its worksheet `label`, or any worksheet with the columns) has Subject
(spNO.1), Filename (the task, a..m), Onset, Apex, Offset (JPEG indices in the task's color/ folder:
"JpgIndex"), AU and emotion (happy, disgust, fear, anger, sad, surprise, others). One task's video holds
several micro-expressions, so a clip is named subject_task_onset (spNO.1_a_355). Folder names are matched
ignoring case (copies spell spNO and spNo). CAS(ME)³ is recorded at 30 fps (1280x720, colour).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from pipeline.datasets.frames import child_ignoring_case, find_subjects_root
from pipeline.datasets.sheets import (
    ClipProblem,
    Correction,
    SheetLayout,
    cell_text,
    frame_number,
    read_coded_clips,
    read_sheet_rows,
    single_sheet,
)
from pipeline.errors import ParamsError

SHEET_GLOB = "cas(me)3_part_A_ME_label*.xlsx"
COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "emotion"]
SUBJECT_FOLDER = re.compile(r"spno\.\d+", re.IGNORECASE)


def subject_name(value: Any) -> str | None:
    """'spNO.1', 'spNo.1', 1 -> 'spNO.1'."""
    match = re.fullmatch(r"(?:sp\s*no\.?\s*)?0*(\d+)(?:\.0+)?", cell_text(value), flags=re.IGNORECASE)
    return f"spNO.{match.group(1)}" if match else None


def sheet_layout(frames_root: Path) -> SheetLayout:
    def task_folder(subject: str, episode: str) -> Path:
        task = episode.rsplit("_", 1)[0]                       # episode: <task>_<onset>
        return child_ignoring_case(child_ignoring_case(frames_root, subject), task) / "color"

    return SheetLayout(
        dataset="CAS(ME)3 Part A", subject="Subject", filename="Filename", onset="Onset", apex="Apex",
        offset="Offset", emotion="emotion", subject_name=lambda number: f"spNO.{number}",
        clip_id=lambda subject, episode: f"{subject}_{episode}", clip_folder=task_folder,
        frame_file=lambda subject, episode, n: f"{n}.jpg",
        frame_pattern=lambda subject, episode: re.compile(r"(\d+)\.jpg", re.IGNORECASE),
        subject_folder=SUBJECT_FOLDER, subject_cell=subject_name)


def read_casme3a(root: Path, emotions: dict[str, str | None], classes: list[str], variant: str | None = None,
                 corrections: Sequence[Correction] = ()) -> tuple[list[dict], list[ClipProblem]]:
    """Records of the clips without problems (sorted by clip id) and the problems found."""
    root = Path(root)
    if variant not in (None, "raw"):
        raise ParamsError(f"CAS(ME)3 Part A has no variant {variant!r} (only the colour frames are read)")
    sheet = single_sheet("CAS(ME)3 Part A", root, SHEET_GLOB, (root, root / "annotation"))
    frames_root = find_subjects_root("CAS(ME)3 Part A", root, SUBJECT_FOLDER)
    rows = read_sheet_rows(sheet, COLUMNS, "CAS(ME)3 Part A")
    for _, row in rows:                      # a task holds several clips: the onset tells them apart
        onset = frame_number(row["Onset"])
        row["Filename"] = f"{cell_text(row['Filename'])}_{onset if onset is not None else cell_text(row['Onset'])}"
    return read_coded_clips(rows, sheet, sheet_layout(frames_root), emotions, classes, subjects_root=frames_root,
                            corrections=corrections)
