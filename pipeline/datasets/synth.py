"""The synthetic-data engine: real face photos with subtle, class-specific, landmark-driven micro-motion,
rendered into clips and written as a tree in a dataset's layout.

Every layout's writer (its sheets, names and frame numbering) is in pipeline/datasets/synth_writers.py;
this module is what they share:

    plan_clips / planned     which emotion, episode name and frame numbers each clip gets
    build_tree / write_clip  render every planned clip into a temporary tree, add the writer's sheets,
                             synth_truth.csv (the displacement commanded at the apex, per moved region)
                             and SOURCES.txt (photo sources and licences), then move it into place
    shifted, action_units, write_xlsx, write_reproducible_zip   a layout's renaming and sheet writing

Each clip goes neutral (onset) -> apex -> neutral (offset). The motion is a smooth displacement field
around chosen landmarks (Gaussian RBF, sigma = 0.16 x inter-ocular distance) applied with cv2.remap,
one pattern of facial action units per emotion (Ekman's FACS, as CASME II codes them). The patterns
use different face regions and directions, so the class survives the align stage's ~6x downscale to
64x48 as a difference in *where* the face moves, not only in how much. At the apex the moved
landmarks travel about `amplitude_px` (1-3 px: micro-expressions are that small at CASME II's
resolution); camera noise and a slow head jitter are added on top.

Every random choice comes from generators seeded by `seed` (and the subject / clip number), and the
files carry no timestamps, so the same params give byte-identical trees.
"""

from __future__ import annotations

import csv
import dataclasses
import functools
import io
import os
import re
import shutil
import tempfile
import zipfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import openpyxl
from scipy.special import ndtri
from tqdm import tqdm

from pipeline.datasets.face_photos import SOURCES, STAGE_MARGIN_PX, Identity, build_identities
from pipeline.errors import ParamsError
from pipeline.faces import eye_centres
from pipeline.imageio import write_rgb

TRUTH_NAME = "synth_truth.csv"
RBF_SIGMA_IOD = 0.16          # displacement field width, in inter-ocular distances (face-sources.md)


@dataclass(frozen=True)
class Movement:
    """One moved facial region: landmarks on the subject's right (image left) and their mirror images
    on the subject's left, moving `out` (away from the face's midline) and `up` (along the face's
    vertical), by `weight` x the clip's amplitude. Midline regions have no left landmarks."""

    region: str
    right: tuple[int, ...]
    left: tuple[int, ...]
    out: float
    up: float
    weight: float


# 68-point iBUG indices: brows 17-21 | 22-26 (outer -> inner | inner -> outer), nose wings 31 | 35,
# eyes 36-41 | 42-47 (lower lids 40, 41 | 47, 46), lip corners 48 | 54, upper lip 49-53, lower lip
# 55-59, chin 7-9.
EXPRESSIONS: dict[str, tuple[str, list[Movement]]] = {
    # AU12 lip corner puller: corners up and out.
    "happiness": ("12", [Movement("lip corner", (48,), (54,), out=0.5, up=0.87, weight=1.0),
                         Movement("upper lip side", (49,), (53,), out=0.5, up=0.87, weight=0.7)]),
    # AU1+2 inner and outer brow raiser (whole brows straight up) + AU26 jaw drop (chin down).
    "surprise": ("1+2+26", [Movement("brow", (17, 18, 19, 20, 21), (26, 25, 24, 23, 22), out=0, up=1, weight=1.0),
                            Movement("chin", (7, 8, 9), (), out=0, up=-1, weight=0.8)]),
    # AU4 brow lowerer (inner brows down and together) + AU9 nose wrinkler (+AU10 upper lip raiser).
    "disgust": ("4+9", [Movement("inner brow", (20, 21), (23, 22), out=-0.45, up=-0.9, weight=0.8),
                        Movement("nose wing", (31, 32), (35, 34), out=0, up=1, weight=1.0),
                        Movement("upper lip", (51,), (), out=0, up=1, weight=0.7)]),
    # AU1 inner brow raiser (inner brows up, drawn a little together) + AU15 lip corner depressor.
    "sadness": ("1+15", [Movement("inner brow", (20, 21), (23, 22), out=-0.5, up=0.85, weight=0.8),
                         Movement("lip corner", (48,), (54,), out=0, up=-1, weight=1.0)]),
    # AU1+2+4 brows raised and drawn together (mostly together: surprise raises them straight up)
    # + AU20 lip stretcher.
    "fear": ("1+2+4+20", [Movement("inner brow", (20, 21), (23, 22), out=-0.7, up=0.7, weight=0.9),
                          Movement("lip corner", (48,), (54,), out=1, up=-0.15, weight=1.0)]),
    # AU17 chin raiser (chin and lower lip up) + AU24 lip presser (lips pressed, corners drawn in).
    "repression": ("17+24", [Movement("chin", (7, 8, 9), (), out=0, up=1, weight=1.0),
                             Movement("lower lip", (56, 57, 58), (), out=0, up=1, weight=0.8),
                             Movement("lip corner", (48,), (54,), out=-1, up=0, weight=0.7)]),
    # AU7 lid tightener (lower lids up) + unilateral AU14 dimpler (right lip corner pulled in).
    "others": ("7+R14", [Movement("lower lid", (40, 41), (47, 46), out=0, up=1, weight=1.0),
                         Movement("lip corner", (48,), (), out=-1, up=0.2, weight=0.8)]),
    # Emotions of the other layouts (CASME, SAMM). Unilateral AU12+AU14: one lip corner up and in.
    "contempt": ("R12+R14", [Movement("lip corner", (48,), (), out=-0.5, up=0.85, weight=1.0),
                             Movement("upper lip side", (49,), (), out=-0.3, up=0.9, weight=0.6)]),
    # AU4+AU5+AU23: brows down and together, lips tightened (corners drawn in).
    "anger": ("4+5+23", [Movement("inner brow", (20, 21), (23, 22), out=-0.6, up=-0.8, weight=1.0),
                         Movement("lip corner", (48,), (54,), out=-1, up=0, weight=0.8)]),
    # AU7+AU24: lids tightened (lower lids up), lips pressed (lower lip up) (CASME's "tense").
    "tense": ("7+24", [Movement("lower lid", (40, 41), (47, 46), out=0, up=1, weight=1.0),
                       Movement("lower lip", (56, 57, 58), (), out=0, up=1, weight=0.8)]),
}
# Labels of other layouts drawn with one of the patterns above.
MOTION_OF = {"positive": "happiness", "negative": "disgust", "other": "others", "happy": "happiness", "sad": "sadness"}


def motion_of(emotion: str) -> str:
    """The EXPRESSIONS key that draws a dataset's emotion label (SMIC's "negative", SAMM's "Other", ...)."""
    key = emotion.lower()
    return MOTION_OF.get(key, key)


@dataclass(frozen=True)
class ClipPlan:
    subject: int              # 1-based
    clip: int                 # 0-based within the subject
    filename: str             # CASME II's episode name, e.g. EP02_01f
    emotion: str
    onset: int                # frame numbers as in the sheet: frames are img{onset}.jpg .. img{offset}.jpg
    apex: int
    offset: int

    @property
    def clip_id(self) -> str:
        return f"sub{self.subject:02d}_{self.filename}"

def build_tree(out_dir: Path, name: str, plans: list[ClipPlan], synth: dict, *, frame_dir, frame_name, write_sheets,
               clip_id, grey: bool = False) -> None:
    """Render every planned clip into a temporary tree beside `out_dir`, add the sheets, truth and
    sources, then move it into place (a failure leaves the previous tree, if any, untouched).

    frame_dir(tree, plan) -> (clip folder, subject name); frame_name(plan) -> (n -> file name);
    write_sheets(tree, plans) writes the coding sheets; clip_id(plan) -> the layout's clip id.
    """
    identities = build_identities(synth["subjects"], seed=synth["seed"], width=synth["width"],
                                  height=synth["height"], face_width_px=synth["face_width_px"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        truth_rows = []
        progress = tqdm(total=sum(p.offset - p.onset + 1 for p in plans), unit="frame", desc=f"synthetic {name}")
        for plan in plans:
            folder, subject = frame_dir(tmp_dir, plan)
            truth_rows += write_clip(folder, frame_name(plan), plan, identities[plan.subject - 1],
                                     clip_id=clip_id(plan), subject=subject, seed=synth["seed"],
                                     width=synth["width"], height=synth["height"], amplitude_px=synth["amplitude_px"],
                                     noise_sigma=synth["noise_sigma"], head_jitter_px=synth["head_jitter_px"],
                                     jpeg_quality=synth["jpeg_quality"], progress=progress, grey=grey)
        progress.close()
        write_sheets(tmp_dir, plans)
        write_truth(tmp_dir / TRUTH_NAME, truth_rows)
        (tmp_dir / "SOURCES.txt").write_text(SOURCES + subject_listing(identities))
        replace_dir(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


def write_clip(clip_dir: Path, frame_name: Callable[[int], str], plan: ClipPlan, identity: Identity, *,
               clip_id: str, subject: str, seed: int, width: int, height: int, amplitude_px: float,
               noise_sigma: float, head_jitter_px: float, jpeg_quality: int, progress: tqdm,
               grey: bool = False) -> list[dict]:
    """Render one clip and write its frames as clip_dir / frame_name(n) for n = onset..offset (grey:
    single-channel images, as SAMM's camera); return its rows of synth_truth.csv."""
    clip_dir.mkdir(parents=True, exist_ok=True)      # CAS(ME)3: several clips share one video's folder
    rng = np.random.default_rng([seed, plan.subject, plan.clip])      # independent of the other clips
    neutral, landmarks = clip_neutral(identity, rng, width=width, height=height)
    intensity = amplitude_px * rng.uniform(0.85, 1.15)
    centres, vectors, regions = commanded_displacements(motion_of(plan.emotion), landmarks, intensity)
    field = displacement_field((height, width), centres, vectors, RBF_SIGMA_IOD * inter_ocular(landmarks))
    n_frames = plan.offset - plan.onset + 1
    profile = motion_profile(n_frames, plan.apex - plan.onset)
    jitter = head_jitter(rng, n_frames, head_jitter_px)
    for t in range(n_frames):
        frame = render_frame(neutral, field, profile[t], jitter[t], camera_noise(rng, neutral.shape, noise_sigma))
        if grey:
            write_grey(clip_dir / frame_name(plan.onset + t), cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), jpeg_quality)
        else:
            write_rgb(clip_dir / frame_name(plan.onset + t), frame, jpeg_quality)
        progress.update()
    return truth_records(plan, identity.name, regions, centres, field, clip_id=clip_id, subject=subject)


def write_grey(path: Path, image: np.ndarray, jpeg_quality: int) -> None:
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if path.suffix.lower() in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(path.suffix, image, params)
    if not ok:
        raise OSError(f"could not encode {path}")
    buffer.tofile(path)


def check_synth_params(*, subjects: int, clips_per_subject: int, frames_min: int, frames_max: int,
                       amplitude_px: float, noise_sigma: float, head_jitter_px: float) -> None:
    problems = []
    if subjects < 1 or clips_per_subject < 1:
        problems.append("synth.subjects and synth.clips_per_subject must be at least 1")
    if frames_min < 3 or frames_max < frames_min:
        problems.append("synth needs 3 <= frames_min <= frames_max (onset, apex and offset differ)")
    if amplitude_px < 0 or noise_sigma < 0 or head_jitter_px < 0:
        problems.append("synth.amplitude_px, noise_sigma and head_jitter_px must be >= 0")
    if problems:
        raise ParamsError("; ".join(problems))


# --- what each clip shows -------------------------------------------------------------------------

def plan_clips(*, seed: int, subjects: int, clips_per_subject: int, frames_min: int,
               frames_max: int, emotion_groups: dict[str, list[str]]) -> list[ClipPlan]:
    """Emotion, episode name and frame numbers of every clip.

    Subject s (0-based) gets the classes s, s+1, ... (mod 4) in a shuffled order, so with 4 or more
    clips every subject shows all four classes, and with fewer the classes still rotate over subjects.
    Within a class the emotions take turns over the whole dataset, so every emotion occurs.
    `emotion_groups` maps each class to the layout's emotion labels (synth_writers.py: CASME2_GROUPS, ...).
    """
    rng = np.random.default_rng([seed, 0xC11])
    classes = list(emotion_groups)
    turns = dict.fromkeys(classes, 0)
    plans = []
    for s in range(subjects):
        subject_classes = [classes[(s + j) % len(classes)] for j in range(clips_per_subject)]
        subject_classes = [subject_classes[i] for i in rng.permutation(clips_per_subject)]
        # Episode EPvv_kk: vv is the elicitation video (distinct within a subject), kk the clip number;
        # CASME II marks some episodes with a trailing "f".
        videos = np.sort(rng.choice(np.arange(1, max(20, clips_per_subject) + 1), clips_per_subject, replace=False))
        for clip, (group, video) in enumerate(zip(subject_classes, videos, strict=True)):
            emotion = emotion_groups[group][turns[group] % len(emotion_groups[group])]
            turns[group] += 1
            n_frames = int(rng.integers(frames_min, frames_max + 1))
            onset = int(rng.integers(1, 400))
            apex = onset + int(round((n_frames - 1) * rng.uniform(0.35, 0.6)))
            filename = f"EP{video:02d}_{int(rng.integers(1, 7)):02d}{'f' if rng.random() < 0.5 else ''}"
            plans.append(ClipPlan(subject=s + 1, clip=clip, filename=filename, emotion=emotion,
                                  onset=onset, apex=apex, offset=onset + n_frames - 1))
    return plans


def clip_neutral(identity: Identity, rng: np.random.Generator, *, width: int,
                 height: int) -> tuple[np.ndarray, np.ndarray]:
    """The subject's neutral frame for one clip: a slightly different head pose per clip (shift up to
    12 px, rotation up to 2 degrees, scale +-3 %), and the landmarks moved with it."""
    centre = identity.landmarks.mean(axis=0)
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), rng.uniform(-2, 2),
                                     rng.uniform(0.97, 1.03))
    matrix[:, 2] += rng.uniform(-12, 12, size=2) - STAGE_MARGIN_PX    # and drop the stage margin
    frame = cv2.warpAffine(identity.stage, matrix, (width, height), flags=cv2.INTER_CUBIC,
                           borderMode=cv2.BORDER_REPLICATE)
    landmarks = identity.landmarks @ matrix[:, :2].T + matrix[:, 2]
    return frame, landmarks


# --- motion: pure functions -----------------------------------------------------------------------

def inter_ocular(landmarks: np.ndarray) -> float:
    right_eye, left_eye = eye_centres(landmarks)
    return float(np.linalg.norm(left_eye - right_eye))


def commanded_displacements(emotion: str, landmarks: np.ndarray,
                            amplitude_px: float) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Centres (K, 2), apex displacement vectors (K, 2) in pixels and region names (one per centre)
    of `emotion`'s movements, in the face's own frame: "out" along the eye line away from the
    midline, "up" perpendicular to it, so the pattern follows the head's roll."""
    right_eye, left_eye = eye_centres(landmarks)
    across = (left_eye - right_eye) / np.linalg.norm(left_eye - right_eye)   # towards image right
    up = np.array([across[1], -across[0]])                                     # image up when level
    centres, vectors, regions = [], [], []
    for movement in EXPRESSIONS[emotion][1]:
        for side, indices, outward in (("right", movement.right, -across), ("left", movement.left, across)):
            if not indices:
                continue
            # A midline region (chin, lip centre) has no mirror image and no sideways motion.
            midline = not movement.left and movement.out == 0
            name = movement.region if midline else f"{movement.region} ({side})"
            direction = movement.out * outward + movement.up * up
            direction = direction / np.linalg.norm(direction)
            for index in indices:
                centres.append(landmarks[index])
                vectors.append(direction * movement.weight * amplitude_px)
                regions.append(name)
    return np.array(centres, dtype=np.float64), np.array(vectors, dtype=np.float64), regions


def displacement_field(shape: tuple[int, int], centres: np.ndarray, vectors: np.ndarray,
                       sigma_px: float) -> np.ndarray:
    """(2, H, W) float32 field: Gaussian RBFs at `centres` carrying `vectors`.

    Normalised by the summed weights where those exceed 1, so neighbouring landmarks moving alike
    (e.g. along a brow) do not add up: the field never exceeds the largest commanded vector, equals
    it at an isolated centre, and decays as a Gaussian away from the moved regions.
    """
    ys, xs = np.mgrid[0:shape[0], 0:shape[1]].astype(np.float32)
    total = np.zeros((2, *shape), dtype=np.float32)
    weight_sum = np.zeros(shape, dtype=np.float32)
    for (cx, cy), (dx, dy) in zip(centres, vectors, strict=True):
        weight = np.exp(-((xs - cx) ** 2 + (ys - cy) ** 2) / np.float32(2 * sigma_px**2))
        total[0] += dx * weight
        total[1] += dy * weight
        weight_sum += weight
    return total / np.maximum(weight_sum, 1.0)


def field_at(field: np.ndarray, points: np.ndarray) -> np.ndarray:
    """(N, 2) field values at sub-pixel points (bilinear)."""
    xs = points[:, 0].astype(np.float32).reshape(1, -1)
    ys = points[:, 1].astype(np.float32).reshape(1, -1)
    return np.stack([cv2.remap(np.ascontiguousarray(field[c]), xs, ys, cv2.INTER_LINEAR)[0]
                     for c in range(2)], axis=1)


def motion_profile(n_frames: int, apex_index: int) -> np.ndarray:
    """Expression intensity per frame: 0 at onset, raised-cosine rise to 1 at the apex, raised-cosine
    fall back to 0 at the offset."""
    if not 0 < apex_index < n_frames - 1:
        raise ValueError(f"apex index {apex_index} must lie strictly inside a clip of {n_frames} frames")
    t = np.arange(n_frames, dtype=np.float64)
    rise = 0.5 - 0.5 * np.cos(np.pi * t / apex_index)
    fall = 0.5 + 0.5 * np.cos(np.pi * (t - apex_index) / (n_frames - 1 - apex_index))
    return np.where(t <= apex_index, rise, fall).astype(np.float32)


def head_jitter(rng: np.random.Generator, n_frames: int, jitter_px: float) -> np.ndarray:
    """(T, 2) head translation per frame with an RMS of `jitter_px` per axis: white noise smoothed
    over a few frames, because at 200 fps a head drifts rather than jumps from frame to frame."""
    white = rng.standard_normal((n_frames + 16, 2))
    kernel = np.exp(-0.5 * (np.arange(-8, 9) / 2.0) ** 2)
    kernel /= np.sqrt(np.sum(kernel**2))                 # keeps unit variance after filtering
    smooth = np.stack([np.convolve(white[:, axis], kernel, mode="valid") for axis in range(2)], axis=1)
    return jitter_px * smooth[:n_frames]


def render_frame(neutral: np.ndarray, field: np.ndarray, strength: float, shift: np.ndarray,
                 noise: np.ndarray | None) -> np.ndarray:
    """The neutral face moved by `strength` x `field` (2, H, W) plus a head `shift` (2,), plus noise.

    cv2.remap pulls: output pixel p reads the input at p - d(p), which moves content by +d (exact to
    first order; d changes by well under 0.1 px per pixel here).
    """
    grid_x, grid_y = pixel_grid(*neutral.shape[:2])
    map_x = cv2.addWeighted(field[0], -float(strength), grid_x, 1.0, -float(shift[0]))
    map_y = cv2.addWeighted(field[1], -float(strength), grid_y, 1.0, -float(shift[1]))
    moved = cv2.remap(neutral, map_x, map_y, cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return moved if noise is None else cv2.add(moved, noise, dtype=cv2.CV_8U)   # rounds and saturates


@functools.cache
def pixel_grid(height: int, width: int) -> tuple[np.ndarray, np.ndarray]:
    """(H, W) float32 x and y coordinates of every pixel."""
    xs, ys = np.meshgrid(np.arange(width, dtype=np.float32), np.arange(height, dtype=np.float32))
    return xs, ys


# Camera noise from random bytes through a 256-entry table of Gaussian quantiles (rescaled to unit
# variance, tails cut at 2.9 sigma): 9x faster than numpy's normal sampler, the largest cost per frame,
# and no different once the frame is rounded to 8 bits.
GAUSSIAN_LEVELS = ndtri((np.arange(256) + 0.5) / 256)
GAUSSIAN_LEVELS = (GAUSSIAN_LEVELS / GAUSSIAN_LEVELS.std()).astype(np.float32).reshape(1, 256)


def camera_noise(rng: np.random.Generator, shape: tuple[int, ...], sigma: float) -> np.ndarray | None:
    """Float32 zero-mean noise of standard deviation `sigma` (grey levels), or None when sigma is 0."""
    if sigma == 0:
        return None
    levels = np.frombuffer(rng.bytes(int(np.prod(shape))), dtype=np.uint8).reshape(shape)
    return cv2.LUT(levels, GAUSSIAN_LEVELS * np.float32(sigma))


# --- files ----------------------------------------------------------------------------------------

def truth_records(plan: ClipPlan, identity: str, regions: list[str], centres: np.ndarray,
                  field: np.ndarray, *, clip_id: str, subject: str) -> list[dict]:
    """One row per moved region: the field's mean displacement over the region's landmarks at the apex
    (what the generator commanded; dlib's re-detected landmarks would jitter by about as much)."""
    at_landmarks = field_at(field, centres)
    rows = []
    for region in dict.fromkeys(regions):
        members = [i for i, name in enumerate(regions) if name == region]
        dx, dy = at_landmarks[members].mean(axis=0)
        x, y = centres[members].mean(axis=0)
        rows.append({"clip_id": clip_id, "subject": subject, "identity": identity,
                     "emotion": plan.emotion, "action_units": EXPRESSIONS[motion_of(plan.emotion)][0],
                     "onset": plan.onset, "apex": plan.apex, "offset": plan.offset, "region": region,
                     "landmark_x": f"{x:.2f}", "landmark_y": f"{y:.2f}", "apex_dx_px": f"{dx:.4f}",
                     "apex_dy_px": f"{dy:.4f}", "apex_displacement_px": f"{np.hypot(dx, dy):.4f}"})
    return rows


def write_truth(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)

def write_reproducible_zip(path: Path, xlsx_bytes: bytes) -> None:
    """Rewrite an .xlsx (a zip) without its timestamps: openpyxl stamps the save time into
    docProps/core.xml and every zip entry, which would make identical sheets differ byte-wise."""
    fixed_time = "2000-01-01T00:00:00Z"
    with zipfile.ZipFile(io.BytesIO(xlsx_bytes)) as source, zipfile.ZipFile(path, "w") as target:
        for info in source.infolist():
            content = source.read(info.filename)
            if info.filename == "docProps/core.xml":
                content = re.sub(rb"(<dcterms:(created|modified)[^>]*>)[^<]*(<)",
                                 lambda m: m.group(1) + fixed_time.encode() + m.group(3), content)
            entry = zipfile.ZipInfo(info.filename, date_time=(2000, 1, 1, 0, 0, 0))
            entry.compress_type = zipfile.ZIP_DEFLATED
            target.writestr(entry, content)


def subject_listing(identities: list[Identity]) -> str:
    lines = [f"  sub{i + 1:02d}: {identity.name}" for i, identity in enumerate(identities)]
    return "\nSubjects (lfwN = skimage.data.lfw_subset()[N]):\n" + "\n".join(lines) + "\n"


def replace_dir(new: Path, target: Path) -> None:
    """Move the finished tree `new` onto `target`; an older tree there is removed only after the
    rename, so at every moment `target` is either the old tree or the complete new one."""
    if not target.exists():
        os.replace(new, target)
        return
    old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    os.replace(target, old / "tree")
    os.replace(new, target)
    shutil.rmtree(old)


# --- what a layout's writer shares ---------------------------------------------------------------

def planned(synth: dict, groups: dict[str, list[str]]) -> list[ClipPlan]:
    """plan_clips of a layout's emotion `groups`, from the synth section of params.yaml (checked)."""
    check_synth_params(**{key: synth[key] for key in ("subjects", "clips_per_subject", "frames_min", "frames_max",
                                                      "amplitude_px", "noise_sigma", "head_jitter_px")})
    return plan_clips(seed=synth["seed"], subjects=synth["subjects"], clips_per_subject=synth["clips_per_subject"],
                      frames_min=synth["frames_min"], frames_max=synth["frames_max"], emotion_groups=groups)


def shifted(plan: ClipPlan, filename: str, shift: int) -> ClipPlan:
    """The plan renamed, its onset, apex and offset moved by `shift` frames (a layout's frame numbering)."""
    return dataclasses.replace(plan, filename=filename, onset=plan.onset + shift, apex=plan.apex + shift,
                               offset=plan.offset + shift)


def action_units(plan: ClipPlan) -> str:
    """The FACS code of the motion the plan's emotion is drawn with, as a sheet's AU column holds it."""
    return EXPRESSIONS[motion_of(plan.emotion)][0]


def write_xlsx(path: Path, title: str, header: list[str], rows: list[list], preamble: list[str] = ()) -> None:
    """One worksheet: the preamble lines, the header row, the rows; byte-reproducible (fixed zip times)."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = title
    for line in preamble:
        sheet.append([line or None])
    sheet.append(header)
    for row in rows:
        sheet.append(row)
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_reproducible_zip(path, buffer.getvalue())
