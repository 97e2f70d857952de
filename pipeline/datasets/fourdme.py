"""4DME's micro-expressions (the grey 2D videos) as their owners distribute them:

    <root>/4DME_Labelling_Micro_release v1.xlsx     (any 4DME_Labelling*.xlsx)
    <root>/gray_micro/S01/S01_1st_001_01_1/*.jpg      one folder per subject, one per micro-expression,
                                                      frames named by their number in the recording

The sheet has sub_ID (S01), fold_name (the clip folder), Emotion (Positive, Negative, Surprise,
Repression, Others; some rows name two, e.g. Surprise+Positive), Onset, Apex, Offset (frame numbers of
the recording) and AUs. A frame file is any image whose name ends in its number; a row naming two
emotions is left out unless the mapping names that combination. 4DME's grey videos are recorded at
60 fps.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.datasets.frames import LAST_NUMBER, numbered_like
from pipeline.datasets.sheets import (
    ClipProblem,
    Correction,
    SheetLayout,
    cell_text,
    read_coded_clips,
    s_subject,
    sheet_rows_and_frames,
)
from pipeline.errors import ParamsError

SHEET_GLOB = "4DME_Labelling*.xlsx"
FRAMES_DIR = "gray_micro"
COLUMNS = ["sub_ID", "fold_name", "Emotion", "Onset", "Apex", "Offset"]


def sheet_layout(frames_root: Path) -> SheetLayout:
    return SheetLayout(
        dataset="4DME", subject="sub_ID", filename="fold_name", onset="Onset", apex="Apex", offset="Offset",
        emotion="Emotion", subject_name=lambda number: f"S{number:02d}",
        clip_id=lambda subject, episode: episode,
        clip_folder=lambda subject, episode: frames_root / subject / episode,
        frame_file=lambda subject, episode, n: numbered_like(frames_root / subject / episode, n),
        frame_pattern=lambda subject, episode: LAST_NUMBER,
        subject_folder=re.compile(r"S\d+"), subject_cell=s_subject)


def read_fourdme(root: Path, emotions: dict[str, str | None], classes: list[str], variant: str | None = None,
                 corrections: Sequence[Correction] = ()) -> tuple[list[dict], list[ClipProblem]]:
    """Records of the clips without problems (sorted by clip id) and the problems found."""
    root = Path(root)
    if variant not in (None, "raw"):
        raise ParamsError(f"4DME has no variant {variant!r} (only the grey videos, gray_micro/, are read)")
    sheet, rows, frames_root = sheet_rows_and_frames("4DME", root, SHEET_GLOB, FRAMES_DIR, COLUMNS)
    for _, row in rows:                         # Surprise+Positive, "surprise + positive" -> surprise+positive
        row["Emotion"] = re.sub(r"\s*\+\s*", "+", cell_text(row["Emotion"]))
    return read_coded_clips(rows, sheet, sheet_layout(frames_root), emotions, classes, subjects_root=frames_root,
                            corrections=corrections)
