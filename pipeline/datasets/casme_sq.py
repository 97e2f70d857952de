"""CAS(ME)² long videos as their owners ship them, for spotting (the data model: long_videos.py):

    CAS(ME)^2code_final.xlsx                      (or ...(Updated).xlsx, or a renamed *code_final*.xlsx)
    rawpic/s15/15_0101disgustingteeth/img001.jpg  subject folders, video folders <subject>_<code><name>,
                                                  img + frame number padded to at least 3 digits, from 1

The workbook's three sheets have no header row: the codes, `naming rule1` (participant -> subject folder)
and `naming rule2` (video name -> 4-digit code). Recorded at 30 fps.
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
from pipeline.datasets.sheets import cell_text, is_blank
from pipeline.errors import DatasetError

CASME_SQ_FPS = 30
CASME_SQ_WORKBOOKS = ("*code_final*.xlsx",)        # CAS(ME)^2code_final.xlsx, ...(Updated).xlsx, code_final.xlsx
CASME_SQ_CODE_COLUMNS = ["participant", "expression", "onset", "apex", "offset", "aus", "emotion", "type",
                         "self_report"]
CASME_SQ_TYPES = {"macro-expression": "macro", "micro-expression": "micro"}
CASME_SQ_FRAME = re.compile(r"img_?(\d+)" + IMAGE_SUFFIX, re.IGNORECASE)   # img001 ... img1000 (img_1: crops)
CASME_SQ_VIDEO_FOLDER = re.compile(r"(\d+)_(\d{4})(?:\D.*)?")       # 15_0101disgustingteeth: subject, code


def read_casme_sq(root: Path) -> tuple[list[LongVideo], pd.DataFrame, list[LongVideoProblem]]:
    """CAS(ME)² long videos: every video folder of rawpic/, the intervals of the code sheet, and the problems.

    The code sheet (the workbook's first sheet, no header) names each expression's participant (1..22) and
    '<video name>_<n>' (anger1_1); `naming rule1` maps participants to subject folders (s15), `naming rule2`
    video names to 4-digit codes (0401), which the video folders carry after the subject number
    (15_0401...). Folders are matched on that code, never on the name text, which is misspelled in places.
    """
    root = Path(root)
    workbook, problems = find_sheet("CAS(ME)²", root, CASME_SQ_WORKBOOKS, [root],
                                    prefer=lambda path: ("Updated" not in path.name, path.name))
    frames_root = root / "rawpic"
    if not frames_root.is_dir():
        raise DatasetError(f"CAS(ME)² at {root}", [f"frames folder {frames_root} does not exist"])
    codes, rule1, rule2 = read_casme_sq_workbook(workbook, root)
    folders = {participant: folder for participant, folder in rule1}
    video_codes = {name.lower(): code for code, name in rule2}

    videos: dict[str, LongVideo] = {}       # by video id
    by_subject_code: dict[tuple[str, str], list[str]] = {}     # (subject folder, code) -> video ids
    for subject in sub_folders(frames_root):
        for name in sub_folders(frames_root / subject):
            match = CASME_SQ_VIDEO_FOLDER.fullmatch(name)
            if not match:
                continue
            prefix, code = match.groups()
            folder = frames_root / subject / name
            numbers, files = numbered_frames(folder, CASME_SQ_FRAME)
            video_id = f"{subject}/{name}"
            if not files:
                problems.append(LongVideoProblem(video_id, os.fspath(folder), "no frame files img<N>.jpg: video "
                                                                              "left out", kept=False))
                continue
            videos[video_id] = LongVideo(video_id, subject, folder, numbers, files, CASME_SQ_FPS)
            by_subject_code.setdefault((f"s{int(prefix):02d}", code), []).append(video_id)
            problems += frame_gaps(videos[video_id])
    if not videos:
        raise DatasetError(f"CAS(ME)² at {root}", [f"no video folders with frames in {frames_root} "
                                                   "(rawpic/s15/15_0101disgustingteeth/img001.jpg)"])

    rows, annotated = [], set()
    for row_number, cells in codes:
        item = f"row {row_number} ({cell_text(cells['expression'])})"
        interval, row_problems = casme_sq_interval(cells, row_number, folders, video_codes)
        problems += [LongVideoProblem(item, os.fspath(workbook), reason, kept) for reason, kept in row_problems]
        if interval is None:
            continue
        subject, code = interval.pop("subject_folder"), interval.pop("code")
        candidates = by_subject_code.get((subject, code), [])
        own = [v for v in candidates if videos[v].subject == subject]
        if not candidates:
            problems.append(LongVideoProblem(item, os.fspath(frames_root / subject),
                                             f"no video folder {subject}/{subject[1:]}_{code}*: interval left out",
                                             kept=False))
            continue
        video = videos[(own or candidates)[0]]
        if not own:     # rawpic/s19/23_0502funnyerrors: a folder of s23 filed under s19
            problems.append(LongVideoProblem(item, os.fspath(video.folder),
                                             f"the video of {subject} code {code} is filed under {video.subject}: "
                                             f"read from {video.video}"))
        if len(own or candidates) > 1:
            problems.append(LongVideoProblem(item, os.fspath(video.folder),
                                             f"several folders of {subject} code {code} "
                                             f"({', '.join(own or candidates)}): read from {video.video}"))
        keep, fit_problems = fit_to_video(interval, video, item)
        problems += fit_problems
        if keep:
            annotated.add(video.video)
            rows.append({**interval, "video": video.video, "subject": subject, "row": row_number})
    problems += unannotated(videos, annotated, workbook)
    for video in videos.values():
        prefix = video.folder.name.split("_")[0]
        if f"s{int(prefix):02d}" != video.subject and video.video not in annotated:
            problems.append(LongVideoProblem(video.video, os.fspath(video.folder),
                                             f"folder name carries subject {prefix} but sits in {video.subject}: "
                                             f"kept as a video of {video.subject}"))
    return sorted(videos.values(), key=lambda v: v.video), interval_table(rows), problems


def read_casme_sq_workbook(workbook: Path, root: Path) -> tuple[list[tuple[int, dict]], list[tuple[int, str]],
                                                                 list[tuple[str, str]]]:
    """(code rows as (spreadsheet row, {column: cell}), naming rule1 as (participant, subject folder), naming
    rule2 as (4-digit code, video name)). The sheets are addressed by position: the code sheet's name
    differs between copies (CASFEcode_final, CASMEcode_final)."""
    try:
        # keep_default_na=False: cells read as written ('NULL' in the AU column is the coders' text, not a blank)
        sheets = list(pd.read_excel(workbook, header=None, dtype=object, sheet_name=None,
                                    keep_default_na=False).values())
    except Exception as error:   # corrupt files raise zipfile/openpyxl/ValueError errors alike
        raise DatasetError(f"CAS(ME)² at {root}", [f"{workbook}: cannot be read ({error})"]) from error
    if len(sheets) < 3:
        raise DatasetError(f"CAS(ME)² at {root}", [f"{workbook}: has {len(sheets)} sheet(s), not the 3 of the "
                                                   "owners' workbook (codes, naming rule1, naming rule2)"])
    codes = []
    for index, values in enumerate(sheets[0].itertuples(index=False)):
        cells = dict(zip(CASME_SQ_CODE_COLUMNS, [*values, *[None] * len(CASME_SQ_CODE_COLUMNS)], strict=False))
        if not all(is_blank(cells[c]) for c in ("participant", "expression")):
            codes.append((index + 1, cells))
    rule1 = []      # columns: subject number (15), subject folder (s15), participant (1)
    for values in sheets[1].itertuples(index=False):
        participant = sheet_frame(values[2]) if len(values) > 2 else None
        if participant is not None and cell_text(values[1]):
            rule1.append((participant, cell_text(values[1]).lower()))
    rule2 = []      # columns: code (0101 as text or 101 as a number), video name (disgust1)
    for values in sheets[2].itertuples(index=False):
        code = sheet_frame(values[0]) if len(values) > 1 else None
        if code is not None and cell_text(values[1]):
            rule2.append((f"{code:04d}", cell_text(values[1])))
    return codes, rule1, rule2


def casme_sq_interval(cells: dict, row_number: int, folders: dict[int, str],
                      video_codes: dict[str, str]) -> tuple[dict | None, list[tuple[str, bool]]]:
    """One code-sheet row as an interval (None if it cannot be read) and its problems as (reason, kept)."""
    problems: list[tuple[str, bool]] = []
    expression = cell_text(cells["expression"])
    participant = sheet_frame(cells["participant"])
    kind = CASME_SQ_TYPES.get(cell_text(cells["type"]).lower())
    subject = folders.get(participant) if participant is not None else None
    name = expression.rsplit("_", 1)[0].lower()
    if subject is None:
        problems.append((f"participant {cells['participant']!r} is not in naming rule1: row left out", False))
    if name not in video_codes:
        problems.append((f"video name {name!r} of {expression!r} is not in naming rule2: row left out", False))
    if kind is None:
        problems.append((f"type {cells['type']!r} is neither macro-expression nor micro-expression: row left out",
                         False))
    onset, apex, offset = (sheet_frame(cells[c]) for c in ("onset", "apex", "offset"))
    if onset is None or onset < 1:
        problems.append((f"onset {cells['onset']!r} is not a frame number: row left out", False))
    if problems:
        return None, problems
    if apex is None or apex < 1:
        apex = None
    if offset is None or offset == 0:
        # 44 macro rows code no offset: read as ending at the apex (as SOFTNet, MEAN and the MEGC baseline do).
        if apex is None:
            return None, [("neither apex nor offset is coded: row left out", False)]
        problems.append((f"offset {cells['offset']!r} (not coded): the interval ends at the apex {apex}", True))
        offset = apex
    elif apex is not None and offset < apex:
        # disgust1_5 1221/1230/1224 and two more: an interval ending before its own apex; read like an
        # uncoded offset (as LGSNet's loader does), so the interval holds the frame coded as its peak.
        problems.append((f"offset {offset} is before the apex {apex}: the interval ends at the apex", True))
        offset = apex
    if offset < onset:
        return None, [(f"offset {offset} is before the onset {onset}: row left out", False)]
    if apex is None:
        # anger1_1 of participant 17 codes apex 0: the midpoint, as the MEGC baseline reads it.
        apex = (onset + offset) // 2
        problems.append((f"apex {cells['apex']!r} (not coded): taken as the midpoint {apex}", True))
    elif apex < onset:
        problems.append((f"apex {apex} is before the onset {onset}: taken as the midpoint", True))
        apex = (onset + offset) // 2
    emotion = cell_text(cells["emotion"]) or None
    return {"subject_folder": subject, "code": video_codes[name], "expression": expression, "onset": onset,
            "apex": apex, "offset": offset, "type": kind, "emotion": emotion,
            "self_report": cell_text(cells["self_report"]) or None, "aus": cell_text(cells["aus"]) or None}, problems
