"""CASME II as its owners distribute it: a coding sheet plus one folder of JPEG frames per clip.

    <root>/CASME2-coding-20140508.xlsx            (any CASME2-coding-*.xlsx; the synthetic tree has
                                                   CASME2-coding-synthetic.xlsx)
    <root>/CASME2_RAW_selected/sub01/EP02_01f/img46.jpg ... img86.jpg      variant "raw" (the default)
    <root>/Cropped/sub01/EP02_01f/reg_img46.jpg ... reg_img86.jpg          variant "cropped"

The cropped variant is the owners' face crops (already registered): the align stage detects and aligns
them like raw frames, or, with `registered: true` in the dataset's params, only resizes them. Sheet
columns: Subject (1 or '01'), Filename (the episode, e.g. EP02_01f), OnsetFrame, ApexFrame (the real
sheet has '/' where no apex was coded), OffsetFrame, Action Units, Estimated Emotion (happiness, disgust,
sadness, fear, surprise, repression, others). Frame files are named by the frame numbers in the sheet,
OnsetFrame to OffsetFrame; CASME II is recorded at 200 fps.

`read_casme2` checks what it can see without decoding images (the sheet's values, folders, which
frame files exist); the index stage then decodes every frame (pipeline/index.py).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.datasets.sheets import ClipProblem, Correction, SheetLayout, read_coded_clips, read_sheet_rows
from pipeline.errors import DatasetError, ParamsError

SHEET_GLOB = "CASME2-coding-*.xlsx"
FRAMES_DIR = "CASME2_RAW_selected"
VARIANTS = {"raw": (FRAMES_DIR, "img"), "cropped": ("Cropped", "reg_img")}   # variant -> (folder, file prefix)
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Estimated Emotion"]

__all__ = ["ClipProblem", "read_casme2", "sheet_layout", "coding_sheet"]


def sheet_layout(root: Path, variant: str = "raw") -> SheetLayout:
    folder, prefix = VARIANTS[variant]
    frames_root = root / folder
    return SheetLayout(
        dataset="CASME II", subject="Subject", filename="Filename", onset="OnsetFrame", apex="ApexFrame",
        offset="OffsetFrame", emotion="Estimated Emotion",
        subject_name=lambda number: f"sub{number:02d}",
        clip_id=lambda subject, episode: f"{subject}_{episode}",
        clip_folder=lambda subject, episode: frames_root / subject / episode,
        frame_file=lambda subject, episode, n: f"{prefix}{n}.jpg",
        frame_pattern=lambda subject, episode: re.compile(rf"{prefix}(\d+)\.jpg"),
        subject_folder=re.compile(r"sub\d+"))


def read_casme2(root: Path, emotions: dict[str, str | None], classes: list[str], variant: str | None = None,
                corrections: Sequence[Correction] = ()) -> tuple[list[dict], list[ClipProblem]]:
    """Clip records (sorted by clip id) of every clip without problems, and the problems found.

    See pipeline/datasets/sheets.py for the record. A missing or unreadable sheet or frames folder is
    not a clip problem: it raises DatasetError.
    """
    root = Path(root)
    variant = variant or "raw"
    if variant not in VARIANTS:
        raise ParamsError(f"CASME II variant must be one of {', '.join(VARIANTS)}, not {variant!r}")
    sheet = coding_sheet(root)
    frames_root = root / VARIANTS[variant][0]
    if not frames_root.is_dir():
        raise DatasetError(f"CASME II at {root}", [f"frames folder {frames_root} does not exist"])
    rows = read_sheet_rows(sheet, COLUMNS, "CASME II")
    return read_coded_clips(rows, sheet, sheet_layout(root, variant), emotions, classes, subjects_root=frames_root,
                            corrections=corrections)


def coding_sheet(root: Path) -> Path:
    sheets = sorted(p for p in root.glob(SHEET_GLOB) if not p.name.startswith("~$"))   # skip Excel locks
    if not sheets:
        raise DatasetError(f"CASME II at {root}", [f"no coding sheet {SHEET_GLOB} in {root}"])
    if len(sheets) > 1:
        names = ", ".join(p.name for p in sheets)
        raise DatasetError(f"CASME II at {root}", [f"several coding sheets ({names}): keep one"])
    return sheets[0]
