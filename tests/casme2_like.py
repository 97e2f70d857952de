"""A tree laid out like the real CASME II: the 256 clips of its 2014-05-08 coding sheet with their real
frame numbering (tests/data/casme2_real_clips.csv), written by a generator other than `merflow synth`.

The sheet is CASME2-coding-20140508.xlsx with the owners' columns and quirks (Subject as text '01',
ApexFrame '/' where no apex was coded, sub07 EP06_01's OffsetFrame 68 before its last frame file 91);
frames are CASME2_RAW_selected/subNN/<Filename>/img<N>.jpg for every N of the clip's real files. The
frame images come from `frame_for(subject, clip, n)`: hard links to a few files keep 17,187 frames cheap.
"""

from __future__ import annotations

import csv
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import openpyxl

CLIPS_CSV = Path(__file__).resolve().parent / "data" / "casme2_real_clips.csv"
SHEET = "CASME2-coding-20140508.xlsx"
COLUMNS = ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units", "Estimated Emotion"]


def real_clips() -> list[dict]:
    with open(CLIPS_CSV, newline="") as handle:
        return list(csv.DictReader(handle))


def write_casme2_like(root: Path, frame_for: Callable[[str, int, int], Path]) -> list[dict]:
    """Write the tree at `root`; frame_for(subject, clip number, frame number) is the file to link."""
    clips = real_clips()
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.append(COLUMNS)
    for number, clip in enumerate(clips):
        apex = clip["apex"] if clip["apex"] == "/" else int(clip["apex"])
        sheet.append([clip["subject"][3:], clip["folder"], int(clip["onset"]), apex, int(clip["offset"]), None,
                      clip["emotion"]])
        folder = root / "CASME2_RAW_selected" / clip["subject"] / clip["folder"]
        folder.mkdir(parents=True)
        for n in range(int(clip["first_frame"]), int(clip["last_frame"]) + 1):
            link(frame_for(clip["subject"], number, n), folder / f"img{n}.jpg")
    workbook.save(root / SHEET)
    return clips


def link(source: Path, target: Path) -> None:
    try:
        os.link(source, target)
    except OSError:                      # another file system: copy
        shutil.copyfile(source, target)
