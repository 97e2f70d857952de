"""The CASME, SMIC and SAMM adapters and CASME II's cropped variant, each on its small synthetic tree
(pipeline/datasets/synth_writers.py), on trees broken in the ways the real copies can be, under the
4-class and 3-class mappings; and `merflow check-dataset`."""

from __future__ import annotations

import csv
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import h5py
import openpyxl
import pytest
import xlwt
import yaml

from pipeline.artifacts import clip_ids
from pipeline.datasets.casme import read_casme
from pipeline.datasets.casme2 import read_casme2
from pipeline.datasets.samm import read_samm
from pipeline.datasets.sheets import read_xls
from pipeline.datasets.smic import read_smic
from pipeline.datasets.synth import TRUTH_NAME
from pipeline.datasets.synth_writers import SAMM_SHEET, generate_synthetic
from pipeline.errors import BadInputError, DatasetError, ParamsError
from pipeline.faces import align_stage
from pipeline.index import INDEX_COLUMNS, check_dataset, index_stage

REPO = Path(__file__).resolve().parent.parent
MAPPINGS = yaml.safe_load((REPO / "params.yaml").read_text())["mappings"]
PAPER4, MEGC3 = MAPPINGS["paper4"], MAPPINGS["megc3"]
TINY = {"seed": 3, "subjects": 2, "clips_per_subject": 4, "frames_min": 4, "frames_max": 5, "width": 640,
        "height": 480, "face_width_px": 280, "amplitude_px": 2.0, "noise_sigma": 2.0, "head_jitter_px": 0.3,
        "jpeg_quality": 90}
READERS = {"casme": read_casme, "smic": read_smic, "samm": read_samm}
MAPPING_OF = {"casme": PAPER4, "smic": MEGC3, "samm": PAPER4}


@pytest.fixture(scope="module")
def trees(tmp_path_factory) -> dict[str, Path]:
    """One pristine synthetic tree per layout (smic: 3 clips per subject, one per class, to keep its
    BMPs small)."""
    base = tmp_path_factory.mktemp("layouts")
    made = {}
    for layout in ("casme", "smic", "samm", "casme2"):
        params = {**TINY, "clips_per_subject": 3} if layout == "smic" else TINY
        generate_synthetic(layout, base / layout, **params)
        made[layout] = base / layout
    return made


@pytest.fixture
def copy_of(trees, tmp_path):
    def copy(layout: str) -> Path:
        return Path(shutil.copytree(trees[layout], tmp_path / layout))
    return copy


def truth(root: Path) -> dict[str, str]:
    with open(root / TRUTH_NAME, newline="") as handle:
        return {row["clip_id"]: row["emotion"] for row in csv.DictReader(handle)}


def read(layout: str, root: Path, mapping: dict = None, variant: str | None = None):
    mapping = mapping or MAPPING_OF[layout]
    return READERS[layout](root, mapping["emotions"], mapping["classes"], variant)


# --- each adapter on its tree --------------------------------------------------------------------

CLIP_ID = {"casme": r"sub0[12]_EP\d\d_[1-4]", "smic": r"s[12]_(po|ne|sur)_0\d", "samm": r"00[67]_[1-7]_\d"}
SUBJECTS = {"casme": {"sub01", "sub02"}, "smic": {"s1", "s2"}, "samm": {"006", "007"}}
FRAME_NAME = {"casme": r"EP\d\d_\d-(\d+)\.jpg", "smic": r"image(\d{6})\.bmp", "samm": r"00[67]_(\d{5})\.jpg"}


@pytest.mark.parametrize("layout", ["casme", "smic", "samm"])
def test_adapter_reads_every_clip_of_its_synthetic_tree(trees, layout):
    records, problems = read(layout, trees[layout])
    assert problems == []
    per_subject = 3 if layout == "smic" else 4
    assert len(records) == 2 * per_subject
    assert [r["clip_id"] for r in records] == sorted(r["clip_id"] for r in records)
    assert {r["subject"] for r in records} == SUBJECTS[layout]
    assert Counter(r["subject"] for r in records) == dict.fromkeys(SUBJECTS[layout], per_subject)
    emotions = truth(trees[layout])
    mapping = MAPPING_OF[layout]
    for record in records:
        assert re.fullmatch(CLIP_ID[layout], record["clip_id"]), record["clip_id"]
        assert record["emotion"] == emotions[record["clip_id"]].lower()
        assert record["label"] == mapping["emotions"][record["emotion"]]
        assert mapping["classes"][record["label_index"]] == record["label"]
        if layout == "smic":                       # SMIC codes no apex: the align stage estimates it
            assert (record["apex"], record["apex_source"]) == (None, "estimated")
        else:
            assert record["onset"] <= record["apex"] <= record["offset"] and record["apex_source"] == "sheet"
        assert 4 <= record["n_frames"] == record["offset"] - record["onset"] + 1 == len(record["frames"]) <= 5
        numbers = [int(re.fullmatch(FRAME_NAME[layout], p.name).group(1)) for p in record["frames"]]
        assert numbers == list(range(record["onset"], record["offset"] + 1))
        assert all(p.is_file() for p in record["frames"])
    # Every subject shows every class (the generator rotates classes over each subject's clips).
    assert Counter(r["label"] for r in records) == dict.fromkeys(mapping["classes"], 2)


def test_layout_quirks_casme_sections_smic_frame_counter_samm_preamble(trees):
    casme, _ = read("casme", trees["casme"])
    section_a = [r for r in casme if "Section A" in str(r["frames"][0])]
    section_b = [r for r in casme if "Section B" in str(r["frames"][0])]
    assert {r["subject"] for r in section_a} == {"sub01"} and {r["subject"] for r in section_b} == {"sub02"}
    assert all(p.name == f"{r['episode']}-{n}.jpg"                          # Section A: EP07_1-46.jpg
               for r in section_a for n, p in enumerate(r["frames"], start=r["onset"]))
    assert all(p.name == f"{r['episode']}-{n:03d}.jpg"                      # Section B: EP03_2-046.jpg
               for r in section_b for n, p in enumerate(r["frames"], start=r["onset"]))
    assert sorted(p.name for p in (trees["casme"] / "CASME_A").glob("*.xls")) == ["CASME_A-coding-synthetic.xls"]

    smic, _ = read("smic", trees["smic"])
    assert all(r["onset"] > 100_000 and r["apex"] is None for r in smic)
    assert all(p.parent.parent.name == r["emotion"] for r in smic for p in r["frames"][:1])

    samm, _ = read("samm", trees["samm"])
    sheet = openpyxl.load_workbook(trees["samm"] / SAMM_SHEET).active
    header_row = next(row[0].row for row in sheet.iter_rows() if row[0].value == "Subject")
    assert header_row == 14                                        # 13 preamble rows, as the real sheet
    assert cv2.imread(str(samm[0]["frames"][0]), cv2.IMREAD_UNCHANGED).ndim == 2      # grey, as SAMM's camera


def test_four_and_three_class_mappings_count_and_leave_out(trees):
    """CASME under paper4 keeps every clip in 4 classes; under megc3 its 'tense' clips are left out
    (not errors) and 'repression' becomes negative; SMIC has exactly megc3's classes."""
    counts = {}
    for layout in ("casme", "samm", "smic"):
        for name, mapping in (("paper4", PAPER4), ("megc3", MEGC3)):
            records, problems, left_out = check_dataset(trees[layout], layout=layout, emotions=mapping["emotions"],
                                                        classes=mapping["classes"])
            counts[layout, name] = (dict(Counter(r["label"] for r in records)), len(left_out),
                                    len([p for p in problems if not p.left_out]))
    assert counts["casme", "paper4"] == ({"positive": 2, "negative": 2, "surprise": 2, "others": 2}, 0, 0)
    emotions = Counter(truth(Path(str(trees["casme"]))).values())
    assert counts["casme", "megc3"] == ({"positive": 2, "negative": 2 + emotions["repression"], "surprise": 2},
                                        emotions["tense"], 0)
    assert emotions["tense"] + emotions["repression"] == 2
    assert counts["samm", "megc3"] == ({"positive": 2, "negative": 2, "surprise": 2}, 2, 0)   # 'Other' left out
    assert counts["smic", "megc3"] == ({"positive": 2, "negative": 2, "surprise": 2}, 0, 0)
    # SMIC's (and 4DME's) 'positive' and 'negative' are classes of paper4 too; SMIC has no 'others'.
    assert counts["smic", "paper4"] == ({"positive": 2, "negative": 2, "surprise": 2}, 0, 0)


def test_left_out_clips_are_listed_in_excluded_csv_and_do_not_fail_the_index(trees, tmp_path):
    index_csv, excluded_csv = tmp_path / "index.csv", tmp_path / "excluded.csv"
    index_stage(index_csv, excluded_csv, dataset="samm", layout="samm", root=trees["samm"], fps=200,
                emotions=MEGC3["emotions"], classes=MEGC3["classes"], on_bad_clip="fail")
    rows = list(csv.DictReader(open(index_csv, newline="")))
    assert list(rows[0]) == INDEX_COLUMNS and len(rows) == 6 and {r["fps"] for r in rows} == {"200"}
    excluded = list(csv.DictReader(open(excluded_csv, newline="")))
    assert len(excluded) == 2 and all("'other' is left out by the label mapping" in r["reason"] for r in excluded)
    assert all(r["file"].endswith(SAMM_SHEET) for r in excluded)


def test_casme2_cropped_variant_reads_reg_img_frames(trees, copy_of):
    root = copy_of("casme2")
    raw, _ = read_casme2(root, PAPER4["emotions"], PAPER4["classes"])
    with pytest.raises(DatasetError, match="Cropped does not exist"):
        read_casme2(root, PAPER4["emotions"], PAPER4["classes"], "cropped")
    for frame in (root / "CASME2_RAW_selected").rglob("img*.jpg"):     # the owners' crops: faces only, reg_ prefix
        target = root / "Cropped" / frame.relative_to(root / "CASME2_RAW_selected").parent / f"reg_{frame.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), cv2.imread(str(frame))[100:380, 180:460])
    cropped, problems = read_casme2(root, PAPER4["emotions"], PAPER4["classes"], "cropped")
    assert problems == [] and len(cropped) == len(raw) == 8
    assert [r["clip_id"] for r in cropped] == [r["clip_id"] for r in raw]
    assert all(p.name.startswith("reg_img") and "Cropped" in p.parts for r in cropped for p in r["frames"])
    with pytest.raises(ParamsError, match="variant"):
        read_casme2(root, PAPER4["emotions"], PAPER4["classes"], "HS")


def test_registered_crops_skip_detection_and_are_only_resized(copy_of, tmp_path):
    """dataset.<ds>.registered (CASME II's Cropped/): the index marks the clips, and align resizes each
    frame to the aligned size with no detection, so even a crop in which dlib finds no face is kept."""
    root = copy_of("casme2")
    for frame in (root / "CASME2_RAW_selected").rglob("img*.jpg"):      # a mouth-and-chin crop: no face for dlib
        target = root / "Cropped" / frame.relative_to(root / "CASME2_RAW_selected").parent / f"reg_{frame.name}"
        target.parent.mkdir(parents=True, exist_ok=True)
        cv2.imwrite(str(target), cv2.imread(str(frame))[300:420, 250:390])
    align = dict(height=48, width=40, detector_upsample=0, min_score=0.3, eye_y=0.34, eye_distance=0.4)
    for registered in (True, False):
        index_csv = tmp_path / f"index_{registered}.csv"
        index_stage(index_csv, tmp_path / "excluded.csv", dataset="casme2", layout="casme2", root=root, fps=200,
                    emotions=PAPER4["emotions"], classes=PAPER4["classes"], on_bad_clip="fail", variant="cropped",
                    registered=registered)
        rows = list(csv.DictReader(open(index_csv, newline="")))
        assert len(rows) == 8 and all(row.get("registered") == ("1" if registered else None) for row in rows)
        out = tmp_path / f"aligned_{registered}.h5"
        if not registered:
            with pytest.raises(BadInputError, match="no face found"):
                align_stage(index_csv, out, tmp_path / "qc_raw", **align)
            assert not out.exists()
            continue
        align_stage(index_csv, out, tmp_path / "qc", **align)
        with h5py.File(out, "r") as h5:
            first = rows[0]
            clip = h5["clips"][first["clip_id"]]
            source = cv2.cvtColor(cv2.imread(first["frames"].split(";")[0]), cv2.COLOR_BGR2RGB)
            expected = cv2.resize(source, (40, 48), interpolation=cv2.INTER_AREA)
            assert clip["frames"].shape == (int(first["n_frames"]), 48, 40, 3)
            assert (clip["frames"][0] == expected).all()
            assert clip.attrs["registered"] and "landmarks" not in clip
            assert clip["transform"][()].ravel() == pytest.approx([40 / 140, 0, 20 / 140 - 0.5, 0, 48 / 120, 0.2 - 0.5])
        assert len(clip_ids(out)) == 8 and len(list((tmp_path / "qc").glob("*.png"))) == 8


def test_smic_variant_selects_the_camera(copy_of):
    root = copy_of("smic")
    os.rename(root / "HS", root / "NIR")
    with pytest.raises(DatasetError, match=r"no HS/ folder"):
        read("smic", root)
    records, problems = read("smic", root, variant="NIR")
    assert problems == [] and len(records) == 6 and "NIR" in records[0]["frames"][0].parts


# --- broken trees: every problem named, clip, file and reason --------------------------------------

def rewrite_xls(path: Path, edit) -> None:
    """Edit a CASME .xls sheet (xlrd cannot write): read every cell, change them, write with xlwt."""
    cells = read_xls(path).values.tolist()
    edit(cells)
    workbook = xlwt.Workbook()
    sheet = workbook.add_sheet("Sheet1")
    for r, row in enumerate(cells):
        for c, value in enumerate(row):
            sheet.write(r, c, value)
    workbook.save(str(path))


def casme_blank_apex(root):
    sheet = root / "CASME_A" / "CASME_A-coding-synthetic.xls"
    clip = []

    def edit(cells):
        cells[1][cells[0].index("ApexF1")] = ""
        clip.append(f"sub{int(cells[1][0]):02d}_{cells[1][1]}")
    rewrite_xls(sheet, edit)
    return "casme", clip[0], sheet.name, "ApexF1 is blank (no apex coded)"


def casme_missing_frame(root):
    frame = sorted((root / "CASME_B" / "Section B").rglob("*.jpg"))[2]
    frame.unlink()
    return "casme", f"sub02_{frame.parent.name}", frame.name, "frame file is missing"


def casme_subject_without_rows(root):
    shutil.copytree(root / "CASME_A" / "Section A" / "sub01", root / "CASME_A" / "Section A" / "sub05")
    return "casme", "sub05", "sub05", "subject folder has no clips in CASME_A-coding-synthetic.xls"


def smic_clip_in_wrong_class(root):
    folder = next((root / "HS" / "s1" / "micro" / "positive").iterdir())
    folder.rename(root / "HS" / "s1" / "micro" / "negative" / folder.name)
    return "smic", folder.name, folder.name, "in negative/ ('ne' expected)"


def smic_frame_gap(root):
    folder = next((root / "HS" / "s2" / "micro" / "surprise").iterdir())
    sorted(folder.iterdir())[1].unlink()
    return "smic", folder.name, folder.name, "have gaps"


def smic_unknown_class(root):
    (root / "HS" / "s2" / "micro" / "negative").rename(root / "HS" / "s2" / "micro" / "joy")
    return "smic", "s2_ne_01", "joy", "emotion 'joy' is not in the label mapping"


def smic_subject_without_clips(root):
    (root / "HS" / "s3" / "micro").mkdir(parents=True)
    return "smic", "s3", "micro", "subject has no micro-expression clips"


def samm_edit(root, row_offset: int, column: str, value):
    workbook = openpyxl.load_workbook(root / SAMM_SHEET)
    sheet = workbook.active
    header = [cell.value for cell in sheet[14]]
    sheet.cell(row=15 + row_offset, column=header.index(column) + 1, value=value)
    workbook.save(root / SAMM_SHEET)
    return sheet.cell(row=15 + row_offset, column=2).value


def samm_apex_minus_one(root):
    return "samm", samm_edit(root, 0, "Apex Frame", -1), SAMM_SHEET, "Apex Frame is '-1' (no apex coded)"


def samm_offset_before_onset(root):
    return "samm", samm_edit(root, 1, "Offset Frame", 3), SAMM_SHEET, "Onset Frame"


def samm_duplicate_row(root):
    workbook = openpyxl.load_workbook(root / SAMM_SHEET)
    sheet = workbook.active
    sheet.append([cell.value for cell in sheet[16]])
    workbook.save(root / SAMM_SHEET)
    return "samm", sheet.cell(row=16, column=2).value, SAMM_SHEET, "duplicate clip id: sheet rows 16, 23"


def samm_missing_clip_folder(root):
    clip = samm_edit(root, 2, "Notes", None)
    shutil.rmtree(root / "SAMM" / clip[:3] / clip)
    return "samm", clip, clip, "clip folder is missing"


BREAKERS = [casme_missing_frame, casme_subject_without_rows, smic_clip_in_wrong_class,
            smic_frame_gap, smic_unknown_class, smic_subject_without_clips,
            samm_offset_before_onset, samm_duplicate_row, samm_missing_clip_folder]


@pytest.mark.parametrize("quirk", [casme_blank_apex, samm_apex_minus_one], ids=lambda q: q.__name__)
def test_a_clip_without_coded_apex_is_kept_with_a_note(copy_of, quirk):
    layout = quirk.__name__.split("_")[0]
    root = copy_of(layout)
    _, clip_id, _, note = quirk(root)
    mapping = MAPPING_OF[layout]
    records, problems, _ = check_dataset(root, layout=layout, emotions=mapping["emotions"], classes=mapping["classes"])
    assert problems == []
    record = next(r for r in records if r["clip_id"] == clip_id)
    assert (record["apex"], record["apex_source"]) == (None, "estimated")
    assert any(note in n for n in record["notes"])
    assert all(r["apex_source"] == "sheet" and r["notes"] == [] for r in records if r["clip_id"] != clip_id)


@pytest.mark.parametrize("breaker", BREAKERS, ids=[b.__name__ for b in BREAKERS])
def test_each_broken_tree_names_clip_file_and_reason(copy_of, breaker):
    layout = breaker.__name__.split("_")[0]
    root = copy_of(layout)
    _, clip_id, file_name, reason = breaker(root)
    mapping = MAPPING_OF[layout]
    records, problems, _ = check_dataset(root, layout=layout, emotions=mapping["emotions"], classes=mapping["classes"])
    matching = [p for p in problems if p.clip_id == clip_id and file_name in p and reason in p]
    assert matching, f"no problem names {clip_id}, {file_name} and {reason!r}:\n" + "\n".join(problems)
    assert clip_id not in {r["clip_id"] for r in records} or layout == "smic"


@pytest.mark.parametrize("layout, damage, message", [
    ("casme", lambda root: (root / "CASME_B" / "CASME_B-coding-synthetic.xls").unlink(),
     r"CASME_B must hold one \.xls coding sheet \(found none\)"),
    ("casme", lambda root: [shutil.rmtree(root / s) for s in ("CASME_A", "CASME_B")], "neither CASME_A/ nor CASME_B/"),
    ("samm", lambda root: (root / SAMM_SHEET).unlink(), r"need one coding sheet SAMM_Micro_FACS_Codes\*\.xlsx"),
    ("samm", lambda root: samm_edit(root, -1, "Subject", "Participant"), "no header row with the columns"),
    ("samm", lambda root: (root / SAMM_SHEET).write_bytes(b"not a workbook"), "cannot be read"),
    ("smic", lambda root: shutil.rmtree(root / "HS" / "s1") or shutil.rmtree(root / "HS" / "s2"),
     "no subject folders"),
])
def test_unreadable_trees_raise_one_clear_error(copy_of, layout, damage, message):
    root = copy_of(layout)
    damage(root)
    with pytest.raises(DatasetError, match=message):
        read(layout, root)


def test_check_dataset_command_lists_every_problem_and_sets_the_exit_status(trees, copy_of):
    def check(root: Path, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "pipeline.cli", "check-dataset", str(root), *args,
                               "--params", str(REPO / "params.yaml")], capture_output=True, text=True, timeout=120)

    good = check(trees["samm"], "--layout", "samm", "--mapping", "megc3")
    assert good.returncode == 0, good.stderr[-2000:]
    assert "6 good clips from 2 subjects; negative 2, positive 2, surprise 2" in good.stdout
    assert "2 clips left out by the mapping: other 2" in good.stdout and "no problems" in good.stdout

    root = copy_of("samm")
    broken = [samm_offset_before_onset(root), samm_missing_clip_folder(root)]
    _, no_apex, _, _ = samm_apex_minus_one(root)
    bad = check(root, "--layout", "samm")
    assert bad.returncode == 1 and "Traceback" not in bad.stderr
    assert "2 problem(s) in 2 clip(s)" in bad.stdout
    for _, clip_id, file_name, reason in broken:
        assert any(clip_id in line and file_name in line and reason in line for line in bad.stdout.splitlines())
    assert f"1 clip(s) without a coded apex (the align stage estimates it): {no_apex}" in bad.stdout
