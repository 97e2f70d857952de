"""Long videos for micro-expression spotting, read as their owners ship them: CAS(ME)² and SAMM Long Videos.

Spotting finds macro- and micro-expression intervals in whole recordings, so these datasets are read as
videos plus an interval table, not as the short clips of pipeline/datasets/layouts.py:

    LongVideo           one recording: its id, subject, frame folder, frame files sorted by frame number, fps
    intervals           a pandas DataFrame, one row per coded expression (INTERVAL_COLUMNS): video, subject,
                        expression (the sheet's own name for it), onset, apex, offset (inclusive frame numbers
                        as in the sheet), type ('macro' / 'micro'), emotion, self_report, aus, row (sheet row)
    LongVideoProblem    something the reader found: a quirk it read around (`kept`: the row or video is kept,
                        the message says how it was read) or something it had to leave out

The readers are in casme_sq.py and samm_lv.py, their table in long_layouts.py (LONG_LAYOUTS, read by
`merflow check-dataset ROOT --layout casme_sq|samm_lv`):

    casme_sq  CAS(ME)^2code_final.xlsx (or ...(Updated).xlsx, or a renamed *code_final*.xlsx) with three
              header-less sheets (codes, naming rule1, naming rule2) + rawpic/s15/15_0101disgustingteeth/img001.jpg
              (img + frame number padded to at least 3 digits, from 1), 30 fps
    samm_lv   SAMM_LongVideos_V*_Release.xlsx (preamble rows above a header row: Subject, Filename, Inducement
              Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes; no emotion) +
              SAMM_longvideos/006_1/006_1_0001.jpg (4 or 5 digits, from 1), 200 fps

A quirk of the owners' sheets is data, never an exception; a tree that cannot be read at all (no sheet,
no frames) raises DatasetError naming what is missing. docs/datasets.md lists the quirks and how each
is read.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from pipeline.datasets.sheets import is_blank
from pipeline.errors import DatasetError

INTERVAL_COLUMNS = ["video", "subject", "expression", "onset", "apex", "offset", "type", "emotion", "self_report",
                    "aus", "row"]
IMAGE_SUFFIX = r"\.(?:jpe?g|png|bmp)"


@dataclass(frozen=True)
class LongVideo:
    """One long recording: `video` is its id as the dataset names it (CAS(ME)²: 's15/15_0101disgustingteeth',
    the subject folder and video folder; SAMM-LV: '006_1'); `frames` are in temporal order."""

    video: str
    subject: str                      # as the dataset names it: 's15', '006'
    folder: Path
    frame_numbers: tuple[int, ...]    # ascending
    frames: tuple[Path, ...]          # the file of each frame number
    fps: float

    @property
    def first_frame(self) -> int:
        return self.frame_numbers[0]

    @property
    def last_frame(self) -> int:
        return self.frame_numbers[-1]


@dataclass(frozen=True)
class LongVideoProblem:
    """What a reader found, with the dataset's own names: `item` is a video id or a sheet row's expression
    ('row 12 (anger1_1)'), `path` the file or folder concerned. `kept`: a quirk read around, the data kept
    (the reason says how it was read); otherwise the row or video is left out."""

    item: str
    path: str
    reason: str
    kept: bool = True

    def __str__(self) -> str:
        return f"{self.item} ({self.path}): {self.reason}"


LongReader = Callable[[Path], tuple[list[LongVideo], pd.DataFrame, list[LongVideoProblem]]]


# --- shared helpers -------------------------------------------------------------------------------------

def numbered_frames(folder: Path, pattern: re.Pattern) -> tuple[tuple[int, ...], tuple[Path, ...]]:
    """Frame numbers (ascending, numerically: img1000 after img999) and files of `folder`'s files whose
    names `pattern` matches (group 1: the number)."""
    found: dict[int, Path] = {}
    for name in os.listdir(folder):
        match = pattern.fullmatch(name)
        if match:
            found.setdefault(int(match.group(1)), folder / name)
    numbers = tuple(sorted(found))
    return numbers, tuple(found[n] for n in numbers)


def frame_gaps(video: LongVideo) -> list[LongVideoProblem]:
    """A note when a video's frames do not run 1, 2, ... without gaps (whether every video does is not
    documented by the owners)."""
    numbers = video.frame_numbers
    missing = (numbers[-1] - numbers[0] + 1) - len(numbers)
    notes = []
    if numbers[0] != 1:
        notes.append(f"frames start at {video.frames[0].name}, not at frame 1")
    if missing:
        notes.append(f"{missing} frame number(s) missing between {video.frames[0].name} and {video.frames[-1].name}")
    return [LongVideoProblem(video.video, os.fspath(video.folder), note) for note in notes]


def sheet_frame(value: Any) -> int | None:
    """A frame-number cell as an int: 557, 557.0, '557' -> 557; fractional values are rounded half up (some
    exports store frames as floats); blank or text -> None. Negative values are kept (SAMM's apex -1)."""
    if is_blank(value):
        return None
    try:
        number = float(str(value).strip())
    except ValueError:
        return None
    return math.floor(number + 0.5) if math.isfinite(number) else None


def interval_table(rows: list[dict]) -> pd.DataFrame:
    """The interval rows as a DataFrame with INTERVAL_COLUMNS; frame numbers as nullable integers (a
    missing apex is <NA>), sorted by video and onset."""
    table = pd.DataFrame(rows, columns=INTERVAL_COLUMNS)
    for column in ("onset", "apex", "offset", "row"):
        table[column] = table[column].astype("Int64")
    return table.sort_values(["video", "onset", "row"], kind="stable").reset_index(drop=True)


def fit_to_video(interval: dict, video: LongVideo, item: str) -> tuple[bool, list[LongVideoProblem]]:
    """Check an interval against its video's frames: an offset past the last frame is clipped to it, an
    onset before the first frame moved to it (both noted); an interval starting after the last frame is
    left out (False)."""
    where = os.fspath(video.folder)
    if interval["onset"] > video.last_frame:
        return False, [LongVideoProblem(item, where, f"onset {interval['onset']} is after the video's last frame "
                                                     f"{video.last_frame}: interval left out", kept=False)]
    notes = []
    if interval["offset"] > video.last_frame:
        notes.append(LongVideoProblem(item, where, f"offset {interval['offset']} is past the video's last frame "
                                                   f"{video.frames[-1].name}: clipped to frame {video.last_frame}"))
        interval["offset"] = video.last_frame
        if interval["apex"] is not None and interval["apex"] > video.last_frame:
            interval["apex"] = None
    if interval["onset"] < video.first_frame:
        notes.append(LongVideoProblem(item, where, f"onset {interval['onset']} is before the video's first frame "
                                                   f"{video.frames[0].name}: moved to frame {video.first_frame}"))
        interval["onset"] = video.first_frame
    return True, notes


def find_sheet(dataset: str, root: Path, patterns: tuple[str, ...], folders: list[Path],
               prefer: Callable[[Path], Any]) -> tuple[Path, list[LongVideoProblem]]:
    """The sheet to read: the files of `folders` matching any of `patterns` (Excel's ~$ lock files
    skipped); with several, the one `prefer` ranks lowest, and a note naming the others."""
    found = sorted({path for folder in folders if folder.is_dir() for pattern in patterns
                    for path in folder.glob(pattern) if not path.name.startswith("~$")})
    if not found:
        where = " or ".join(os.fspath(folder) for folder in folders)
        raise DatasetError(f"{dataset} at {root}", [f"no sheet {' or '.join(patterns)} in {where}"])
    chosen = min(found, key=prefer)
    others = [path.name for path in found if path != chosen]
    notes = [LongVideoProblem("sheet", os.fspath(chosen), f"several sheets; read this one, not {', '.join(others)}")
             ] if others else []
    return chosen, notes


def unannotated(videos: dict[str, LongVideo], annotated: set[str], sheet: Path) -> list[LongVideoProblem]:
    """A note per video without intervals in the sheet (kept: a video with no expression is still a video
    to spot in)."""
    return [LongVideoProblem(video_id, os.fspath(videos[video_id].folder), f"no intervals in {sheet.name}")
            for video_id in sorted(videos) if video_id not in annotated]
