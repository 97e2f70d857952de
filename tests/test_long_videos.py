"""The long-video layouts for spotting (pipeline/datasets/long_videos.py, long_video_synth.py): the readers on
small hand-built trees with the real quirks of CAS(ME)² and SAMM Long Videos, the synthetic writers read back
exactly, and `merflow check-dataset` / `merflow synth` on them."""

from __future__ import annotations

import copy
import csv
import hashlib
from pathlib import Path

import numpy as np
import openpyxl
import pandas as pd
import pytest
import yaml

from pipeline import cli
from pipeline.config import validate_params
from pipeline.datasets.casme_sq import read_casme_sq
from pipeline.datasets.long_layouts import read_long_videos
from pipeline.datasets.long_video_synth import CASME_SQ_WORKBOOK, SAMM_LV_SHEET, generate_long_synthetic, plan_events
from pipeline.datasets.long_videos import INTERVAL_COLUMNS
from pipeline.datasets.samm_lv import read_samm_lv
from pipeline.datasets.synth import TRUTH_NAME
from pipeline.errors import DatasetError, ParamsError

REPO = Path(__file__).resolve().parent.parent
TINY = {"seed": 5, "subjects": 2, "videos_per_subject": 1, "width": 160, "height": 120, "face_width_px": 80,
        "amplitude_px": 2.0, "noise_sigma": 2.0, "head_jitter_px": 0.3, "jpeg_quality": 90}
SECONDS = {"casme_sq": 4, "samm_lv": 2}      # 120 frames at 30 fps, 400 at 200 fps


def touch_frames(folder: Path, names: list[str]) -> None:
    """Empty frame files: the readers list frames, they do not decode them."""
    folder.mkdir(parents=True, exist_ok=True)
    for name in names:
        (folder / name).touch()


def save(workbook: openpyxl.Workbook, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    workbook.save(path)


def intervals_of(table) -> list[tuple]:
    """The interval table as tuples of plain values (None for a missing apex or emotion)."""
    return [tuple(None if pd.isna(value) else value for value in row)
            for row in table[INTERVAL_COLUMNS].astype(object).itertuples(index=False)]


# --- CAS(ME)²: a tiny tree with the real quirks ---------------------------------------------------------------

CASME_SQ_CODES = [   # participant, expression, onset, apex, offset, AUs, estimated emotion, type, self-report
    [1, "disgust1_1", 557, 572, 608, "4+10+14+15", "negative", "macro-expression", "disgust"],
    [1, "disgust1_2", 900, 950, 0, "L14", "negative", "macro-expression", "disgust"],        # offset 0
    [1, "disgust1_3", 980, 0, 1000, "4,24", "others", "micro-expression", "happyiness"],     # apex 0
    [2, "disgust2_1", 20, 30, 25, "14or23", "negative", "macro-expression", "disgust"],      # offset < apex
    [7, "happy1_1", 10, 15, 22, "12", "positive", "micro-expression", "happiness"],          # folder under s19
    [7, "happy2_1", 5, 8, 70, "NULL", "positive", "macro-expression", "happiness"],          # past the last frame
    [2, "anger1_1", 5, 10, 20, "4", "negative", "micro-expression", "anger"],                # no folder
]
FOLDER_OF = {1: (15, "s15"), 2: (16, "s16"), 7: (23, "s23")}
# naming rule2's codes stored both ways, as copies of the workbook differ: '0101' as text, 102 as a number
CASME_SQ_NAMES = [["0101", "disgust1"], [102, "disgust2"], ["0401", "anger1"], [502, "happy1"], ["0503", "happy2"],
                  [508, "happy5"]]


def build_casme_sq(root: Path, workbook_name: str = "CAS(ME)^2code_final.xlsx") -> Path:
    workbook = openpyxl.Workbook()
    codes = workbook.active
    codes.title = "CASFEcode_final"
    rule1, rule2 = workbook.create_sheet("naming rule1"), workbook.create_sheet("naming rule2")
    for row in CASME_SQ_CODES:                  # no header rows anywhere
        codes.append(row)
        number, folder = FOLDER_OF[row[0]]
        rule1.append([number, folder, row[0]])  # aligned row for row with the code sheet
    for row in CASME_SQ_NAMES:
        rule2.append(row)
    save(workbook, root / workbook_name)
    rawpic = root / "rawpic"
    touch_frames(rawpic / "s15" / "15_0101disgustingteeth", [f"img{n:03d}.jpg" for n in range(1, 1003)])
    touch_frames(rawpic / "s15" / "15_0508funnydunkey", [f"img{n:03d}.jpg" for n in range(1, 11)])   # no intervals
    touch_frames(rawpic / "s16" / "16_0102eatingworms", [f"img{n:03d}.jpg" for n in range(1, 61)])
    touch_frames(rawpic / "s19" / "23_0502funnyerrors", [f"img{n:03d}.jpg" for n in range(1, 41)])   # s23's
    touch_frames(rawpic / "s23" / "23_0503unnyfarting", [f"img{n:03d}.jpg" for n in range(1, 51)])   # sic
    return root


def reported(problems, *parts: str, kept: bool = True) -> None:
    """Exactly one of a reader's problems holds every part, and it was read around (kept) or left out as said."""
    text = {str(problem): problem.kept for problem in problems}
    found = [line for line in text if all(part in line for part in parts)]
    assert len(found) == 1 and text[found[0]] is kept, (parts, list(text))


@pytest.mark.parametrize("workbook_name", ["CAS(ME)^2code_final.xlsx", "CAS(ME)^2code_final(Updated).xlsx"])
def test_casme_sq_reads_the_owners_workbook_and_folders_with_their_quirks(tmp_path, workbook_name):
    videos, intervals, problems = read_casme_sq(build_casme_sq(tmp_path, workbook_name))
    by_id = {video.video: video for video in videos}
    assert list(by_id) == ["s15/15_0101disgustingteeth", "s15/15_0508funnydunkey", "s16/16_0102eatingworms",
                           "s19/23_0502funnyerrors", "s23/23_0503unnyfarting"]
    long_one = by_id["s15/15_0101disgustingteeth"]
    assert long_one.frame_numbers == tuple(range(1, 1003)) and long_one.fps == 30 and long_one.subject == "s15"
    assert [f.name for f in long_one.frames[997:1001]] == ["img998.jpg", "img999.jpg", "img1000.jpg", "img1001.jpg"]
    assert intervals_of(intervals) == [
        ("s15/15_0101disgustingteeth", "s15", "disgust1_1", 557, 572, 608, "macro", "negative", "disgust",
         "4+10+14+15", 1),
        ("s15/15_0101disgustingteeth", "s15", "disgust1_2", 900, 950, 950, "macro", "negative", "disgust", "L14", 2),
        ("s15/15_0101disgustingteeth", "s15", "disgust1_3", 980, 990, 1000, "micro", "others", "happyiness", "4,24",
         3),
        ("s16/16_0102eatingworms", "s16", "disgust2_1", 20, 30, 30, "macro", "negative", "disgust", "14or23", 4),
        ("s19/23_0502funnyerrors", "s23", "happy1_1", 10, 15, 22, "micro", "positive", "happiness", "12", 5),
        ("s23/23_0503unnyfarting", "s23", "happy2_1", 5, 8, 50, "macro", "positive", "happiness", "NULL", 6),
    ]
    reported(problems, "row 2 (disgust1_2)", "offset 0 (not coded): the interval ends at the apex 950")
    reported(problems, "row 3 (disgust1_3)", "apex 0 (not coded): taken as the midpoint 990")
    reported(problems, "row 4 (disgust2_1)", "offset 25 is before the apex 30")
    reported(problems, "row 5 (happy1_1)", "filed under s19: read from s19/23_0502funnyerrors")
    reported(problems, "row 6 (happy2_1)", "offset 70 is past the video's last frame img050.jpg: clipped to frame 50")
    reported(problems, "row 7 (anger1_1)", "s16/16_0401", "interval left out", kept=False)
    reported(problems, "s15/15_0508funnydunkey", "no intervals in")
    assert len(problems) == 7


def test_casme_sq_without_a_workbook_or_frames_is_one_clear_error(tmp_path):
    root = build_casme_sq(tmp_path / "a")
    (root / "CAS(ME)^2code_final.xlsx").unlink()
    with pytest.raises(DatasetError, match=r"no sheet \*code_final\*\.xlsx in .*a"):
        read_casme_sq(root)
    root = build_casme_sq(tmp_path / "b")
    for frame in (root / "rawpic").rglob("*.jpg"):
        frame.unlink()
    with pytest.raises(DatasetError, match=r"no video folders with frames in .*rawpic"):
        read_casme_sq(root)


# --- SAMM Long Videos: a tiny tree with the real quirks -------------------------------------------------------

SAMM_LV_ROWS = [   # Subject, Filename, Inducement Code, Onset, Apex, Offset, Duration, Type, Action Units, Notes
    [6, "006_1_1", 1, 10.4, 20.0, 30.6, 21, "Macro", "R12", None],          # frames stored as floats
    [6, "006_1_2", 1, 0, 50, 200, 200, "Macro", "12+25", "long"],           # onset 0
    [6, "006_1_3", 1, 210, -1, 250, 41, "Micro - 1/2", "4", None],           # apex -1
    [20, "020_6_5", 6, 30, 60, 150, 121, "Macro", "1+2", None],             # offset past the last frame (120)
    [21, "021_3_1", 3, 5, 10, 40, 36, "Micro - 1/2", "L14", None],           # 5-digit frame names
    [36, "036_7_4", 7, 50, 70, 100, 51, "Macro", "6+12", None],             # offset past the last frame (80)
    [12, "012_4_1", 4, 10, 20, 30, 21, "Micro - 1/2", "14", None],           # no video folder
]
SAMM_LV_PREAMBLE = [["SAMM Long Videos Dataset - FACS Codes"], [], ["Symbol Key:"], ['"/" = or'], ["AU Help:"],
                    ['"L2 or R2" = Unilateral AU 2'],
                    ['"A2" = Asymmetric AU 2', None, None, None, None,
                     "NOTE: Subjects with Apex Frame not annotated were labelled as -1."], [], []]


def build_samm_lv(root: Path, sheet_name: str = "SAMM_LongVideos_V2_Release.xlsx",
                  videos_under: str = "SAMM_longvideos") -> Path:
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "FACS_Movement_Only"
    for line in SAMM_LV_PREAMBLE:                 # 9 preamble rows, the header on row 10
        sheet.append(line)
    sheet.append(["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes"])
    for row in SAMM_LV_ROWS:
        sheet.append(row)
    save(workbook, root / sheet_name)
    videos = root / videos_under
    for video, last, digits in (("006_1", 300, 4), ("020_6", 120, 4), ("021_3", 50, 5), ("036_7", 80, 4)):
        touch_frames(videos / video, [f"{video}_{n:0{digits}d}.jpg" for n in range(1, last + 1)])
    return root


@pytest.mark.parametrize("sheet_name, videos_under", [
    ("SAMM_LongVideos_V2_Release.xlsx", "SAMM_longvideos"),
    ("SAMM_LongVideos_V3_Release.xlsx", "SAMM_longvideos/SAMM_longvideos"),   # unpacked twice
    ("SAMM_LongVideos_V1_Release.xlsx", "."),
])
def test_samm_lv_reads_the_release_sheet_and_folders_with_their_quirks(tmp_path, sheet_name, videos_under):
    videos, intervals, problems = read_samm_lv(build_samm_lv(tmp_path, sheet_name, videos_under))
    by_id = {video.video: video for video in videos}
    assert list(by_id) == ["006_1", "020_6", "021_3", "036_7"]
    assert by_id["021_3"].frame_numbers == tuple(range(1, 51)) and by_id["021_3"].frames[0].name == "021_3_00001.jpg"
    assert by_id["006_1"].fps == 200 and by_id["006_1"].subject == "006"
    assert intervals_of(intervals) == [
        ("006_1", "006", "006_1_2", 1, 50, 200, "macro", None, None, "12+25", 12),
        ("006_1", "006", "006_1_1", 10, 20, 31, "macro", None, None, "R12", 11),
        ("006_1", "006", "006_1_3", 210, None, 250, "micro", None, None, "4", 13),
        ("020_6", "020", "020_6_5", 30, 60, 120, "macro", None, None, "1+2", 14),
        ("021_3", "021", "021_3_1", 5, 10, 40, "micro", None, None, "L14", 15),
        ("036_7", "036", "036_7_4", 50, 70, 80, "macro", None, None, "6+12", 16),
    ]
    reported(problems, "row 11 (006_1_1)", "Onset, Offset fractional: rounded")
    reported(problems, "row 12 (006_1_2)", "Onset 0: the interval starts at frame 1")
    reported(problems, "row 13 (006_1_3)", "Apex -1 (not annotated")
    reported(problems, "row 14 (020_6_5)",
             "offset 150 is past the video's last frame 020_6_0120.jpg: clipped to frame 120")
    reported(problems, "row 16 (036_7_4)", "offset 100 is past", "clipped to frame 80")
    reported(problems, "row 17 (012_4_1)", "video folder is missing: interval left out", kept=False)
    assert len(problems) == 6


def test_samm_lv_reads_the_newest_of_several_sheets_and_says_so(tmp_path):
    root = build_samm_lv(tmp_path, "SAMM_LongVideos_V3_Release.xlsx")
    build_samm_lv(tmp_path, "SAMM_LongVideos_V2_Release.xlsx")
    _, _, problems = read_samm_lv(root)
    notes = [str(p) for p in problems if p.item == "sheet"]
    assert len(notes) == 1 and "V3_Release.xlsx): several sheets; read this one, not SAMM_LongVideos_V2" in notes[0]


# --- the synthetic writers ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def synthetic(tmp_path_factory) -> dict[str, tuple[Path, list]]:
    base = tmp_path_factory.mktemp("long_videos")
    return {layout: (base / layout, generate_long_synthetic(layout, base / layout, seconds=seconds, **TINY))
            for layout, seconds in SECONDS.items()}


@pytest.mark.parametrize("layout", SECONDS)
def test_synthetic_long_videos_read_back_with_exactly_the_planned_intervals(synthetic, layout):
    root, plans = synthetic[layout]
    videos, intervals, problems = read_long_videos(root, layout)
    assert problems == []
    fps = {"casme_sq": 30, "samm_lv": 200}[layout]
    assert [len(video.frames) for video in videos] == [SECONDS[layout] * fps] * 2
    assert all(video.frame_numbers == tuple(range(1, len(video.frames) + 1)) for video in videos)
    planned = sorted((video.video, event.onset, event.apex, event.offset, event.kind)
                     for video, plan in zip(videos, plans, strict=True) for event in plan.events
                     if event.kind != "blink")
    assert sorted(zip(intervals["video"], intervals["onset"], intervals["apex"], intervals["offset"],
                      intervals["type"], strict=True)) == planned
    assert set(intervals["type"]) == {"macro", "micro"}
    with open(root / TRUTH_NAME, newline="") as handle:
        truth = list(csv.DictReader(handle))
    assert {row["kind"] for row in truth} == {"macro", "micro", "blink"}
    for plan in plans:
        spans = [(event.onset, event.offset) for event in plan.events]
        assert all(end < start for (_, end), (start, _) in zip(spans, spans[1:], strict=False))   # no overlaps
        assert spans[0][0] > 1 and spans[-1][1] < plan.n_frames                                 # neutral ends
        for event in plan.events:
            seconds = (event.offset - event.onset + 1) / fps
            low, high = {"macro": (0.5, 4.0), "micro": (0.2, 0.5), "blink": (0.09, 0.31)}[event.kind]
            assert low <= seconds < high and event.onset < event.apex < event.offset, event


def test_synthetic_sheets_are_the_owners_formats(synthetic):
    casme = openpyxl.load_workbook(synthetic["casme_sq"][0] / CASME_SQ_WORKBOOK)
    assert casme.sheetnames == ["CASFEcode_final", "naming rule1", "naming rule2"]
    first = [cell.value for cell in casme.worksheets[0][1]]
    assert first[0] == 1 and first[7] in ("macro-expression", "micro-expression")      # data from row 1: no header
    assert casme.worksheets[1].max_row == casme.worksheets[0].max_row
    samm = openpyxl.load_workbook(synthetic["samm_lv"][0] / SAMM_LV_SHEET).active
    assert samm.title == "FACS_Movement_Only" and samm.cell(10, 2).value == "Filename"
    assert {samm.cell(row, 8).value for row in range(11, samm.max_row + 1)} == {"Macro", "Micro - 1/2"}


def test_synthetic_long_videos_are_byte_reproducible(synthetic, tmp_path):
    def digest(root: Path) -> dict[str, str]:
        return {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                for p in sorted(root.rglob("*")) if p.is_file()}
    generate_long_synthetic("casme_sq", tmp_path / "again", seconds=SECONDS["casme_sq"], **TINY)
    assert digest(tmp_path / "again") == digest(synthetic["casme_sq"][0])


@pytest.mark.parametrize("layout", SECONDS)
def test_check_dataset_on_a_synthetic_long_video_tree(synthetic, layout, capsys):
    root, plans = synthetic[layout]
    assert cli.main(["check-dataset", str(root), "--layout", layout]) == 0
    out = capsys.readouterr().out
    n_frames = SECONDS[layout] * {"casme_sq": 30, "samm_lv": 200}[layout]
    counts = {kind: sum(e.kind == kind for p in plans for e in p.events) for kind in ("macro", "micro")}
    assert (f"2 videos, {2 * n_frames} frames, 2 subjects" in out
            and f"intervals: macro {counts['macro']}, micro {counts['micro']}" in out and "no problems" in out)


@pytest.mark.parametrize("layout", SECONDS)
def test_check_dataset_without_a_sheet_is_a_clear_error_naming_the_path(synthetic, layout, tmp_path, capsys):
    root, _ = synthetic[layout]
    sheet = {"casme_sq": CASME_SQ_WORKBOOK, "samm_lv": SAMM_LV_SHEET}[layout]
    copy_root = tmp_path / "copy"
    for path in root.rglob("*"):
        if path.is_file() and path.name != sheet:
            (copy_root / path.relative_to(root)).parent.mkdir(parents=True, exist_ok=True)
            (copy_root / path.relative_to(root)).write_bytes(path.read_bytes())
    assert cli.main(["check-dataset", str(copy_root), "--layout", layout]) == 1
    err = capsys.readouterr().err
    assert err.startswith("merflow: error: dataset ") and "no sheet" in err and str(copy_root) in err
    assert "Traceback" not in err


def test_check_dataset_lists_notes_and_fails_on_what_it_left_out(tmp_path, capsys):
    assert cli.main(["check-dataset", str(build_casme_sq(tmp_path)), "--layout", "casme_sq"]) == 1
    out = capsys.readouterr().out
    assert "5 videos, 1162 frames, 4 subjects (s15, s16, s19, s23); 6 intervals: macro 4, micro 2" in out
    assert "6 note(s): read around, data kept:" in out and "1 problem(s): left out:" in out


def test_merflow_synth_writes_long_videos_and_refuses_short_clip_flags(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                  # no params.yaml here: the packaged one
    overlay = tmp_path / "small.yaml"
    overlay.write_text(yaml.safe_dump({"synth": {"width": 160, "height": 120, "face_width_px": 80}}))
    params = ["--params", str(REPO / "params.yaml"), str(overlay)]
    assert cli.main(["synth", "--layout", "samm_lv", "--out", "lv", "--seconds", "2", "--subjects", "1", *params]) == 0
    assert sorted(p.name for p in (tmp_path / "lv" / "SAMM_longvideos").iterdir()) == ["006_1"]
    assert len(list((tmp_path / "lv" / "SAMM_longvideos" / "006_1").glob("006_1_????.jpg"))) == 400
    assert cli.main(["synth", "--layout", "samm_lv", "--out", "x", "--frames-min", "4", *params]) == 1
    assert cli.main(["synth", "--layout", "casme2", "--out", "y", "--seconds", "4", *params]) == 1
    err = capsys.readouterr().err
    assert "--frames-min is for the short-clip layouts" in err and "--seconds is for the long-video layouts" in err


def test_long_video_params_are_validated():
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    for change in ({"seconds": 1}, {"subjects": 23}, {"frames": 4}):
        bad = copy.deepcopy(params)
        bad["synth_long_videos"].update(change)
        with pytest.raises(ParamsError, match="synth_long_videos"):
            validate_params(bad)
    with pytest.raises(ParamsError, match="too short"):
        plan_events(np.random.default_rng(0), n_frames=20, fps=30)      # two thirds of a second
