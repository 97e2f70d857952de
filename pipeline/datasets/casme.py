"""CASME (the first Chinese Academy of Sciences micro-expression database) as its owners distribute it:
two sections recorded with different cameras, each with its own coding sheet.

    <root>/CASME_A/<coding sheet>.xls                     the one .xls in CASME_A/
    <root>/CASME_A/Section A/sub01/EP01_5/EP01_5-1.jpg    Section A: sub01..sub07, 1280x720
    <root>/CASME_B/<coding sheet>.xls
    <root>/CASME_B/Section B/sub08/EP01_12/EP01_12-020.jpg Section B: sub08..sub19, 640x480

Sheet columns (legacy Excel .xls, read with xlrd): Subject, Filename, OnsetF, ApexF1, ApexF2,
OffsetF, Duration, AU, Emotion (happiness, surprise, disgust, sadness, fear, contempt, tense,
repression). Frames are named <Filename>-<n>.jpg by the frame numbers OnsetF..OffsetF; some copies
zero-pad n to three digits (EP01_12-020.jpg), so both spellings are read. Some rows have no ApexF1:
those clips are reported. CASME is recorded at 60 fps. Subject numbers run on from Section A into
Section B, so clip ids (sub08_EP01_12) are unique across the two sections.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path

from pipeline.datasets.sheets import ClipProblem, Correction, SheetLayout, read_coded_clips, read_sheet_rows
from pipeline.errors import DatasetError, ParamsError

SECTIONS = {"A": ("CASME_A", "Section A"), "B": ("CASME_B", "Section B")}   # section -> (folder, frames folder)
COLUMNS = ["Subject", "Filename", "OnsetF", "ApexF1", "OffsetF", "Emotion"]


def sheet_layout(frames_root: Path) -> SheetLayout:
    return SheetLayout(
        dataset="CASME", subject="Subject", filename="Filename", onset="OnsetF", apex="ApexF1", offset="OffsetF",
        emotion="Emotion",
        subject_name=lambda number: f"sub{number:02d}",
        clip_id=lambda subject, episode: f"{subject}_{episode}",
        clip_folder=lambda subject, episode: frames_root / subject / episode,
        frame_file=lambda subject, episode, n: f"{episode}-{n}.jpg",
        frame_pattern=lambda subject, episode: re.compile(rf"{re.escape(episode)}-(\d+)\.jpg", re.IGNORECASE),
        subject_folder=re.compile(r"sub\d+"))


def read_casme(root: Path, emotions: dict[str, str | None], classes: list[str], variant: str | None = None,
               corrections: Sequence[Correction] = ()) -> tuple[list[dict], list[ClipProblem]]:
    """Records of both sections' clips without problems (sorted by clip id), and the problems found.

    A section whose folder is absent is skipped (a copy may hold one section); a section folder
    without its sheet or frames folder, or no section at all, raises DatasetError.
    """
    root = Path(root)
    if variant not in (None, "raw"):
        raise ParamsError(f"CASME has no variant {variant!r} (only the raw frames are read)")
    present = {name: folders for name, folders in SECTIONS.items() if (root / folders[0]).is_dir()}
    if not present:
        raise DatasetError(f"CASME at {root}", [f"neither {SECTIONS['A'][0]}/ nor {SECTIONS['B'][0]}/ is in {root}"])
    records: list[dict] = []
    problems: list[ClipProblem] = []
    for section, (folder, frames_folder) in present.items():
        sheet = section_sheet(root / folder)
        frames_root = root / folder / frames_folder
        if not frames_root.is_dir():
            raise DatasetError(f"CASME at {root}", [f"Section {section} frames folder {frames_root} does not exist"])
        rows = read_sheet_rows(sheet, COLUMNS, "CASME")
        section_records, section_problems = read_coded_clips(rows, sheet, sheet_layout(frames_root), emotions,
                                                             classes, subjects_root=frames_root,
                            corrections=corrections)
        records += section_records
        problems += section_problems
    seen: dict[str, int] = {}
    for record in records:
        seen[record["clip_id"]] = seen.get(record["clip_id"], 0) + 1
    twice = {clip_id for clip_id, count in seen.items() if count > 1}
    problems += [ClipProblem(clip_id, root, "duplicate clip id: in both sections' sheets") for clip_id in sorted(twice)]
    return sorted((r for r in records if r["clip_id"] not in twice), key=lambda r: r["clip_id"]), problems


def section_sheet(folder: Path) -> Path:
    sheets = sorted(p for p in folder.glob("*.xls") if not p.name.startswith("~$"))
    if len(sheets) != 1:
        found = ", ".join(p.name for p in sheets) or "none"
        raise DatasetError(f"CASME at {folder.parent}", [f"{folder} must hold one .xls coding sheet (found {found})"])
    return sheets[0]
