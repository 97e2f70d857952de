"""The align stage on real face photos: skimage's astronaut placed (and moved) in 640x480 frames."""

from __future__ import annotations

import csv
import functools
from pathlib import Path

import cv2
import h5py
import numpy as np
import pytest
import skimage.data

from pipeline import faces
from pipeline.artifacts import file_sha256, read_provenance
from pipeline.errors import BadInputError, DatasetError
from pipeline.imageio import read_rgb, write_rgb

ALIGN = dict(height=64, width=48, eye_y=0.36, eye_distance=0.42)
STAGE_PARAMS = dict(ALIGN, detector_upsample=1, min_score=0.3)
FACE_CENTRE = (225.0, 140.0)  # about the middle of the astronaut's face in the 512x512 photo


@functools.cache
def astronaut() -> np.ndarray:
    return skimage.data.astronaut()


def face_frame(dx: float = 0.0, dy: float = 0.0, scale: float = 1.0, angle_deg: float = 4.0) -> np.ndarray:
    """640x480 frame with the astronaut's face near the centre, moved by (dx, dy) frame pixels.

    The photo is resampled once (bicubic) per frame, so a sub-pixel (dx, dy) is a true sub-pixel move.
    """
    matrix = cv2.getRotationMatrix2D(FACE_CENTRE, angle_deg, scale)
    matrix[:, 2] += np.array([320.0, 240.0]) - FACE_CENTRE + (dx, dy)
    return cv2.warpAffine(astronaut(), matrix, (640, 480), flags=cv2.INTER_CUBIC, borderValue=(110, 110, 110))


def blank_frame() -> np.ndarray:
    return np.full((480, 640, 3), 110, np.uint8)


def write_frames(folder: Path, frames: list[np.ndarray]) -> list[str]:
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for t, frame in enumerate(frames):
        write_rgb(folder / f"img{t + 1}.jpg", frame)
        paths.append(str(folder / f"img{t + 1}.jpg"))
    return paths


def write_index(index_csv: Path, clips: dict[str, list[str]], apex: int | str = 3) -> Path:
    """index.csv as the index stage writes it; onset/apex/offset are frame numbers (1-based here); apex
    "" is a clip whose sheet codes none."""
    with open(index_csv, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=faces.INDEX_COLUMNS)
        writer.writeheader()
        for number, (clip_id, paths) in enumerate(clips.items()):
            writer.writerow(dict(dataset="casme2", clip_id=clip_id, subject=f"{number + 1:02d}", episode="EP01",
                                 emotion="happiness", label="positive", label_index=0, onset=1, apex=apex,
                                 offset=len(paths), n_frames=len(paths), fps=200.0, frames=";".join(paths)))
    return index_csv


# --- the maths --------------------------------------------------------------------------------------


def test_landmarks_found_on_astronaut_frame():
    landmarks = faces.detect_landmarks(face_frame(), upsample=1, min_score=0.3)
    assert landmarks is not None and landmarks.shape == (68, 2)
    right_eye, left_eye = faces.eye_centres(landmarks)
    assert right_eye[0] < left_eye[0]  # the subject's right eye is on the image's left
    assert 38 < np.linalg.norm(left_eye - right_eye) < 50  # ~43 px in the 512x512 photo
    assert faces.detect_landmarks(blank_frame()) is None


def test_template_eye_positions_are_symmetric_and_fixed_by_params():
    eyes = faces.template_eye_positions(**ALIGN)
    assert eyes[:, 1] == pytest.approx([0.36 * 64 - 0.5] * 2)  # 22.54: row in pixel-centre coordinates
    assert eyes[:, 0].mean() == pytest.approx((48 - 1) / 2)
    assert eyes[1, 0] - eyes[0, 0] == pytest.approx(0.42 * 48)


def rotation_deg(matrix: np.ndarray) -> float:
    return float(np.degrees(np.arctan2(matrix[1, 0], matrix[0, 0])))


def test_similarity_maps_eye_centres_exactly_onto_template():
    landmarks = faces.detect_landmarks(face_frame(angle_deg=8.0))
    matrix = faces.similarity_to_template(landmarks, **ALIGN)
    linear = matrix[:, :2]
    assert linear[0, 0] == pytest.approx(linear[1, 1]) and linear[0, 1] == pytest.approx(-linear[1, 0])
    upright = faces.similarity_to_template(faces.detect_landmarks(face_frame(angle_deg=0.0)), **ALIGN)
    assert rotation_deg(matrix) - rotation_deg(upright) == pytest.approx(8.0, abs=1.0)  # undoes the head roll
    moved = faces.transform_points(matrix, np.array(faces.eye_centres(landmarks)))
    np.testing.assert_allclose(moved, faces.template_eye_positions(**ALIGN), atol=1e-4)  # float32 landmarks
    assert faces.transform_scale(matrix) == pytest.approx(0.42 * 48 / 43.4, rel=0.1)


def test_redetected_eyes_on_aligned_face_sit_at_template_positions():
    """Re-run dlib on a larger aligned frame (eyes 80 px apart, 4x the 64x48 template's 20 px)."""
    frame = face_frame(angle_deg=6.0)
    big = dict(height=320, width=320, eye_y=0.4, eye_distance=0.25)
    aligned = faces.align_clip(frame[None], faces.detect_landmarks(frame), **big)[0]
    redetected = faces.detect_landmarks(aligned)
    error_px = np.abs(np.array(faces.eye_centres(redetected)) - faces.template_eye_positions(**big))
    assert error_px.max() < 80 / (0.42 * 48)  # under 1 px of the 64x48 template


def test_align_clip_shape_and_dtype():
    frames = np.stack([face_frame(), face_frame(dx=1.0)])
    aligned = faces.align_clip(frames, faces.detect_landmarks(frames[0]), **ALIGN)
    assert aligned.shape == (2, 64, 48, 3) and aligned.dtype == np.uint8
    assert 60 < aligned.mean() < 220 and aligned.std() > 20  # a face, not border


@pytest.mark.parametrize("scale", [1.0, 2.5])  # face ~93 px and ~230 px wide (CASME II framing)
def test_subpixel_translation_survives_alignment_scaled_by_transform(scale):
    shifts = np.array([(0.5, 0.25), (1.5, -0.75), (2.5, 1.0), (4.0, 2.0)])  # frame pixels
    frames = np.stack([face_frame(scale=scale)] + [face_frame(dx, dy, scale) for dx, dy in shifts])
    landmarks = faces.detect_landmarks(frames[0])
    matrix = faces.similarity_to_template(landmarks, **ALIGN)
    aligned = faces.align_clip(frames, landmarks, **ALIGN).astype(np.float32).mean(axis=-1)
    expected = shifts @ matrix[:, :2].T  # the frame motion, rotated and scaled by the transform
    measured = []
    for moved in aligned[1:]:
        warp = np.eye(2, 3, dtype=np.float32)  # ECC: moved(x + w) ~ onset(x), so w is the motion
        criteria = (cv2.TERM_CRITERIA_EPS | cv2.TERM_CRITERIA_COUNT, 100, 1e-6)
        _, warp = cv2.findTransformECC(aligned[0], moved, warp, cv2.MOTION_TRANSLATION, criteria, None, 1)
        measured.append(warp[:, 2])
    assert np.linalg.norm(expected, axis=1).min() < 0.3  # sub-pixel motion in the aligned frame
    np.testing.assert_allclose(measured, expected, atol=0.04)


def test_antialiasing_removes_detail_finer_than_the_aligned_pixels():
    """A grating at 0.35 cycles/frame px is ~1.9 cycles per aligned px: it must vanish, not alias."""
    landmarks = faces.detect_landmarks(face_frame(scale=2.5))
    y, x = np.mgrid[:480, :640]
    grating = np.repeat((128 + 100 * np.sin(2 * np.pi * (0.35 * x + 0.1 * y)))[..., None], 3, axis=2)
    aligned = faces.align_clip(grating.astype(np.uint8)[None], landmarks, **ALIGN)[0]
    matrix = faces.similarity_to_template(landmarks, **ALIGN)
    plain = cv2.warpAffine(grating.astype(np.uint8), matrix, (48, 64), flags=cv2.INTER_LINEAR)
    assert plain.std() > 30  # what plain bilinear sampling would leave: a strong false pattern
    assert aligned.std() < 1.0
    assert faces.antialias_sigma(1.0) == 0.0 and faces.antialias_sigma(0.25) == pytest.approx(0.5 * np.sqrt(15))


def test_detection_frames_start_at_onset_and_spread_over_the_clip():
    assert faces.detection_frame_indices(45) == [0, 11, 22, 33, 44]
    assert faces.detection_frame_indices(3) == [0, 1, 2]


# --- the stage --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def aligned_dataset(tmp_path_factory) -> dict:
    """Two clips (one whose onset frame has no face) run through align_stage once, for several tests."""
    root = tmp_path_factory.mktemp("casme2")
    clips = {
        "sub01_EP01": write_frames(root / "sub01" / "EP01", [face_frame(dx=0.5 * t) for t in range(4)]),
        "sub02_EP02": write_frames(root / "sub02" / "EP02",
                                   [blank_frame()] + [face_frame(dy=0.5 * t) for t in range(3)]),
    }
    index_csv = write_index(root / "index.csv", clips)
    out_h5, qc_dir = root / "aligned.h5", root / "align_qc"
    qc_dir.mkdir()
    (qc_dir / "stale.png").write_bytes(b"from an earlier run")
    faces.align_stage(index_csv, out_h5, qc_dir, **STAGE_PARAMS)
    return dict(root=root, index_csv=index_csv, out_h5=out_h5, qc_dir=qc_dir)


def test_stage_writes_clip_store_with_aligned_frames_landmarks_and_transform(aligned_dataset):
    with h5py.File(aligned_dataset["out_h5"], "r") as h5:
        assert list(h5["clips"]) == ["sub01_EP01", "sub02_EP02"]
        clip = h5["clips/sub01_EP01"]
        assert clip["frames"].shape == (4, 64, 48, 3) and clip["frames"].dtype == np.uint8
        assert clip["landmarks"].shape == (68, 2) and clip["landmarks"].dtype == np.float32
        assert clip["transform"].shape == (2, 3)
        assert dict(clip.attrs) == dict(subject="01", emotion="happiness", label="positive", label_index=0,
                                        onset=1, apex=3, apex_source="sheet", offset=4, fps=200.0,
                                        landmark_frame=0)
        eyes = np.array(faces.eye_centres(clip["landmarks"][()]))
        np.testing.assert_allclose(eyes, faces.template_eye_positions(**ALIGN), atol=1e-3)
        # The onset frame of clip 2 is blank: its face was found on the next frame tried.
        assert h5["clips/sub02_EP02"].attrs["landmark_frame"] == 1


def test_clip_without_coded_apex_gets_the_estimate_from_its_aligned_face(tmp_path):
    """The face moves out and back (0, 1.5, 4, 1.5, 0 px): the estimated apex is the frame of largest move."""
    paths = write_frames(tmp_path / "sub01" / "EP01", [face_frame(dx=dx) for dx in (0, 1.5, 4, 1.5, 0)])
    index_csv = write_index(tmp_path / "index.csv", {"sub01_EP01": paths}, apex="")
    faces.align_stage(index_csv, tmp_path / "aligned.h5", tmp_path / "qc", **STAGE_PARAMS)
    with h5py.File(tmp_path / "aligned.h5", "r") as h5:
        attrs = h5["clips/sub01_EP01"].attrs
        assert (attrs["apex"], attrs["apex_source"]) == (3, "estimated")     # frame numbers start at 1 here


def test_stage_records_provenance(aligned_dataset):
    prov = read_provenance(aligned_dataset["out_h5"])
    assert prov["stage"] == "align"
    assert prov["params"] == STAGE_PARAMS
    assert prov["inputs"]["index"]["sha256"] == file_sha256(aligned_dataset["index_csv"])


def test_stage_writes_one_qc_thumbnail_per_clip_and_replaces_old_ones(aligned_dataset):
    pngs = sorted(path.name for path in aligned_dataset["qc_dir"].iterdir())
    assert pngs == ["sub01_EP01.png", "sub02_EP02.png"]
    thumbnail = read_rgb(aligned_dataset["qc_dir"] / "sub01_EP01.png", "sub01_EP01")
    assert thumbnail.shape[0] == 18 + 4 * 64 and thumbnail.shape[1] > 3 * 4 * 48
    assert not list(aligned_dataset["root"].glob(".align*"))  # no temporaries left


def check_failed_stage_left_nothing(root: Path) -> None:
    assert not (root / "aligned.h5").exists() and not (root / "align_qc").exists()
    assert not [path for path in root.iterdir() if path.name.startswith(".")]


def test_clip_without_a_face_fails_naming_clip_and_files(tmp_path):
    paths = write_frames(tmp_path / "EP01", [blank_frame()] * 3)
    good = write_frames(tmp_path / "EP00", [face_frame()] * 2)
    index_csv = write_index(tmp_path / "index.csv", {"good_clip": good, "faceless": paths})
    with pytest.raises(BadInputError) as error:
        faces.align_stage(index_csv, tmp_path / "aligned.h5", tmp_path / "align_qc", **STAGE_PARAMS)
    assert error.value.clip_id == "faceless" and error.value.path == paths[0]
    assert "no face" in str(error.value) and all(path in str(error.value) for path in paths)
    check_failed_stage_left_nothing(tmp_path)


def test_unreadable_frame_fails_naming_clip_and_file(tmp_path):
    paths = write_frames(tmp_path / "EP01", [face_frame()] * 3)
    Path(paths[1]).write_bytes(b"this is not a jpeg")
    index_csv = write_index(tmp_path / "index.csv", {"broken": paths})
    with pytest.raises(BadInputError, match="does not decode") as error:
        faces.align_stage(index_csv, tmp_path / "aligned.h5", tmp_path / "align_qc", **STAGE_PARAMS)
    assert error.value.clip_id == "broken" and error.value.path == paths[1]
    check_failed_stage_left_nothing(tmp_path)


def test_frames_of_different_sizes_fail(tmp_path):
    paths = write_frames(tmp_path / "EP01", [face_frame(), face_frame()[:400]])
    index_csv = write_index(tmp_path / "index.csv", {"mixed": paths})
    with pytest.raises(BadInputError, match="640x400") as error:
        faces.align_stage(index_csv, tmp_path / "aligned.h5", tmp_path / "align_qc", **STAGE_PARAMS)
    assert error.value.path == paths[1]
    check_failed_stage_left_nothing(tmp_path)


def test_malformed_index_lists_every_problem(tmp_path):
    paths = write_frames(tmp_path / "EP01", [blank_frame()] * 2)
    index_csv = write_index(tmp_path / "index.csv", {"a": paths, "b": paths})
    rows = index_csv.read_text().splitlines()
    rows[2] = rows[2].replace("b,02", "a,02")  # duplicate clip id
    rows.append(rows[1].replace("a,01", "c,03").replace(",2,200.0,", ",3,200.0,"))  # n_frames 3, 2 paths
    index_csv.write_text("\n".join(rows) + "\n")
    with pytest.raises(DatasetError) as error:
        faces.align_stage(index_csv, tmp_path / "aligned.h5", tmp_path / "align_qc", **STAGE_PARAMS)
    assert len(error.value.problems) == 2
    assert "duplicate clip id" in error.value.problems[0] and "n_frames is 3" in error.value.problems[1]
    check_failed_stage_left_nothing(tmp_path)
