"""Face detection and 68-point landmarks with dlib (the frontal HOG detector + iBUG 300-W predictor)."""

from __future__ import annotations

import contextlib
import csv
import functools
import importlib.util
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import dlib
import numpy as np
from tqdm import tqdm

from pipeline.apex import estimate_apex
from pipeline.artifacts import (
    atomic_directory,
    atomic_output,
    open_h5_for_write,
    provenance,
    write_clip,
    write_provenance,
)
from pipeline.errors import BadInputError, DatasetError
from pipeline.imageio import read_rgb, write_rgb


def landmark_model_path() -> Path:
    """The 68-point model shipped by face-recognition-models, found without importing the package
    (its __init__ imports pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face-recognition-models is not installed (pip install face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"


@functools.cache
def _detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@functools.cache
def _predictor() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(landmark_model_path()))


def detect_landmarks(image: np.ndarray, upsample: int = 1, min_score: float = 0.3) -> np.ndarray | None:
    """68 (x, y) landmarks of the highest-scoring face in a uint8 RGB or grey image, or None.

    Boxes scoring below `min_score` are ignored: on some photos the detector fires weakly on
    clothing (e.g. 0.12 on skimage's astronaut suit) while real faces score above 0.5.
    """
    boxes, scores, _ = _detector().run(np.ascontiguousarray(image), upsample, 0.0)
    if not boxes or max(scores) < min_score:
        return None
    best = boxes[int(np.argmax(scores))]
    shape = _predictor()(np.ascontiguousarray(image), best)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the subject's right eye (points 36-41, image left) and left eye (42-47)."""
    return landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)


# ---------------------------------------------------------------------------------------------------
# Alignment: one similarity transform per clip, from the eye centres to fixed template positions.
#
# Why per clip and not per frame: dlib's landmarks jitter by about 1 px between frames, as much as a
# 2 px micro-expression, so re-aligning every frame would add more motion noise than the signal.
# The paper (Sec. II-A, after [11]) crops and normalises faces from landmarks; we align on the eyes,
# the most stable landmarks, with rotation + uniform scale + translation only (no shear, no
# anisotropic scale), so the face's own motion is carried over undistorted.
#
# Coordinates: pixel centres at integer positions (cv2, dlib), so an image of width W spans
# x in [-0.5, W - 0.5] and its centre column is at (W - 1) / 2.
# ---------------------------------------------------------------------------------------------------


def template_eye_positions(*, height: int, width: int, eye_y: float, eye_distance: float) -> np.ndarray:
    """(2, 2) template (x, y) of the image-left eye (subject's right) and the image-right eye.

    Eyes sit on row `eye_y * height`, symmetric about the centre, `eye_distance * width` apart
    (fractions measured on the image's continuous extent, then shifted to pixel-centre coordinates).
    """
    row = eye_y * height - 0.5
    half_gap = eye_distance * width / 2
    centre = (width - 1) / 2
    return np.array([[centre - half_gap, row], [centre + half_gap, row]], dtype=np.float64)


def similarity_to_template(landmarks: np.ndarray, *, height: int, width: int, eye_y: float,
                           eye_distance: float) -> np.ndarray:
    """(2, 3) similarity transform taking source pixel coordinates to aligned-frame coordinates."""
    return similarity_from_eyes(np.asarray(eye_centres(np.asarray(landmarks, dtype=np.float64))), height=height,
                                width=width, eye_y=eye_y, eye_distance=eye_distance)


def similarity_from_eyes(source: np.ndarray, *, height: int, width: int, eye_y: float,
                         eye_distance: float) -> np.ndarray:
    """The similarity taking (2, 2) eye centres (image-left eye, image-right eye) to the template's.

    Two point pairs fix a similarity exactly. Written as complex numbers, target = a * source + b
    with a = (q2 - q1) / (p2 - p1) (rotation and scale) and b = q1 - a * p1.
    """
    target = template_eye_positions(height=height, width=width, eye_y=eye_y, eye_distance=eye_distance)
    p1, p2 = complex(*source[0]), complex(*source[1])
    q1, q2 = complex(*target[0]), complex(*target[1])
    if abs(p2 - p1) < 1e-6:
        raise ValueError("eye centres coincide: no similarity transform")
    a = (q2 - q1) / (p2 - p1)
    b = q1 - a * p1
    return np.array([[a.real, -a.imag, b.real], [a.imag, a.real, b.imag]], dtype=np.float64)


def transform_points(matrix: np.ndarray, points: np.ndarray) -> np.ndarray:
    """Apply a (2, 3) affine matrix to (N, 2) points."""
    points = np.asarray(points, dtype=np.float64)
    return points @ matrix[:, :2].T + matrix[:, 2]


def transform_scale(matrix: np.ndarray) -> float:
    """Uniform scale of a similarity transform (aligned pixels per source pixel)."""
    return float(np.sqrt(abs(np.linalg.det(matrix[:, :2]))))


# Antialiasing before the ~6x downscale: Gaussian sigma in aligned (output) pixels. Measured on a
# camera-simulated astronaut face (4x supersampled world, box-averaged to 640x480) moved by 0.04-1.3
# output px: the share of the frame-to-frame change that is not the commanded motion (aliasing) was
# 62% with plain bilinear sampling, 33% with a 1-output-pixel box (warp at 6x + INTER_AREA), 22% with
# sigma 0.4 (about scikit-image's `rescale(anti_aliasing=True)` at this scale), 13% with sigma 0.5, for
# 12% less gradient energy than the box. Global sub-pixel motion came through with gain 0.998 in all.
ANTIALIAS_SIGMA_PX = 0.5
SOURCE_BLUR_PX = 0.5  # blur a camera frame already has, in its own pixels (optics + sensor area)


def antialias_sigma(scale: float, sigma_out_px: float = ANTIALIAS_SIGMA_PX) -> float:
    """Gaussian sigma, in source pixels, that band-limits the source for sampling at `scale`.

    Only the blur the source lacks is added (variances add); none when the wanted blur is already there.
    """
    wanted = sigma_out_px / scale
    return float(np.sqrt(max(0.0, wanted**2 - SOURCE_BLUR_PX**2)))


def warp_to_template(frame: np.ndarray, matrix: np.ndarray, height: int, width: int) -> np.ndarray:
    """Warp one uint8 frame with `matrix` to (height, width): Gaussian prefilter, then bilinear.

    Plain bilinear sampling at a ~6x downscale reads only a few source pixels per output pixel:
    fine texture aliases, flickers between frames and swamps a sub-pixel micro-motion. Only the
    source region the output reads (plus 3 sigma) is blurred, in float, with one rounding at the end.
    """
    sigma = antialias_sigma(transform_scale(matrix))
    margin = int(np.ceil(3 * sigma)) + 2
    corners = np.array([[-0.5, -0.5], [width - 0.5, -0.5], [-0.5, height - 0.5], [width - 0.5, height - 0.5]])
    footprint = transform_points(cv2.invertAffineTransform(matrix), corners)
    x0, y0 = np.maximum(np.floor(footprint.min(axis=0)).astype(int) - margin, 0)
    x1, y1 = np.minimum(np.ceil(footprint.max(axis=0)).astype(int) + margin + 1, frame.shape[1::-1])
    if x1 <= x0 or y1 <= y0:  # the template lies outside the frame: warp the whole frame (all border)
        x0, y0, x1, y1 = 0, 0, frame.shape[1], frame.shape[0]
    region = frame[y0:y1, x0:x1].astype(np.float32)
    if sigma > 0:
        region = cv2.GaussianBlur(region, (0, 0), sigma, borderType=cv2.BORDER_REPLICATE)
    shifted = matrix.copy()
    shifted[:, 2] += matrix[:, :2] @ np.array([x0, y0], dtype=np.float64)  # region pixel -> frame pixel
    warped = cv2.warpAffine(region, shifted, (width, height), flags=cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_REPLICATE)
    return np.clip(np.rint(warped), 0, 255).astype(np.uint8)


def align_clip(frames: np.ndarray, landmarks: np.ndarray, *, height: int, width: int, eye_y: float,
               eye_distance: float) -> np.ndarray:
    """Warp every frame of a (T, H, W, 3) uint8 clip with the one transform fixed by `landmarks`."""
    matrix = similarity_to_template(landmarks, height=height, width=width, eye_y=eye_y,
                                    eye_distance=eye_distance)
    aligned = np.empty((len(frames), height, width, 3), dtype=np.uint8)
    for t, frame in enumerate(frames):
        aligned[t] = warp_to_template(frame, matrix, height, width)
    return aligned


# ---------------------------------------------------------------------------------------------------
# One clip: find its face, align it, draw its QC thumbnail.
# ---------------------------------------------------------------------------------------------------


def detection_frame_indices(n_frames: int, tries: int = 5) -> list[int]:
    """The first frame (onset, neutral face), then up to `tries - 1` more spread evenly over the clip."""
    spread = np.linspace(0, n_frames - 1, min(tries, n_frames)).round().astype(int)
    return list(dict.fromkeys(int(t) for t in spread))


def clip_landmarks(frames: np.ndarray, frame_paths: Sequence[str], clip_id: str, *, upsample: int,
                   min_score: float, tries: int = 5) -> tuple[np.ndarray, int]:
    """68 landmarks from the first frame where dlib finds a face, and that frame's index."""
    tried = detection_frame_indices(len(frames), tries)
    for t in tried:
        landmarks = detect_landmarks(frames[t], upsample, min_score)
        if landmarks is not None:
            return landmarks, t
    files = ", ".join(os.fspath(frame_paths[t]) for t in tried)
    raise BadInputError(clip_id, frame_paths[tried[0]],
                        f"no face found (dlib score >= {min_score}) in the {len(tried)} frame(s) tried: {files}")


def read_clip_frames(frame_paths: Sequence[str], clip_id: str, pool: ThreadPoolExecutor) -> np.ndarray:
    """Decode a clip's frames in parallel (cv2 releases the GIL while decoding) as uint8 (T, H, W, 3)."""
    images = list(pool.map(lambda path: read_rgb(path, clip_id), frame_paths))
    for path, image in zip(frame_paths, images, strict=True):
        if image.shape != images[0].shape:
            raise BadInputError(clip_id, path, f"frame is {image.shape[1]}x{image.shape[0]}, the clip's first "
                                f"frame {images[0].shape[1]}x{images[0].shape[0]}")
    return np.stack(images)


def central_box(height: int, width: int, fraction: float = 0.8) -> np.ndarray:
    """Corners (x, y) of the central `fraction` x `fraction` box that the tensors stage keeps."""
    top, left = (1 - fraction) * height / 2 - 0.5, (1 - fraction) * width / 2 - 0.5
    bottom, right = height - 1 - top, width - 1 - left
    return np.array([[left, top], [right, top], [right, bottom], [left, bottom]])


QC_ZOOM = 4
QC_GREEN, QC_RED, QC_YELLOW, QC_CYAN = (0, 220, 0), (255, 40, 40), (255, 220, 0), (0, 220, 255)


def _polygon(image: np.ndarray, corners: np.ndarray, colour: tuple[int, int, int]) -> None:
    cv2.polylines(image, [np.round(corners).astype(np.int32)], True, colour, 1, cv2.LINE_AA)


def _zoomed(frame: np.ndarray, zoom: int) -> tuple[np.ndarray, Callable[[np.ndarray], np.ndarray]]:
    """Frame enlarged with visible pixels, and the map from frame coordinates to panel coordinates."""
    panel = cv2.resize(frame, None, fx=zoom, fy=zoom, interpolation=cv2.INTER_NEAREST)
    return np.ascontiguousarray(panel), lambda points: (np.asarray(points) + 0.5) * zoom - 0.5


def resize_registered_clip(frames: np.ndarray, *, height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """A clip of registered face crops (no detection, no warp): every frame resized to height x width
    (area averaging), and the (2, 3) scaling that maps its pixels to the resized ones."""
    source_height, source_width = frames.shape[1:3]
    resized = np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in frames])
    sx, sy = width / source_width, height / source_height
    matrix = np.array([[sx, 0.0, 0.5 * sx - 0.5], [0.0, sy, 0.5 * sy - 0.5]])   # pixel centres to pixel centres
    return resized, matrix


def registered_qc_thumbnail(source_frame: np.ndarray, aligned: np.ndarray, apex_index: int) -> np.ndarray:
    """Audit image of a registered clip: the source crop, then its resized onset and apex frames, each
    with the central 80% box (cyan)."""
    height, width = aligned.shape[1:3]
    panel_height = height * QC_ZOOM
    zoom = panel_height / source_frame.shape[0]
    source = cv2.resize(source_frame, (round(source_frame.shape[1] * zoom), panel_height),
                        interpolation=cv2.INTER_AREA)
    panels = [source]
    for t in (0, apex_index):
        panel, to_panel = _zoomed(aligned[t], QC_ZOOM)
        _polygon(panel, to_panel(central_box(height, width)), QC_CYAN)
        panels.append(panel)
    gap = np.full((panel_height, 4, 3), 255, np.uint8)
    return np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)


def qc_thumbnail(clip_id: str, source_frame: np.ndarray, landmarks: np.ndarray, matrix: np.ndarray,
                 aligned: np.ndarray, apex_index: int, *, eye_y: float, eye_distance: float) -> np.ndarray:
    """Audit image: source face with landmarks, eye centres and the aligned frame's outline (yellow);
    then the aligned onset and apex frames enlarged, with the central 80% box (cyan) and the template
    eye positions (red)."""
    height, width = aligned.shape[1:3]
    panel_height = height * QC_ZOOM
    # Source panel: the region the aligned frame covers, with 20% context, scaled to the panel height.
    outline = transform_points(cv2.invertAffineTransform(matrix), central_box(height, width, 1.0))
    inner = transform_points(cv2.invertAffineTransform(matrix), central_box(height, width, 0.8))
    lo, hi = outline.min(axis=0), outline.max(axis=0)
    x0, y0 = np.maximum(np.floor(lo - 0.2 * (hi - lo)).astype(int), 0)
    x1, y1 = np.minimum(np.ceil(hi + 0.2 * (hi - lo)).astype(int), source_frame.shape[1::-1])
    zoom = panel_height / (y1 - y0)
    source = cv2.resize(source_frame[y0:y1, x0:x1], (round((x1 - x0) * zoom), panel_height),
                        interpolation=cv2.INTER_AREA)

    def to_source_panel(points: np.ndarray) -> np.ndarray:
        return (np.asarray(points) - [x0, y0] + 0.5) * zoom - 0.5  # pixel centres stay pixel centres

    _polygon(source, to_source_panel(outline), QC_YELLOW)
    _polygon(source, to_source_panel(inner), QC_CYAN)
    for x, y in to_source_panel(landmarks):
        cv2.circle(source, (round(x), round(y)), 2, QC_GREEN, -1, cv2.LINE_AA)
    for x, y in to_source_panel(eye_centres(landmarks)):
        cv2.drawMarker(source, (round(x), round(y)), QC_RED, cv2.MARKER_CROSS, 10, 2)

    panels = [source]
    template_eyes = template_eye_positions(height=height, width=width, eye_y=eye_y, eye_distance=eye_distance)
    for t in (0, apex_index):
        panel, to_panel = _zoomed(aligned[t], QC_ZOOM)
        _polygon(panel, to_panel(central_box(height, width)), QC_CYAN)
        for x, y in to_panel(template_eyes):
            cv2.drawMarker(panel, (round(x), round(y)), QC_RED, cv2.MARKER_CROSS, 8, 1)
        if t == 0:
            for x, y in to_panel(transform_points(matrix, landmarks)):
                cv2.circle(panel, (round(x), round(y)), 1, QC_GREEN, -1)
        panels.append(panel)

    gap = np.full((panel_height, 4, 3), 255, np.uint8)
    row = np.concatenate([panels[0], gap, panels[1], gap, panels[2]], axis=1)
    caption = np.full((18, row.shape[1], 3), 255, np.uint8)
    cv2.putText(caption, f"{clip_id}   source | onset | apex (frame {apex_index})", (3, 13),
                cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([caption, row], axis=0)


# ---------------------------------------------------------------------------------------------------
# The stage: index.csv -> aligned.h5 (clip store) + align_qc/<clip_id>.png, both atomic.
# ---------------------------------------------------------------------------------------------------

INDEX_COLUMNS = ("dataset", "clip_id", "subject", "episode", "emotion", "label", "label_index", "onset", "apex",
                 "offset", "n_frames", "fps", "frames")


def read_index(index_csv: Path) -> list[dict]:
    """The clips of index.csv with typed fields; every problem of the file is reported at once."""
    index_csv = Path(index_csv)
    with open(index_csv, newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [column for column in INDEX_COLUMNS if column not in (reader.fieldnames or [])]
        rows = list(reader)
    dataset = rows[0]["dataset"] if rows and not missing else index_csv.parent.name
    if missing:
        raise DatasetError(dataset, [f"{index_csv}: missing column(s) {', '.join(missing)}"])
    clips, problems, seen = [], [], set()
    for line, row in enumerate(rows, start=2):
        where = f"{index_csv} line {line} (clip {row['clip_id']})"
        try:
            clip = {key: row[key] for key in ("clip_id", "subject", "emotion", "label")}
            clip |= {key: int(row[key]) for key in ("label_index", "onset", "offset", "n_frames")}
            clip["apex"] = int(row["apex"]) if row["apex"].strip() else None    # blank: estimated at align
            clip["fps"] = float(row["fps"])
        except ValueError as error:
            problems.append(f"{where}: {error}")
            continue
        clip["frames"] = [path for path in row["frames"].split(";") if path]
        clip["registered"] = row.get("registered", "") in ("1", "True", "true")   # optional column
        if not clip["clip_id"] or "/" in clip["clip_id"]:
            problems.append(f"{where}: a clip id must be non-empty and contain no '/' (it names an HDF5 group)")
        elif clip["clip_id"] in seen:
            problems.append(f"{where}: duplicate clip id")
        elif len(clip["frames"]) != clip["n_frames"] or not clip["frames"]:
            problems.append(f"{where}: n_frames is {clip['n_frames']} but {len(clip['frames'])} frame paths")
        seen.add(clip["clip_id"])
        clips.append(clip)
    if problems:
        raise DatasetError(dataset, problems)
    return clips


def clip_apex(clip: dict, aligned: np.ndarray, attrs: dict) -> int:
    """The apex frame's index in the clip (its frames run from the onset), setting attrs apex (a frame
    number of the dataset) and apex_source: the sheet's apex, or where it codes none the estimate
    from the aligned face (pipeline/apex.py)."""
    if clip["apex"] is None:
        index = estimate_apex(aligned, clip["fps"])
        attrs |= {"apex": clip["onset"] + index, "apex_source": "estimated"}
        return index
    attrs |= {"apex": clip["apex"], "apex_source": "sheet"}
    return int(np.clip(clip["apex"] - clip["onset"], 0, len(aligned) - 1))


def align_stage(index_csv: Path, out_h5: Path, qc_dir: Path, *, height: int, width: int, detector_upsample: int,
                min_score: float, eye_y: float, eye_distance: float) -> None:
    """Align every clip of index.csv to height x width (one transform per clip) into the clip store.

    Per clip: frames read in parallel; dlib on the first frame (or up to 4 more); the eye similarity
    transform applied to all frames (a clip that index.csv marks `registered`, already a registered face
    crop, is only resized); landmarks (aligned coordinates) and the (2, 3) transform stored
    beside the frames; a QC thumbnail. A clip that cannot be read or has no face stops the stage
    with BadInputError, and neither aligned.h5 nor align_qc/ is written. Frame paths are used as
    index.csv writes them (relative ones from the working directory: the repository root under
    Snakemake and DVC).
    """
    params = dict(height=height, width=width, detector_upsample=detector_upsample, min_score=min_score,
                  eye_y=eye_y, eye_distance=eye_distance)
    template = dict(height=height, width=width, eye_y=eye_y, eye_distance=eye_distance)
    clips = read_index(index_csv)
    with (atomic_output(out_h5) as tmp_h5, atomic_directory(qc_dir) as tmp_qc,
          ThreadPoolExecutor(max_workers=min(4, os.cpu_count() or 1)) as pool, open_h5_for_write(tmp_h5) as h5):
        write_provenance(h5, provenance("align", params, {"index": index_csv}))
        h5.require_group("clips")  # present even when the index is empty
        for clip in tqdm(clips, desc=f"align {Path(index_csv).parent.name}", unit="clip"):
            clip_id = clip["clip_id"]
            frames = read_clip_frames(clip["frames"], clip_id, pool)
            attrs = {key: clip[key] for key in ("subject", "emotion", "label", "label_index", "onset", "offset", "fps")}
            if clip["registered"]:
                # Already registered: only resized. Landmarks are kept where dlib finds the face in the
                # crop (the hand-crafted baselines' ROIs need them), and left out where it does not.
                aligned, matrix = resize_registered_clip(frames, height=height, width=width)
                apex_index = clip_apex(clip, aligned, attrs)
                arrays = {"transform": matrix}
                with contextlib.suppress(BadInputError):
                    landmarks, _ = clip_landmarks(frames, clip["frames"], clip_id, upsample=detector_upsample,
                                                  min_score=min_score, tries=1)
                    arrays["landmarks"] = transform_points(matrix, landmarks).astype(np.float32)
                write_clip(h5, clip_id, aligned, attrs | {"registered": True}, **arrays)
                write_rgb(tmp_qc / f"{clip_id}.png", registered_qc_thumbnail(frames[0], aligned, apex_index))
                continue
            landmarks, landmark_frame = clip_landmarks(frames, clip["frames"], clip_id,
                                                       upsample=detector_upsample, min_score=min_score)
            matrix = similarity_to_template(landmarks, **template)
            aligned = align_clip(frames, landmarks, **template)
            apex_index = clip_apex(clip, aligned, attrs)
            write_clip(h5, clip_id, aligned, attrs | {"landmark_frame": landmark_frame},
                       landmarks=transform_points(matrix, landmarks).astype(np.float32), transform=matrix)
            write_rgb(tmp_qc / f"{clip_id}.png",
                      qc_thumbnail(clip_id, frames[landmark_frame], landmarks, matrix, aligned, apex_index,
                                   eye_y=eye_y, eye_distance=eye_distance))
