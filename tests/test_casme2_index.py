"""The CASME II adapter (pipeline/datasets/casme2.py) and the index stage (pipeline/index.py), on a
small synthetic tree and on copies of it broken in every way the stage must catch."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest
import yaml

from pipeline.datasets.casme2 import FRAMES_DIR, read_casme2
from pipeline.datasets.synth import TRUTH_NAME
from pipeline.datasets.synth_writers import CASME2_SHEET, generate_casme2
from pipeline.errors import DatasetError, ParamsError
from pipeline.index import EXCLUDED_COLUMNS, INDEX_COLUMNS, frame_size, index_stage, jpeg_size

TINY = {"seed": 5, "subjects": 2, "clips_per_subject": 4, "frames_min": 6, "frames_max": 8, "width": 640,
        "height": 480, "face_width_px": 280, "amplitude_px": 2.0, "noise_sigma": 2.0, "head_jitter_px": 0.3,
        "jpeg_quality": 95}
PAPER4 = yaml.safe_load((Path(__file__).parent.parent / "params.yaml").read_text())["mappings"]["paper4"]
EMOTIONS, CLASSES = PAPER4["emotions"], PAPER4["classes"]


@pytest.fixture(scope="module")
def pristine(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("casme2") / "casme2"
    generate_casme2(root, **TINY)
    return root


@pytest.fixture
def root(pristine, tmp_path) -> Path:
    """A fresh copy of the tree for a test to break."""
    return Path(shutil.copytree(pristine, tmp_path / "casme2"))


def run_index(root: Path, out_dir: Path, on_bad_clip: str = "fail") -> tuple[Path, Path]:
    index_csv, excluded_csv = out_dir / "index.csv", out_dir / "excluded.csv"
    index_stage(index_csv, excluded_csv, dataset="casme2", layout="casme2", root=root, fps=200,
                emotions=EMOTIONS, classes=CLASSES, on_bad_clip=on_bad_clip)
    return index_csv, excluded_csv


def read_csv(path: Path) -> tuple[list[str], list[dict]]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        return list(reader.fieldnames), list(reader)


def sheet_clips(root: Path) -> list[dict]:
    sheet = openpyxl.load_workbook(root / CASME2_SHEET).active
    header, *rows = list(sheet.iter_rows(values_only=True))
    return [dict(zip(header, row, strict=True)) for row in rows]


def edit_sheet(root: Path, row_number: int, column: str, value) -> str:
    """Set one cell of sheet row `row_number` (2 = first clip); return that row's clip id."""
    workbook = openpyxl.load_workbook(root / CASME2_SHEET)
    sheet = workbook.active
    header = [cell.value for cell in sheet[1]]
    sheet.cell(row=row_number, column=header.index(column) + 1, value=value)
    workbook.save(root / CASME2_SHEET)
    return clip_id_of(root, row_number)


def clip_id_of(root: Path, row_number: int) -> str:
    clip = sheet_clips(root)[row_number - 2]
    return f"sub{int(clip['Subject']):02d}_{clip['Filename']}"


def clip_folder(root: Path, row_number: int) -> Path:
    clip = sheet_clips(root)[row_number - 2]
    return root / FRAMES_DIR / f"sub{int(clip['Subject']):02d}" / clip["Filename"]


def a_frame(root: Path, row_number: int, offset: int = 2) -> Path:
    clip = sheet_clips(root)[row_number - 2]
    return clip_folder(root, row_number) / f"img{clip['OnsetFrame'] + offset}.jpg"


# --- the adapter ---------------------------------------------------------------------------------

def test_read_casme2_gives_every_clip_with_labels_subjects_and_frames(pristine):
    records, problems = read_casme2(pristine, EMOTIONS, CLASSES)
    assert problems == []
    assert len(records) == 8
    assert [r["clip_id"] for r in records] == sorted(r["clip_id"] for r in records)
    assert {r["subject"] for r in records} == {"sub01", "sub02"}
    with open(pristine / TRUTH_NAME, newline="") as handle:
        truth = {row["clip_id"]: row["emotion"] for row in csv.DictReader(handle)}
    for record in records:
        assert record["clip_id"] == f"{record['subject']}_{record['episode']}"
        assert record["emotion"] == truth[record["clip_id"]]
        assert record["label"] == EMOTIONS[record["emotion"]]
        assert CLASSES[record["label_index"]] == record["label"]
        assert record["onset"] < record["apex"] < record["offset"]
        assert record["n_frames"] == record["offset"] - record["onset"] + 1 == len(record["frames"])
        assert 6 <= record["n_frames"] <= 8
        assert [p.name for p in record["frames"]] == [f"img{n}.jpg" for n in
                                                      range(record["onset"], record["offset"] + 1)]
        assert all(p.is_file() for p in record["frames"])
    assert {r["label"] for r in records} == set(CLASSES)


def test_integer_subjects_read_like_zero_padded_ones(root):
    before, _ = read_casme2(root, EMOTIONS, CLASSES)
    for row_number, clip in enumerate(sheet_clips(root), start=2):
        edit_sheet(root, row_number, "Subject", int(clip["Subject"]))
    assert isinstance(sheet_clips(root)[0]["Subject"], int)
    after, problems = read_casme2(root, EMOTIONS, CLASSES)
    assert problems == [] and after == before


# --- the index stage -----------------------------------------------------------------------------

def test_index_stage_writes_one_sorted_row_per_clip(pristine, tmp_path):
    index_csv, excluded_csv = run_index(pristine, tmp_path)
    columns, rows = read_csv(index_csv)
    assert columns == INDEX_COLUMNS == ["dataset", "clip_id", "subject", "episode", "emotion", "label",
                                        "label_index", "onset", "apex", "apex_source", "offset", "n_frames",
                                        "fps", "notes", "frames"]
    assert len(rows) == 8 and [r["clip_id"] for r in rows] == sorted(r["clip_id"] for r in rows)
    for row in rows:
        frames = row["frames"].split(";")
        assert len(frames) == int(row["n_frames"]) == int(row["offset"]) - int(row["onset"]) + 1
        assert frames[0] == (pristine / FRAMES_DIR / row["subject"] / row["episode"] /
                             f"img{row['onset']}.jpg").as_posix()
        assert row["dataset"] == "casme2" and row["fps"] == "200"
        assert row["apex_source"] == "sheet" and row["notes"] == ""
        assert CLASSES[int(row["label_index"])] == row["label"] == EMOTIONS[row["emotion"]]
    assert read_csv(excluded_csv) == (EXCLUDED_COLUMNS, [])
    assert excluded_csv.read_text().strip() == "clip_id,file,reason"


def remove_frame(root):
    frame = a_frame(root, 2)
    frame.unlink()
    return clip_id_of(root, 2), frame.name, "frame file is missing"


def empty_frame(root):
    frame = a_frame(root, 3)
    frame.write_bytes(b"")
    return clip_id_of(root, 3), frame.name, "empty (0 bytes)"


def truncate_frame(root):
    frame = a_frame(root, 4)
    data = frame.read_bytes()
    frame.write_bytes(data[: len(data) // 2])
    return clip_id_of(root, 4), frame.name, "truncated"


def garbage_frame(root):
    frame = a_frame(root, 5)
    frame.write_bytes(b"this is not an image at all")
    return clip_id_of(root, 5), frame.name, "does not decode"


def resize_frame(root):
    frame = a_frame(root, 6)
    image = cv2.imread(str(frame))
    cv2.imwrite(str(frame), cv2.resize(image, (320, 240)))
    return clip_id_of(root, 6), frame.name, "320x240"


def unknown_emotion(root):
    return edit_sheet(root, 7, "Estimated Emotion", "shame"), CASME2_SHEET, "emotion 'shame' is not in the label"


def reversed_range(root):
    clip = sheet_clips(root)[0]
    return (edit_sheet(root, 2, "OnsetFrame", clip["OffsetFrame"] + 1), CASME2_SHEET,
            "OnsetFrame")


def duplicate_row(root):
    workbook = openpyxl.load_workbook(root / CASME2_SHEET)
    sheet = workbook.active
    sheet.append([cell.value for cell in sheet[3]])
    workbook.save(root / CASME2_SHEET)
    return clip_id_of(root, 3), CASME2_SHEET, "duplicate clip id: sheet rows 3, 10"


def missing_folder(root):
    folder = clip_folder(root, 9)
    shutil.rmtree(folder)
    return clip_id_of(root, 9), folder.name, "clip folder is missing"


def subject_without_rows(root):
    shutil.copytree(root / FRAMES_DIR / "sub01", root / FRAMES_DIR / "sub09")
    return "sub09", "sub09", f"subject folder has no clips in {CASME2_SHEET}"


BREAKERS = [remove_frame, empty_frame, truncate_frame, garbage_frame, resize_frame, unknown_emotion,
            reversed_range, duplicate_row, missing_folder, subject_without_rows]


@pytest.mark.parametrize("breaker", BREAKERS, ids=[b.__name__ for b in BREAKERS])
def test_each_broken_tree_fails_naming_clip_file_and_reason(root, tmp_path, breaker: Callable):
    clip_id, file_name, reason = breaker(root)
    with pytest.raises(DatasetError) as failure:
        run_index(root, tmp_path / "out")
    matching = [p for p in failure.value.problems if clip_id in p and file_name in p and reason in p]
    assert matching, f"no problem names {clip_id}, {file_name} and {reason!r}:\n{failure.value}"
    assert not (tmp_path / "out" / "index.csv").exists()
    assert not (tmp_path / "out").exists() or not list((tmp_path / "out").iterdir())


def test_every_problem_is_reported_at_once(root, tmp_path):
    broken = [breaker(root) for breaker in (remove_frame, truncate_frame, unknown_emotion, missing_folder)]
    with pytest.raises(DatasetError) as failure:
        run_index(root, tmp_path)
    message = str(failure.value)
    assert len(failure.value.problems) == 4
    for clip_id, file_name, reason in broken:
        assert clip_id in message and file_name in message and reason in message


def test_drop_mode_indexes_good_clips_and_lists_the_dropped(root, tmp_path):
    dropped = [breaker(root) for breaker in (truncate_frame, unknown_emotion, missing_folder)]
    index_csv, excluded_csv = run_index(root, tmp_path, on_bad_clip="drop")
    _, rows = read_csv(index_csv)
    dropped_ids = {clip_id for clip_id, _, _ in dropped}
    assert len(dropped_ids) == 3
    assert len(rows) == 8 - len(dropped_ids) and not dropped_ids & {r["clip_id"] for r in rows}
    columns, excluded = read_csv(excluded_csv)
    assert columns == ["clip_id", "file", "reason"]
    assert {r["clip_id"] for r in excluded} == dropped_ids
    emotion_row = next(r for r in excluded if "emotion" in r["reason"])
    assert emotion_row["file"].endswith(CASME2_SHEET) and "'shame'" in emotion_row["reason"]
    assert any(r["file"].endswith(dropped[2][1]) and "clip folder is missing" in r["reason"] for r in excluded)


def test_sheet_quirks_keep_the_clip_and_are_noted(root, tmp_path):
    """What every copy of a real sheet has: an apex coded '/', an apex past the offset, an offset past the
    clip's last frame file, and a known error fixed by a correction. All clips are kept, each quirk noted."""
    clips = sheet_clips(root)
    slash = edit_sheet(root, 2, "ApexFrame", "/")
    outside = edit_sheet(root, 3, "ApexFrame", clips[1]["OffsetFrame"] + 5)
    past_end = edit_sheet(root, 4, "OffsetFrame", clips[2]["OffsetFrame"] + 7)
    wrong = edit_sheet(root, 5, "OffsetFrame", clips[3]["OffsetFrame"] - 2)       # a short offset, as sub07 EP06_01
    fix = {"clip": wrong, "field": "offset", "sheet": clips[3]["OffsetFrame"] - 2,
           "corrected": clips[3]["OffsetFrame"], "source": "frame files"}
    stale = {"clip": slash, "field": "onset", "sheet": 999, "corrected": 1, "source": "an older sheet"}
    index_csv, excluded_csv = out = tmp_path / "index.csv", tmp_path / "excluded.csv"
    index_stage(*out, dataset="casme2", layout="casme2", root=root, fps=200, emotions=EMOTIONS, classes=CLASSES,
                on_bad_clip="fail", corrections=[fix, stale])
    _, rows = read_csv(index_csv)
    by_id = {row["clip_id"]: row for row in rows}
    assert len(rows) == 8 and read_csv(excluded_csv)[1] == []
    assert (by_id[slash]["apex"], by_id[slash]["apex_source"]) == ("", "estimated")
    assert "ApexFrame is '/' (no apex coded)" in by_id[slash]["notes"] and "row 2" in by_id[slash]["notes"]
    assert "not applied: the sheet has" in by_id[slash]["notes"]
    assert (by_id[outside]["apex"], by_id[outside]["apex_source"]) == ("", "estimated")
    assert "row 3: ApexFrame" in by_id[outside]["notes"] and "after the offset" in by_id[outside]["notes"]
    assert int(by_id[past_end]["offset"]) == clips[2]["OffsetFrame"]
    assert f"past the clip's last frame file img{clips[2]['OffsetFrame']}.jpg" in by_id[past_end]["notes"]
    assert int(by_id[wrong]["offset"]) == clips[3]["OffsetFrame"]
    assert int(by_id[wrong]["n_frames"]) == len(by_id[wrong]["frames"].split(";"))
    assert "corrected to" in by_id[wrong]["notes"] and "frame files" in by_id[wrong]["notes"]
    untouched = [row for row in rows if row["clip_id"] not in (slash, outside, past_end, wrong)]
    assert all(row["apex_source"] == "sheet" and row["notes"] == "" for row in untouched)


def test_failing_index_keeps_the_previous_index_and_leaves_no_temp_files(root, tmp_path):
    index_csv, excluded_csv = run_index(root, tmp_path)
    before = index_csv.read_bytes(), excluded_csv.read_bytes()
    truncate_frame(root)
    with pytest.raises(DatasetError):
        run_index(root, tmp_path)
    assert (index_csv.read_bytes(), excluded_csv.read_bytes()) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["casme2", "excluded.csv", "index.csv"]


def test_bad_params_and_missing_tree_are_clear_errors(pristine, tmp_path):
    def run(**changes):
        kwargs = {"dataset": "casme2", "layout": "casme2", "root": pristine, "fps": 200, "emotions": EMOTIONS,
                  "classes": CLASSES, "on_bad_clip": "fail", **changes}
        index_stage(tmp_path / "index.csv", tmp_path / "excluded.csv", **kwargs)

    with pytest.raises(ParamsError, match="unknown layout 'smic2'"):
        run(layout="smic2")
    with pytest.raises(ParamsError, match="on_bad_clip"):
        run(on_bad_clip="skip")
    with pytest.raises(DatasetError, match="does not exist"):
        run(root=tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(DatasetError, match=r"no coding sheet CASME2-coding-\*\.xlsx"):
        run(root=tmp_path / "empty")


# --- frame checks --------------------------------------------------------------------------------

def test_frame_size_reads_jpeg_headers_and_other_formats(tmp_path):
    image = np.random.default_rng(0).integers(0, 256, (23, 37, 3), dtype=np.uint8)
    for name, flags in (("baseline.jpg", []), ("progressive.jpg", [cv2.IMWRITE_JPEG_PROGRESSIVE, 1]),
                        ("frame.png", []), ("frame.bmp", [])):
        cv2.imwrite(str(tmp_path / name), image, flags)
        assert frame_size(tmp_path / name, "c") == (37, 23), name
    assert jpeg_size((tmp_path / "baseline.jpg").read_bytes()) == (37, 23)
    assert jpeg_size(b"\xff\xd8\xff\xda\x00\x02") is None            # scan before any frame header
