"""SAMM Long Videos as their owners ship them, for spotting (the data model: long_videos.py):

    SAMM_LongVideos_V2_Release.xlsx            (V1, V2 or V3; preamble rows above the header row)
    SAMM_longvideos/006_1/006_1_0001.jpg       video folders <subject>_<video> (here or up to two levels
                                               below), frames <video>_<frame number, 4 or 5 digits>, from 1

Recorded at 200 fps. The sheet codes no emotion.
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import pandas as pd

from pipeline.datasets.frames import sub_folders
from pipeline.datasets.long_videos import (
    IMAGE_SUFFIX,
    LongVideo,
    LongVideoProblem,
    find_sheet,
    fit_to_video,
    frame_gaps,
    interval_table,
    numbered_frames,
    sheet_frame,
    unannotated,
)
from pipeline.datasets.sheets import cell_text, read_sheet_rows
from pipeline.errors import DatasetError

SAMM_LV_FPS = 200
SAMM_LV_SHEETS = ("SAMM_LongVideos_V*_Release.xlsx",)
SAMM_LV_COLUMNS = ["Subject", "Filename", "Onset", "Apex", "Offset", "Type", "Action Units"]
SAMM_LV_VIDEO_FOLDER = re.compile(r"\d{3}_\d+")                       # 006_1
SAMM_LV_FRAME = re.compile(r".*_(\d+)" + IMAGE_SUFFIX, re.IGNORECASE)   # 006_1_0001.jpg, 021_3_13057.jpg
SAMM_LV_SEARCH_DEPTH = 2      # video folders in the root or below it (SAMM_longvideos/, or twice when unpacked so)


def read_samm_lv(root: Path) -> tuple[list[LongVideo], pd.DataFrame, list[LongVideoProblem]]:
    """SAMM Long Videos: every video folder (006_1), the intervals of the sheet, and the problems.

    The sheet's header row (Subject, Filename, ...) is found below its preamble; Filename 006_1_2 names
    subject 006, video 006_1, expression 2. The sheet codes no emotion.
    """
    root = Path(root)
    sheet, problems = find_sheet("SAMM Long Videos", root, SAMM_LV_SHEETS, [root, *map(root.joinpath,
                                 sub_folders(root))] if root.is_dir() else [root], prefer=samm_lv_version)
    videos_root = samm_lv_videos_root(root)
    videos: dict[str, LongVideo] = {}
    for name in sub_folders(videos_root):
        if not SAMM_LV_VIDEO_FOLDER.fullmatch(name):
            continue
        numbers, files = numbered_frames(videos_root / name, SAMM_LV_FRAME)
        if not files:
            problems.append(LongVideoProblem(name, os.fspath(videos_root / name), "no frame files: video left out",
                                             kept=False))
            continue
        videos[name] = LongVideo(name, name.split("_")[0], videos_root / name, numbers, files, SAMM_LV_FPS)
        problems += frame_gaps(videos[name])

    rows, annotated = [], set()
    for row_number, cells in read_sheet_rows(sheet, SAMM_LV_COLUMNS, "SAMM Long Videos"):
        expression = cell_text(cells["Filename"])
        item = f"row {row_number} ({expression})"
        interval, row_problems = samm_lv_interval(cells)
        problems += [LongVideoProblem(item, os.fspath(sheet), reason, kept) for reason, kept in row_problems]
        if interval is None:
            continue
        video_id = "_".join(expression.split("_")[:2])
        if video_id not in videos:
            problems.append(LongVideoProblem(item, os.fspath(videos_root / video_id),
                                             "video folder is missing: interval left out", kept=False))
            continue
        keep, fit_problems = fit_to_video(interval, videos[video_id], item)
        problems += fit_problems
        if keep:
            annotated.add(video_id)
            rows.append({**interval, "video": video_id, "subject": videos[video_id].subject, "expression": expression,
                         "row": row_number})
    problems += unannotated(videos, annotated, sheet)
    return sorted(videos.values(), key=lambda v: v.video), interval_table(rows), problems


def samm_lv_version(sheet: Path) -> tuple[int, str]:
    """Sort key putting the newest release first: V3 before V2 before V1."""
    match = re.search(r"_V(\d+)_", sheet.name, re.IGNORECASE)
    return (-int(match.group(1)) if match else 0, sheet.name)


def samm_lv_videos_root(root: Path) -> Path:
    """The folder holding the video folders: `root` or one up to SAMM_LV_SEARCH_DEPTH levels below it."""
    level = [root]
    for _ in range(SAMM_LV_SEARCH_DEPTH + 1):
        for folder in level:
            if any(SAMM_LV_VIDEO_FOLDER.fullmatch(name) for name in sub_folders(folder)):
                return folder
        level = [folder / name for folder in level for name in sub_folders(folder)]
    raise DatasetError(f"SAMM Long Videos at {root}", [f"no video folders (006_1/006_1_0001.jpg) in {root} or "
                                                       f"{SAMM_LV_SEARCH_DEPTH} levels below it"])


def samm_lv_interval(cells: dict) -> tuple[dict | None, list[tuple[str, bool]]]:
    """One sheet row as an interval (None if it cannot be read) and its problems as (reason, kept)."""
    expression = cell_text(cells["Filename"])
    type_text = cell_text(cells["Type"]).lower()
    kind = "macro" if type_text.startswith("macro") else "micro" if type_text.startswith("micro") else None
    onset, apex, offset = (sheet_frame(cells[c]) for c in ("Onset", "Apex", "Offset"))
    problems: list[tuple[str, bool]] = []
    if not re.fullmatch(r"\d{3}_\d+_\d+", expression):
        problems.append((f"Filename {cells['Filename']!r} is not <subject>_<video>_<expression>: row left out", False))
    if kind is None:
        problems.append((f"Type {cells['Type']!r} is neither Macro nor Micro: row left out", False))
    if onset is None or offset is None or onset < 0 or offset < max(onset, 1):
        problems.append((f"Onset {cells['Onset']!r} / Offset {cells['Offset']!r} are not a frame range: row left "
                         "out", False))
    if problems:
        return None, problems
    fractional = [c for c in ("Onset", "Apex", "Offset") if isinstance(cells[c], float)
                  and not float(cells[c]).is_integer()]
    if fractional:
        problems.append((f"{', '.join(fractional)} fractional: rounded to the nearest frame", True))
    if onset == 0:
        # Ten very long macros start at 0 although frames count from 1 (SOFTNet and MEAN drop them).
        problems.append(("Onset 0: the interval starts at frame 1", True))
        onset = 1
    if apex is None or apex < 0:
        problems.append((f"Apex {cells['Apex']!r} (not annotated, the sheet's -1): no apex", True))
        apex = None
    elif not onset <= apex <= offset:
        problems.append((f"Apex {apex} is outside {onset}..{offset}: no apex", True))
        apex = None
    return {"onset": onset, "apex": apex, "offset": offset, "type": kind, "emotion": None, "self_report": None,
            "aus": cell_text(cells["Action Units"]) or None}, problems
