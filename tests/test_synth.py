"""The synthetic CASME II generator (pipeline/datasets/synth.py, synth_writers.py, face_photos.py) on small
trees."""

from __future__ import annotations

import csv
import re
from pathlib import Path

import cv2
import numpy as np
import openpyxl
import pytest
import yaml

from pipeline.datasets.face_photos import STAGE_MARGIN_PX, astronaut_identity
from pipeline.datasets.synth import (
    EXPRESSIONS,
    RBF_SIGMA_IOD,
    TRUTH_NAME,
    camera_noise,
    commanded_displacements,
    displacement_field,
    field_at,
    head_jitter,
    inter_ocular,
    motion_profile,
    render_frame,
)
from pipeline.datasets.synth_writers import CASME2_COLUMNS, CASME2_FRAMES_DIR, CASME2_SHEET, generate_casme2
from pipeline.faces import detect_landmarks
from pipeline.imageio import read_rgb

SMALL = {"seed": 7, "subjects": 4, "clips_per_subject": 4, "frames_min": 12, "frames_max": 16, "width": 640,
         "height": 480, "face_width_px": 280, "amplitude_px": 2.0, "noise_sigma": 2.0, "head_jitter_px": 0.3,
         "jpeg_quality": 95}
# No noise, no jitter: every change between frames is the commanded expression motion.
CLEAN = {**SMALL, "seed": 1, "subjects": 2, "frames_min": 8, "frames_max": 10, "noise_sigma": 0.0,
         "head_jitter_px": 0.0}
CASME2_EMOTIONS = {"happiness", "disgust", "sadness", "fear", "surprise", "repression", "others"}
PAPER4 = yaml.safe_load((Path(__file__).parent.parent / "params.yaml").read_text())["mappings"]["paper4"]


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth") / "casme2"
    generate_casme2(out, **SMALL)
    return out


@pytest.fixture(scope="module")
def clean_tree(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("synth_clean") / "casme2"
    generate_casme2(out, **CLEAN)
    return out


def sheet_rows(root: Path) -> tuple[list[str], list[dict]]:
    sheet = openpyxl.load_workbook(root / CASME2_SHEET).active
    values = list(sheet.iter_rows(values_only=True))
    return list(values[0]), [dict(zip(values[0], row, strict=True)) for row in values[1:]]


def truth_rows(root: Path) -> list[dict]:
    with open(root / TRUTH_NAME, newline="") as handle:
        return list(csv.DictReader(handle))


def clip_dir(root: Path, row: dict) -> Path:
    return root / CASME2_FRAMES_DIR / f"sub{int(row['Subject']):02d}" / row["Filename"]


# --- the tree ------------------------------------------------------------------------------------

def test_tree_has_casme2_layout_and_sheet(tree):
    assert sorted(p.name for p in tree.iterdir()) == sorted([CASME2_SHEET, CASME2_FRAMES_DIR, TRUTH_NAME,
                                                             "SOURCES.txt"])
    columns, rows = sheet_rows(tree)
    assert columns == ["Subject", "Filename", "OnsetFrame", "ApexFrame", "OffsetFrame", "Action Units",
                       "Estimated Emotion"] == CASME2_COLUMNS
    assert len(rows) == 16
    assert sorted({row["Subject"] for row in rows}) == ["01", "02", "03", "04"]
    for row in rows:
        assert re.fullmatch(r"EP\d\d_\d\df?", row["Filename"])
        assert row["Estimated Emotion"] in CASME2_EMOTIONS
        assert row["Action Units"] == EXPRESSIONS[row["Estimated Emotion"]][0]
        assert row["OnsetFrame"] < row["ApexFrame"] < row["OffsetFrame"]
        assert 12 <= row["OffsetFrame"] - row["OnsetFrame"] + 1 <= 16
        expected = {f"img{n}.jpg" for n in range(row["OnsetFrame"], row["OffsetFrame"] + 1)}
        assert {p.name for p in clip_dir(tree, row).iterdir()} == expected
    frame = read_rgb(clip_dir(tree, rows[0]) / f"img{rows[0]['OnsetFrame']}.jpg", "first")
    assert frame.shape == (480, 640, 3)
    sources = (tree / "SOURCES.txt").read_text()
    assert "astronaut" in sources and "lfw_subset" in sources and "public domain" in sources


def test_every_subject_shows_all_four_classes(tree):
    _, rows = sheet_rows(tree)
    for subject in {row["Subject"] for row in rows}:
        labels = {PAPER4["emotions"][row["Estimated Emotion"]] for row in rows if row["Subject"] == subject}
        assert labels == set(PAPER4["classes"])
    assert len({row["Estimated Emotion"] for row in rows}) == 7      # 4 negatives + 4 others: all 7 occur


def test_same_params_give_byte_identical_trees(tree, tmp_path):
    again = tmp_path / "again"
    generate_casme2(again, **SMALL)
    files = sorted(p.relative_to(tree) for p in tree.rglob("*") if p.is_file())
    assert files == sorted(p.relative_to(again) for p in again.rglob("*") if p.is_file())
    for relative in files:
        assert (tree / relative).read_bytes() == (again / relative).read_bytes(), relative


def test_regenerating_replaces_the_tree_and_leaves_no_temp_dirs(tmp_path):
    out = tmp_path / "casme2"
    out.mkdir()
    (out / "stale.txt").write_text("from an older run")
    tiny = {**SMALL, "subjects": 1, "clips_per_subject": 1, "frames_min": 3, "frames_max": 3}
    generate_casme2(out, **tiny)
    assert not (out / "stale.txt").exists()
    assert len(list((out / CASME2_FRAMES_DIR / "sub01").iterdir())) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["casme2"]


def test_first_frames_are_detected_by_the_align_stage_detector(tree):
    _, rows = sheet_rows(tree)
    widths = []
    for row in rows:
        first = read_rgb(clip_dir(tree, row) / f"img{row['OnsetFrame']}.jpg", row["Filename"])
        landmarks = detect_landmarks(first, upsample=1, min_score=0.3)       # params.yaml align defaults
        assert landmarks is not None, f"no face in the first frame of sub{row['Subject']}_{row['Filename']}"
        widths.append(landmarks[16, 0] - landmarks[0, 0])
    assert 240 < np.median(widths) < 320                                      # face ~280 px wide


# --- the commanded motion ------------------------------------------------------------------------

def test_commanded_apex_motion_is_1_to_3_px(tree):
    rows = truth_rows(tree)
    assert {row["clip_id"] for row in rows} == {f"sub{int(r['Subject']):02d}_{r['Filename']}"
                                                for r in sheet_rows(tree)[1]}
    magnitudes = np.array([float(row["apex_displacement_px"]) for row in rows])
    assert magnitudes.min() >= 1.0 and magnitudes.max() <= 3.0
    for row in rows:
        assert np.hypot(float(row["apex_dx_px"]), float(row["apex_dy_px"])) == pytest.approx(
            float(row["apex_displacement_px"]), abs=1e-3)


def test_motion_profile_is_zero_at_onset_and_offset_and_one_at_apex():
    profile = motion_profile(13, 5)
    assert profile[0] == 0 and profile[5] == 1 and profile[-1] == pytest.approx(0, abs=1e-7)
    assert np.all(np.diff(profile[:6]) > 0) and np.all(np.diff(profile[5:]) < 0)
    with pytest.raises(ValueError):
        motion_profile(10, 9)


def test_written_frames_move_as_commanded(clean_tree):
    """Without noise and jitter the onset and offset frames are identical, and Lucas-Kanade flow from
    onset to apex at every moved region matches the commanded displacement."""
    by_clip: dict[str, list[dict]] = {}
    for row in truth_rows(clean_tree):
        by_clip.setdefault(row["clip_id"], []).append(row)
    errors = []
    for clip_id, regions in by_clip.items():
        folder = clean_tree / CASME2_FRAMES_DIR / regions[0]["subject"] / clip_id.split("_", 1)[1]
        onset, apex, offset = (cv2.imread(str(folder / f"img{regions[0][k]}.jpg"), cv2.IMREAD_GRAYSCALE)
                               for k in ("onset", "apex", "offset"))
        assert np.array_equal(onset, offset), clip_id
        assert np.abs(apex.astype(int) - onset).max() > 5, clip_id
        points = np.array([[float(r["landmark_x"]), float(r["landmark_y"])] for r in regions], np.float32)
        moved, _, _ = cv2.calcOpticalFlowPyrLK(onset, apex, points.reshape(-1, 1, 2), None,
                                               winSize=(21, 21), maxLevel=1)
        measured = moved.reshape(-1, 2) - points
        commanded = np.array([[float(r["apex_dx_px"]), float(r["apex_dy_px"])] for r in regions])
        errors.append(np.linalg.norm(measured - commanded, axis=1))
    errors = np.concatenate(errors)
    assert len(errors) >= 20
    assert errors.max() < 0.45 and np.median(errors) < 0.15


# --- pure functions ------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def astronaut():
    identity = astronaut_identity(width=640, height=480, face_width_px=280)
    return identity.stage[STAGE_MARGIN_PX:-STAGE_MARGIN_PX, STAGE_MARGIN_PX:-STAGE_MARGIN_PX], \
        identity.landmarks - STAGE_MARGIN_PX


def test_displacement_field_equals_commanded_vector_at_isolated_centre_and_decays():
    centres = np.array([[100.0, 80.0]])
    field = displacement_field((160, 200), centres, np.array([[1.5, -2.0]]), sigma_px=10.0)
    assert field_at(field, centres)[0] == pytest.approx([1.5, -2.0], abs=1e-4)
    assert np.hypot(*field[:, 80, 130]) == pytest.approx(2.5 * np.exp(-4.5), rel=1e-3)    # 3 sigma away
    # Neighbours moving alike do not add up: the field never exceeds the largest vector.
    brow = np.array([[90.0, 80.0], [100.0, 80.0], [110.0, 80.0]])
    field = displacement_field((160, 200), brow, np.tile([0.0, -2.0], (3, 1)), sigma_px=10.0)
    assert np.abs(field).max() <= 2.0 + 1e-5
    assert field_at(field, brow)[:, 1] == pytest.approx([-2.0, -2.0, -2.0], abs=1e-4)


def test_each_emotion_moves_its_own_regions(astronaut):
    """Patterns of different classes point different ways in different places: the cosine
    similarity of two emotions' apex fields over the frame is below 0.6 across classes."""
    image, landmarks = astronaut
    sigma = RBF_SIGMA_IOD * inter_ocular(landmarks)
    fields = {emotion: displacement_field(image.shape[:2], *commanded_displacements(emotion, landmarks, 2.0)[:2],
                                          sigma).ravel() for emotion in EXPRESSIONS}
    for a in EXPRESSIONS:
        for b in EXPRESSIONS:
            if PAPER4["emotions"][a] != PAPER4["emotions"][b]:
                cosine = fields[a] @ fields[b] / np.linalg.norm(fields[a]) / np.linalg.norm(fields[b])
                assert cosine < 0.6, (a, b, cosine)
    # Happiness moves the lip corners up and out, not the brows; surprise the reverse.
    _, happy, regions = commanded_displacements("happiness", landmarks, 2.0)
    assert set(regions) == {"lip corner (right)", "lip corner (left)", "upper lip side (right)",
                            "upper lip side (left)"}
    assert happy[0, 0] < 0 < happy[1, 0] and happy[0, 1] < 0 and happy[1, 1] < 0   # out and up (image y down)
    happy_field = fields["happiness"].reshape(2, *image.shape[:2])
    brows = landmarks[17:27]
    assert np.abs(field_at(happy_field, brows)).max() < 0.01


def test_render_frame_moves_content_by_the_field(astronaut):
    image, landmarks = astronaut
    centres, vectors, _ = commanded_displacements("surprise", landmarks, 3.0)
    field = displacement_field(image.shape[:2], centres, vectors, RBF_SIGMA_IOD * inter_ocular(landmarks))
    still = render_frame(image, field, 0.0, np.zeros(2), None)
    assert np.array_equal(still, image)
    grey = [cv2.cvtColor(f, cv2.COLOR_RGB2GRAY) for f in (image, render_frame(image, field, 1.0, np.zeros(2), None))]
    brow = landmarks[19:20].astype(np.float32).reshape(-1, 1, 2)
    moved, _, _ = cv2.calcOpticalFlowPyrLK(grey[0], grey[1], brow, None, winSize=(21, 21), maxLevel=1)
    assert (moved - brow).ravel() == pytest.approx(field_at(field, landmarks[19:20])[0], abs=0.3)
    shifted = render_frame(image, np.zeros_like(field), 0.0, np.array([2.0, 0.0]), None)
    assert np.array_equal(shifted[:, 10:-10], image[:, 8:-12])                      # whole-pixel head shift


def test_camera_noise_and_head_jitter_have_the_asked_spread():
    rng = np.random.default_rng(0)
    noise = camera_noise(rng, (480, 640, 3), 2.0)
    assert noise.dtype == np.float32 and abs(noise.mean()) < 0.01 and noise.std() == pytest.approx(2.0, rel=0.01)
    assert camera_noise(rng, (4, 4, 3), 0.0) is None
    jitter = head_jitter(rng, 20000, 0.3)
    assert jitter.shape == (20000, 2) and jitter.std(axis=0) == pytest.approx([0.3, 0.3], rel=0.05)
    steps = np.diff(jitter, axis=0).std()
    assert steps < 0.15                                        # smooth: frame-to-frame steps half the spread
