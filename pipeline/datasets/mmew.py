"""MMEW (Micro-and-Macro Expression Warehouse) micro-expressions as their owners distribute them:

    <root>/MMEW_Micro_Exp.xlsx                          (any MMEW_Micro_Exp*.xlsx)
    <root>/Micro_Expression/happiness/S01-01-001/1.jpg ... one folder per emotion, one per clip in it,
                                                         frames numbered from 1 within the clip

The sheet has Subject (1), Filename (the clip folder), OnsetFrame, ApexFrame, OffsetFrame (frame
numbers within the clip folder), remarks, Action Units and Estimated Emotion (happiness, surprise,
anger, disgust, fear, sadness, others). A clip folder is found by its Filename under any emotion folder
(copies name the others folder differently). MMEW is recorded at 90 fps (1920x1080, colour).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.datasets.frames import sub_folders
from pipeline.datasets.sheets import (
    ClipProblem,
    Correction,
    SheetLayout,
    read_coded_clips,
    s_subject,
    sheet_rows_and_frames,
)
from pipeline.errors import ParamsError

SHEET_GLOB = "MMEW_Micro_Exp*.xlsx"
FRAMES_DIR = "Micro_Expression"
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"]


def sheet_layout(frames_root: Path) -> SheetLayout:
    clip_folders = {name: frames_root / emotion / name for emotion in sub_folders(frames_root)
                    for name in sub_folders(frames_root / emotion)}
    return SheetLayout(
        dataset="MMEW", subject="Subject", filename="Filename", onset="OnsetFrame", apex="ApexFrame",
        offset="OffsetFrame", emotion="Estimated Emotion", subject_name=lambda number: f"S{number:02d}",
        clip_id=lambda subject, episode: episode,
        clip_folder=lambda subject, episode: clip_folders.get(episode, frames_root / "<emotion>" / episode),
        frame_file=lambda subject, episode, n: f"{n}.jpg",
        frame_pattern=lambda subject, episode: re.compile(r"(\d+)\.jpg", re.IGNORECASE),
        subject_folder=re.compile(r"(?!)"), subject_cell=s_subject)


def read_mmew(root: Path, emotions: dict[str, str | None], classes: list[str], variant: str | None = None,
              corrections: Sequence[Correction] = ()) -> tuple[list[dict], list[ClipProblem]]:
    """Records of the clips without problems (sorted by clip id) and the problems found."""
    root = Path(root)
    if variant not in (None, "raw"):
        raise ParamsError(f"MMEW has no variant {variant!r} (only Micro_Expression/ is read)")
    sheet, rows, frames_root = sheet_rows_and_frames("MMEW", root, SHEET_GLOB, FRAMES_DIR, COLUMNS)
    return read_coded_clips(rows, sheet, sheet_layout(frames_root), emotions, classes, corrections=corrections)
