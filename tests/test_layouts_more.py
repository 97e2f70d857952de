"""CAS(ME)3 Part A, MMEW and 4DME, each on its small synthetic tree (pipeline/datasets/synth_writers.py)
and on the quirks of the owners' copies; and `merflow check-dataset ROOT --layout L` without flags for
every layout merflow reads."""

from __future__ import annotations

import csv
import re
import shutil
from collections import Counter
from pathlib import Path

import openpyxl
import pytest
import yaml

from pipeline import cli
from pipeline.datasets.layouts import LAYOUTS
from pipeline.datasets.synth import TRUTH_NAME
from pipeline.datasets.synth_writers import CASME3_SHEET, FOURD_SHEET, MMEW_SHEET, WRITERS, generate_synthetic
from pipeline.errors import DatasetError, ParamsError
from pipeline.index import check_dataset

REPO = Path(__file__).resolve().parent.parent
MAPPINGS = yaml.safe_load((REPO / "params.yaml").read_text())["mappings"]
TINY = {"seed": 3, "subjects": 2, "clips_per_subject": 4, "frames_min": 4, "frames_max": 5, "width": 320,
        "height": 240, "face_width_px": 140, "amplitude_px": 2.0, "noise_sigma": 2.0, "head_jitter_px": 0.3,
        "jpeg_quality": 90}
NEW = ("casme3a", "mmew", "4dme")
CLIP_ID = {"casme3a": r"spNO\.[12]_[ab]_\d+", "mmew": r"S0[12]-0[1-7]-00\d", "4dme": r"S0[12]_1st_00[1-4]_01_1"}
SUBJECTS = {"casme3a": {"spNO.1", "spNO.2"}, "mmew": {"S01", "S02"}, "4dme": {"S01", "S02"}}
FRAME_NAME = {"casme3a": r"(\d+)\.jpg", "mmew": r"(\d+)\.jpg", "4dme": r"S0[12]_1st_00\d_01_1_(\d{5})\.jpg"}
SHEETS = {"casme3a": CASME3_SHEET, "mmew": MMEW_SHEET, "4dme": FOURD_SHEET}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    base = tmp_path_factory.mktemp("layouts_more")
    for layout in LAYOUTS:
        params = {**TINY, "clips_per_subject": 3} if layout == "smic" else TINY
        generate_synthetic(layout, base / layout, **params)
    return {layout: base / layout for layout in LAYOUTS}


@pytest.fixture
def copy_of(trees, tmp_path):
    return lambda layout: Path(shutil.copytree(trees[layout], tmp_path / layout))


def check(layout: str, root: Path, mapping: str | None = None):
    mapping = MAPPINGS[mapping or LAYOUTS[layout].mapping]
    return check_dataset(root, layout=layout, emotions=mapping["emotions"], classes=mapping["classes"])


def edit_sheet(root: Path, layout: str, column: str, value, row: int = 0) -> str:
    """Set one cell of clip row `row`; the row's cells before the edit, by column."""
    workbook = openpyxl.load_workbook(root / SHEETS[layout])
    sheet = workbook.active
    header = [cell.value for cell in sheet[1]]
    before = dict(zip(header, [cell.value for cell in sheet[row + 2]], strict=True))
    sheet.cell(row=row + 2, column=header.index(column) + 1, value=value)
    workbook.save(root / SHEETS[layout])
    return before


@pytest.mark.parametrize("layout", NEW)
def test_adapter_reads_every_clip_of_its_synthetic_tree(trees, layout):
    records, problems, left_out = check(layout, trees[layout])
    assert problems == [] and left_out == []
    assert len(records) == 8 and Counter(r["subject"] for r in records) == dict.fromkeys(SUBJECTS[layout], 4)
    with open(trees[layout] / TRUTH_NAME, newline="") as handle:
        truth = {row["clip_id"]: row["emotion"] for row in csv.DictReader(handle)}
    mapping = MAPPINGS[LAYOUTS[layout].mapping]
    for record in records:
        assert re.fullmatch(CLIP_ID[layout], record["clip_id"]), record["clip_id"]
        assert record["emotion"] == truth[record["clip_id"]].lower()
        assert record["label"] == mapping["emotions"][record["emotion"]]
        assert record["onset"] <= record["apex"] <= record["offset"] and record["apex_source"] == "sheet"
        numbers = [int(re.fullmatch(FRAME_NAME[layout], p.name).group(1)) for p in record["frames"]]
        assert numbers == list(range(record["onset"], record["offset"] + 1)) and 4 <= len(numbers) <= 5
    assert Counter(r["label"] for r in records) == dict.fromkeys(mapping["classes"], 2)


def test_casme3_clips_of_one_task_video_share_its_folder_spelled_in_any_case(copy_of):
    root = copy_of("casme3a")
    records, _, _ = check("casme3a", root)
    by_folder = Counter(r["frames"][0].parent for r in records)
    assert set(by_folder.values()) == {2}                       # two micro-expressions per task video
    assert all(r["frames"][0].parent.name == "color" for r in records)
    (root / "data" / "ME_A" / "spNO.1").rename(root / "data" / "ME_A" / "spNo.1")     # as some copies spell it
    renamed, problems, _ = check("casme3a", root)
    assert problems == [] and [r["clip_id"] for r in renamed] == [r["clip_id"] for r in records]
    assert all("spNo.1" in str(r["frames"][0]) for r in renamed if r["subject"] == "spNO.1")


def test_casme3_labels_on_their_own_worksheet_and_missing_frames_are_named(copy_of):
    root = copy_of("casme3a")
    workbook = openpyxl.load_workbook(root / CASME3_SHEET)
    workbook.create_sheet("readme", 0).append(["CAS(ME)3 Part A: micro-expression labels on the next sheet"])
    workbook.save(root / CASME3_SHEET)
    records, problems, _ = check("casme3a", root)
    assert problems == [] and len(records) == 8
    victim = records[0]["frames"][1]
    victim.unlink()
    _, problems, _ = check("casme3a", root)
    assert [p.path for p in problems] == [str(victim)] and "frame file is missing" in problems[0]


def test_mmew_clip_found_under_any_emotion_folder_and_its_frames_count_from_one(copy_of):
    root = copy_of("mmew")
    records, _, _ = check("mmew", root)
    assert all(r["onset"] == 1 and r["frames"][0].name == "1.jpg" for r in records)
    (root / "Micro_Expression" / "others").rename(root / "Micro_Expression" / "repression")
    renamed, problems, _ = check("mmew", root)
    assert problems == [] and len(renamed) == 8
    assert {r["frames"][0].parent.parent.name for r in renamed if r["emotion"] == "others"} == {"repression"}
    shutil.rmtree(renamed[0]["frames"][0].parent)
    _, problems, _ = check("mmew", root)
    assert [(p.clip_id, p.reason) for p in problems] == [(renamed[0]["clip_id"], "clip folder is missing")]


def test_4dme_a_row_naming_two_emotions_is_left_out_unless_the_mapping_names_both(copy_of, tmp_path):
    root = copy_of("4dme")
    row = edit_sheet(root, "4dme", "Emotion", "Surprise + Positive")
    records, problems, left_out = check("4dme", root)
    assert problems == [] and len(records) == 7
    assert [p.clip_id for p in left_out] == [row["fold_name"]] and "surprise+positive" in left_out[0]
    mapping = {**MAPPINGS["paper4"]["emotions"], "surprise+positive": "surprise"}
    records, problems, left_out = check_dataset(root, layout="4dme", emotions=mapping,
                                                classes=MAPPINGS["paper4"]["classes"])
    assert problems == [] and left_out == [] and len(records) == 8


def test_4dme_frame_numbers_of_the_recording_and_a_missing_frame_named_like_its_neighbours(copy_of):
    root = copy_of("4dme")
    records, _, _ = check("4dme", root)
    assert all(r["onset"] > 2_000 for r in records)
    record = records[0]
    record["frames"][2].unlink()
    _, problems, _ = check("4dme", root)
    expected = record["frames"][2]
    assert [(p.path, p.reason) for p in problems] == [(str(expected), "frame file is missing")]


@pytest.mark.parametrize("layout, damage, message", [
    ("casme3a", lambda root: (root / CASME3_SHEET).unlink(), r"need one coding sheet cas\(me\)3_part_A_ME_label"),
    ("casme3a", lambda root: shutil.rmtree(root / "data"), "no subject folders"),
    ("mmew", lambda root: shutil.rmtree(root / "Micro_Expression"), "Micro_Expression does not exist"),
    ("4dme", lambda root: (root / FOURD_SHEET).rename(root / "labels.xlsx"), "need one coding sheet 4DME_Labelling"),
])
def test_unreadable_trees_raise_one_clear_error(copy_of, layout, damage, message):
    root = copy_of(layout)
    damage(root)
    with pytest.raises(DatasetError, match=message):
        check(layout, root)


def test_every_layout_has_a_synthetic_writer_and_an_unknown_one_is_refused(tmp_path):
    assert list(WRITERS) == list(LAYOUTS)
    with pytest.raises(ParamsError, match=r"synth --layout: unknown layout 'casme4' \(known: casme2, casme, "):
        generate_synthetic("casme4", tmp_path / "casme4", **TINY)
    assert not (tmp_path / "casme4").exists()


@pytest.mark.parametrize("layout", LAYOUTS)
def test_check_dataset_works_without_flags_for_every_layout(trees, layout, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)                                  # no params.yaml here: the packaged one
    assert cli.main(["check-dataset", str(trees[layout]), "--layout", layout]) == 0
    out = capsys.readouterr().out
    assert f"({layout}, mapping {LAYOUTS[layout].mapping}):" in out and "no problems" in out
