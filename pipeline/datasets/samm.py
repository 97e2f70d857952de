"""SAMM (Spontaneous Actions and Micro-Movements) as its owners distribute it:

    <root>/SAMM_Micro_FACS_Codes_v2.xlsx        (any SAMM_Micro_FACS_Codes*.xlsx, here or in SAMM/)
    <root>/SAMM/006/006_1_2/006_05562.jpg ...   subject folders 006..037, clip folders <Filename>,
                                                frames <subject>_<frame number, 5 digits>.jpg

(`root` may also be the SAMM/ folder itself.) The coding sheet has a preamble of 13 rows (title,
descriptions) above its header row: Subject (6), Filename (006_1_2), Inducement Code, Onset Frame,
Apex Frame, Offset Frame, Duration, Type, Action Units, Notes, Estimated Emotion (Anger, Contempt,
Disgust, Fear, Happiness, Sadness, Surprise, Other). A missing apex is coded -1: such clips are
reported. SAMM is recorded at 200 fps (2040x1088, grey).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.datasets.sheets import (
    ClipProblem,
    Correction,
    SheetLayout,
    read_coded_clips,
    read_sheet_rows,
    single_sheet,
)
from pipeline.errors import ParamsError

SHEET_GLOB = "SAMM_Micro_FACS_Codes*.xlsx"
FRAMES_DIR = "SAMM"
COLUMNS = ["Subject", "Filename", "Onset Frame", "Apex Frame", "Offset Frame", "Estimated Emotion"]


def sheet_layout(frames_root: Path) -> SheetLayout:
    return SheetLayout(
        dataset="SAMM", subject="Subject", filename="Filename", onset="Onset Frame", apex="Apex Frame",
        offset="Offset Frame", emotion="Estimated Emotion",
        subject_name=lambda number: f"{number:03d}",
        clip_id=lambda subject, episode: episode,                  # 006_1_2 already names the subject
        clip_folder=lambda subject, episode: frames_root / subject / episode,
        frame_file=lambda subject, episode, n: f"{subject}_{n:05d}.jpg",
        frame_pattern=lambda subject, episode: re.compile(rf"{subject}_(\d+)\.jpg", re.IGNORECASE),
        subject_folder=re.compile(r"\d{3}"))


def read_samm(root: Path, emotions: dict[str, str | None], classes: list[str], variant: str | None = None,
              corrections: Sequence[Correction] = ()) -> tuple[list[dict], list[ClipProblem]]:
    """Records of the clips without problems (sorted by clip id) and the problems found."""
    root = Path(root)
    if variant not in (None, "raw"):
        raise ParamsError(f"SAMM has no variant {variant!r} (only the raw frames are read)")
    frames_root = root / FRAMES_DIR if (root / FRAMES_DIR).is_dir() else root
    sheet = single_sheet("SAMM", root, SHEET_GLOB, (root, frames_root))
    rows = read_sheet_rows(sheet, COLUMNS, "SAMM")
    records, problems = read_coded_clips(rows, sheet, sheet_layout(frames_root), emotions, classes,
                                         subjects_root=frames_root, corrections=corrections)
    # The clip folder is <subject>/<Filename>; a Filename of another subject is a typo the folder would hide.
    for record in list(records):
        if not record["episode"].startswith(f"{record['subject']}_"):
            problems.append(ClipProblem(record["clip_id"], sheet, f"Filename {record['episode']!r} does not "
                                                                      f"start with its Subject {record['subject']}_"))
            records.remove(record)
    return records, problems
