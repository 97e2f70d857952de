"""Synthetic long videos for spotting, written as CAS(ME)² and SAMM Long Videos ship them.

Each video is one subject's face (pipeline/datasets/face_photos.py, the same faces as the short-clip
layouts) filmed for `seconds` at the dataset's frame rate. Its timeline, drawn from a generator seeded
by `seed`, the subject and the video, holds non-overlapping events separated by neutral stretches:

    macro   0.6-4 s (at most a fifth of the video), landmarks moved MACRO_GAIN x amplitude_px
    micro   0.25-0.45 s (under 0.5 s, as the MEGC definition), moved amplitude_px
    blink   0.1-0.3 s, upper eyelids closing onto the lower ones: not an expression, so not in the sheet

while the head drifts slowly (DRIFT_PX over several seconds) on top of the per-frame head jitter and
camera noise of synth.py. Macro and micro events use the landmark patterns of synth.EXPRESSIONS with the
same onset -> apex -> offset profile as the short clips.

    casme_sq  rawpic/s15/15_0101disgustingteeth/img001.jpg ... + CAS(ME)^2code_final.xlsx (three header-less
              sheets: codes, naming rule1, naming rule2), 30 fps, colour frames
    samm_lv   SAMM_longvideos/006_1/006_1_0001.jpg ... + SAMM_LongVideos_V2_Release.xlsx (9 preamble rows,
              header, Type 'Macro' / 'Micro - 1/2', no emotion column), 200 fps, grey frames

Beside them: synth_truth.csv (every event, blinks included, with its commanded displacement) and
SOURCES.txt. The tree is built beside `out_dir` and renamed into place; the same params give the same
bytes. The readers (casme_sq.py, samm_lv.py) read the trees back.
"""

from __future__ import annotations

import io
import shutil
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import openpyxl
from tqdm import tqdm

from pipeline.datasets.casme_sq import CASME_SQ_FPS
from pipeline.datasets.face_photos import SOURCES, Identity, build_identities
from pipeline.datasets.long_layouts import LONG_LAYOUTS
from pipeline.datasets.samm_lv import SAMM_LV_FPS
from pipeline.datasets.synth import (
    EXPRESSIONS,
    RBF_SIGMA_IOD,
    TRUTH_NAME,
    camera_noise,
    clip_neutral,
    commanded_displacements,
    displacement_field,
    head_jitter,
    inter_ocular,
    motion_profile,
    render_frame,
    replace_dir,
    write_grey,
    write_reproducible_zip,
    write_truth,
)
from pipeline.errors import ParamsError
from pipeline.imageio import write_rgb

MACRO_SECONDS = (0.6, 4.0)
MICRO_SECONDS = (0.25, 0.45)
BLINK_SECONDS = (0.1, 0.3)
SECONDS_PER_EVENT = {"macro": 10.0, "micro": 6.0, "blink": 3.0}   # one event of each kind per so many seconds
MIN_GAP_SECONDS = 0.1          # neutral frames at least between two events and at both ends
MACRO_GAIN = 4.0               # macro-expressions move the face this many times more than micro-expressions
DRIFT_PX = 3.0                 # slow head drift amplitude, per axis
DRIFT_PERIOD_SECONDS = (4.0, 12.0)
BLINK_SIGMA_IOD = 0.06         # a narrower field than the expressions': it closes the lids, not the brows
EVENT_EMOTIONS = ("happiness", "disgust", "surprise", "sadness", "anger", "fear")

# CAS(ME)²: the real subject folders (participant 1 -> s15, ...) and stimulus videos (code, folder name as
# shipped, misspellings included, and the name the code sheet uses).
CASME_SQ_SUBJECTS = ("s15", "s16", "s19", "s20", "s21", "s22", "s23", "s24", "s25", "s26", "s27", "s29", "s30",
                     "s31", "s32", "s33", "s34", "s35", "s36", "s37", "s38", "s40")
CASME_SQ_VIDEOS = (("0101", "disgustingteeth", "disgust1"), ("0102", "eatingworms", "disgust2"),
                   ("0401", "girlcrashing", "anger1"), ("0402", "beatingpregnantwoman", "anger2"),
                   ("0502", "funnyerrors", "happy1"), ("0503", "unnyfarting", "happy2"),
                   ("0505", "funnyinnovations", "happy3"), ("0507", "climbingthewall", "happy4"),
                   ("0508", "funnydunkey", "happy5"))
CASME_SQ_WORKBOOK = "CAS(ME)^2code_final.xlsx"
CASME_SQ_ESTIMATED = {"happiness": "positive", "surprise": "surprise"}     # the rest: negative
SAMM_LV_SHEET = "SAMM_LongVideos_V2_Release.xlsx"
SAMM_LV_FIRST_SUBJECT = 6
SAMM_LV_HEADER = ["Subject", "Filename", "Inducement Code", "Onset", "Apex", "Offset", "Duration", "Type",
                  "Action Units", "Notes"]
SAMM_LV_PREAMBLE = [["SAMM Long Videos Dataset - FACS Codes (synthetic stand-in written by merflow)"], [],
                    ["Symbol Key:"], ['"/" = or'], ["AU Help:"], ['"L2 or R2" = Unilateral AU 2 (left or right)'],
                    ['"A2" = Asymmetric AU 2', None, None, None, None,
                     "NOTE: Subjects with Apex Frame not annotated were labelled as -1."], [], []]


@dataclass(frozen=True)
class Event:
    kind: str                  # 'macro', 'micro' or 'blink'
    onset: int                 # frame numbers, from 1, inclusive
    apex: int
    offset: int
    emotion: str | None        # a key of synth.EXPRESSIONS; None for a blink


@dataclass(frozen=True)
class VideoPlan:
    subject: int               # 0-based
    video: int                 # 0-based within the subject
    n_frames: int
    events: tuple[Event, ...]  # in time order


def check_long_params(*, subjects: int, videos_per_subject: int, seconds: float, layout: str) -> None:
    problems = []
    if subjects < 1 or videos_per_subject < 1:
        problems.append("synth_long_videos.subjects and videos_per_subject must be at least 1")
    if layout == "casme_sq" and (subjects > len(CASME_SQ_SUBJECTS) or videos_per_subject > len(CASME_SQ_VIDEOS)):
        problems.append(f"casme_sq has at most {len(CASME_SQ_SUBJECTS)} subjects and {len(CASME_SQ_VIDEOS)} videos "
                        "per subject")
    if seconds < 2:
        problems.append("synth_long_videos.seconds must be at least 2 (a macro, a micro and a blink)")
    if problems:
        raise ParamsError("; ".join(problems))


def plan_events(rng: np.random.Generator, n_frames: int, fps: float) -> tuple[Event, ...]:
    """The video's events in time order: their number grows with its length (SECONDS_PER_EVENT), their
    order is shuffled and the neutral stretches between them are random, at least MIN_GAP_SECONDS."""
    seconds = n_frames / fps
    macro_longest = min(MACRO_SECONDS[1], max(MACRO_SECONDS[0], seconds / 5))
    ranges = {"macro": (MACRO_SECONDS[0], macro_longest), "micro": MICRO_SECONDS, "blink": BLINK_SECONDS}
    kinds = [kind for kind, every in SECONDS_PER_EVENT.items() for _ in range(max(1, round(seconds / every)))]
    kinds = [kinds[i] for i in rng.permutation(len(kinds))]
    lengths = [max(3, round(rng.uniform(*ranges[kind]) * fps)) for kind in kinds]
    min_gap = max(1, round(MIN_GAP_SECONDS * fps))
    spare = n_frames - sum(lengths) - (len(kinds) + 1) * min_gap
    if spare < 0:
        raise ParamsError(f"synth_long_videos.seconds {seconds:g} is too short for {len(kinds)} events")
    gaps = min_gap + np.floor(spare * rng.dirichlet(np.ones(len(kinds) + 1))).astype(int)
    events, start = [], 1
    for kind, length, gap in zip(kinds, lengths, gaps, strict=False):
        onset = start + int(gap)
        apex = onset + min(length - 2, max(1, round((length - 1) * rng.uniform(0.35, 0.6))))
        emotion = None if kind == "blink" else str(rng.choice(EVENT_EMOTIONS))
        events.append(Event(kind, onset, apex, onset + length - 1, emotion))
        start = onset + length
    return tuple(events)


def plan_videos(*, seed: int, subjects: int, videos_per_subject: int, seconds: float, fps: float) -> list[VideoPlan]:
    n_frames = round(seconds * fps)
    return [VideoPlan(s, v, n_frames, plan_events(np.random.default_rng([seed, 0x5B07, s, v]), n_frames, fps))
            for s in range(subjects) for v in range(videos_per_subject)]


# --- rendering -----------------------------------------------------------------------------------------------

def slow_drift(rng: np.random.Generator, n_frames: int, fps: float, amplitude_px: float) -> np.ndarray:
    """(T, 2) head translation: a slow sine per axis (period DRIFT_PERIOD_SECONDS, random phase)."""
    t = np.arange(n_frames) / fps
    periods = rng.uniform(*DRIFT_PERIOD_SECONDS, size=2)
    phases = rng.uniform(0, 2 * np.pi, size=2)
    return amplitude_px * np.sin(2 * np.pi * t[:, None] / periods + phases)


def blink_displacements(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres and vectors closing both eyes: the upper lids (37, 38 | 43, 44) move onto the lower lids
    (41, 40 | 47, 46), which rise a little to meet them."""
    upper, lower = [37, 38, 43, 44], [41, 40, 47, 46]
    gap = landmarks[lower] - landmarks[upper]
    return (np.concatenate([landmarks[upper], landmarks[lower]]),
            np.concatenate([0.85 * gap, -0.15 * gap]).astype(np.float64))


def render_video(folder: Path, frame_name: Callable[[int], str], plan: VideoPlan, identity: Identity, *,
                 seed: int, fps: float, width: int, height: int, amplitude_px: float, noise_sigma: float,
                 head_jitter_px: float, jpeg_quality: int, grey: bool, progress: tqdm) -> list[dict]:
    """Write the video's frames folder / frame_name(n), n = 1..n_frames; its events' synth_truth.csv fields."""
    folder.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng([seed, 0x5B08, plan.subject, plan.video])
    neutral, landmarks = clip_neutral(identity, rng, width=width, height=height)
    iod = inter_ocular(landmarks)
    fields, truth = [], []
    for event in plan.events:
        if event.kind == "blink":
            centres, vectors = blink_displacements(landmarks)
            field = displacement_field((height, width), centres, vectors, BLINK_SIGMA_IOD * iod)
            units = "45"
        else:
            gain = MACRO_GAIN if event.kind == "macro" else 1.0
            centres, vectors, _ = commanded_displacements(event.emotion, landmarks,
                                                          gain * amplitude_px * rng.uniform(0.85, 1.15))
            field = displacement_field((height, width), centres, vectors, RBF_SIGMA_IOD * iod)
            units = EXPRESSIONS[event.emotion][0]
        fields.append(field)
        truth.append({"kind": event.kind, "onset": event.onset, "apex": event.apex, "offset": event.offset,
                      "emotion": event.emotion or "", "action_units": units,
                      "apex_displacement_px": f"{np.linalg.norm(vectors, axis=1).max():.4f}"})
    strength = np.zeros(plan.n_frames, dtype=np.float32)
    active = np.full(plan.n_frames, -1)
    for index, event in enumerate(plan.events):
        span = slice(event.onset - 1, event.offset)
        strength[span] = motion_profile(event.offset - event.onset + 1, event.apex - event.onset)
        active[span] = index
    shift = slow_drift(rng, plan.n_frames, fps, DRIFT_PX) + head_jitter(rng, plan.n_frames, head_jitter_px)
    still = np.zeros((2, height, width), dtype=np.float32)
    for t in range(plan.n_frames):
        field = fields[active[t]] if active[t] >= 0 else still
        frame = render_frame(neutral, field, strength[t], shift[t], camera_noise(rng, neutral.shape, noise_sigma))
        if grey:
            write_grey(folder / frame_name(t + 1), cv2.cvtColor(frame, cv2.COLOR_RGB2GRAY), jpeg_quality)
        else:
            write_rgb(folder / frame_name(t + 1), frame, jpeg_quality)
        progress.update()
    return truth


def build_long_tree(out_dir: Path, title: str, plans: list[VideoPlan], params: dict, *, fps: float, grey: bool,
                    video_of: Callable[[VideoPlan], tuple[str, str, Path, Callable[[int], str]]],
                    write_sheet: Callable[[Path, list[VideoPlan]], None]) -> None:
    """Render every planned video into a temporary tree beside `out_dir`, add the sheet, truth and sources,
    then move it into place. video_of(plan) -> (video id, subject, folder relative to the tree, n -> file name)."""
    identities = build_identities(max(p.subject for p in plans) + 1, seed=params["seed"], width=params["width"],
                                  height=params["height"], face_width_px=params["face_width_px"])
    out_dir.parent.mkdir(parents=True, exist_ok=True)
    tmp_dir = Path(tempfile.mkdtemp(prefix=f".{out_dir.name}.", suffix=".tmp", dir=out_dir.parent))
    try:
        truth_rows, listing = [], []
        progress = tqdm(total=sum(p.n_frames for p in plans), unit="frame", desc=f"synthetic {title}")
        for plan in plans:
            video, subject, folder, frame_name = video_of(plan)
            identity = identities[plan.subject]
            rows = render_video(tmp_dir / folder, frame_name, plan, identity, fps=fps, grey=grey, progress=progress,
                                **{key: params[key] for key in ("seed", "width", "height", "amplitude_px",
                                                                "noise_sigma", "head_jitter_px", "jpeg_quality")})
            truth_rows += [{"video": video, "subject": subject, "identity": identity.name, **row} for row in rows]
            listing.append(f"  {subject}: {identity.name}")
        progress.close()
        write_sheet(tmp_dir, plans)
        write_truth(tmp_dir / TRUTH_NAME, truth_rows)
        subjects = "\n".join(dict.fromkeys(listing))
        (tmp_dir / "SOURCES.txt").write_text(f"{SOURCES}\nSubjects (lfwN = skimage.data.lfw_subset()[N]):\n"
                                             f"{subjects}\n")
        replace_dir(tmp_dir, out_dir)
    except BaseException:
        shutil.rmtree(tmp_dir, ignore_errors=True)
        raise


# --- the two layouts ----------------------------------------------------------------------------------------

def casme_sq_video(plan: VideoPlan) -> tuple[str, str, Path, Callable[[int], str]]:
    subject = CASME_SQ_SUBJECTS[plan.subject]
    code, name, _ = CASME_SQ_VIDEOS[(plan.subject + plan.video) % len(CASME_SQ_VIDEOS)]
    folder = f"{subject[1:]}_{code}{name}"
    return f"{subject}/{folder}", subject, Path("rawpic") / subject / folder, lambda n: f"img{n:03d}.jpg"


def write_casme_sq_workbook(path: Path, plans: list[VideoPlan]) -> None:
    """The code workbook as the owners ship it: three sheets without header rows. Codes in `naming rule2`
    are stored as numbers (101): copies differ, and the reader takes either."""
    workbook = openpyxl.Workbook()
    codes = workbook.active
    codes.title = "CASFEcode_final"
    rule1 = workbook.create_sheet("naming rule1")
    rule2 = workbook.create_sheet("naming rule2")
    for plan in plans:
        subject = CASME_SQ_SUBJECTS[plan.subject]
        _, _, video_name = CASME_SQ_VIDEOS[(plan.subject + plan.video) % len(CASME_SQ_VIDEOS)]
        expressions = [event for event in plan.events if event.kind != "blink"]
        for number, event in enumerate(expressions, start=1):
            codes.append([plan.subject + 1, f"{video_name}_{number}", event.onset, event.apex, event.offset,
                          EXPRESSIONS[event.emotion][0], CASME_SQ_ESTIMATED.get(event.emotion, "negative"),
                          f"{event.kind}-expression", event.emotion])
            rule1.append([int(subject[1:]), subject, plan.subject + 1])     # aligned row for row, as shipped
    for code, _, video_name in CASME_SQ_VIDEOS:
        rule2.append([int(code), video_name])
    save_workbook(workbook, path)


def samm_lv_video(plan: VideoPlan) -> tuple[str, str, Path, Callable[[int], str]]:
    subject = f"{SAMM_LV_FIRST_SUBJECT + plan.subject:03d}"
    video = f"{subject}_{plan.video + 1}"
    digits = 5 if plan.n_frames > 9999 else 4      # the owners pad to 5 digits in their longest videos
    return video, subject, Path("SAMM_longvideos") / video, lambda n: f"{video}_{n:0{digits}d}.jpg"


def write_samm_lv_sheet(path: Path, plans: list[VideoPlan]) -> None:
    """The release sheet: 9 preamble rows, the header row, one row per expression; no emotion column."""
    workbook = openpyxl.Workbook()
    sheet = workbook.active
    sheet.title = "FACS_Movement_Only"
    for line in SAMM_LV_PREAMBLE:
        sheet.append(line)
    sheet.append(SAMM_LV_HEADER)
    for plan in plans:
        video, subject, _, _ = samm_lv_video(plan)
        expressions = [event for event in plan.events if event.kind != "blink"]
        for number, event in enumerate(expressions, start=1):
            sheet.append([int(subject), f"{video}_{number}", plan.video + 1, event.onset, event.apex, event.offset,
                          event.offset - event.onset + 1, "Macro" if event.kind == "macro" else "Micro - 1/2",
                          EXPRESSIONS[event.emotion][0], None])
    save_workbook(workbook, path)


def save_workbook(workbook: openpyxl.Workbook, path: Path) -> None:
    buffer = io.BytesIO()
    workbook.save(buffer)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_reproducible_zip(path, buffer.getvalue())


LONG_WRITERS = {   # layout (a key of long_videos.LONG_LAYOUTS) -> (video naming, sheet writer, grey frames)
    "casme_sq": (casme_sq_video, lambda tree, plans: write_casme_sq_workbook(tree / CASME_SQ_WORKBOOK, plans), False),
    "samm_lv": (samm_lv_video, lambda tree, plans: write_samm_lv_sheet(tree / SAMM_LV_SHEET, plans), True),
}
LONG_FPS = {"casme_sq": CASME_SQ_FPS, "samm_lv": SAMM_LV_FPS}


def generate_long_synthetic(layout: str, out_dir: Path, *, seed: int, subjects: int, videos_per_subject: int,
                            seconds: float, width: int, height: int, face_width_px: int, amplitude_px: float,
                            noise_sigma: float, head_jitter_px: float, jpeg_quality: int) -> list[VideoPlan]:
    """Write a synthetic long-video tree of `layout` at `out_dir` (atomically); return the plans it drew.

    seed, width, height, face_width_px, amplitude_px, noise_sigma, head_jitter_px and jpeg_quality are the
    synth section's; subjects, videos_per_subject and seconds synth_long_videos's."""
    if layout not in LONG_WRITERS:
        raise ParamsError(f"synth --layout: unknown long-video layout {layout!r} (known: {', '.join(LONG_WRITERS)})")
    check_long_params(subjects=subjects, videos_per_subject=videos_per_subject, seconds=seconds, layout=layout)
    video_of, write_sheet, grey = LONG_WRITERS[layout]
    plans = plan_videos(seed=seed, subjects=subjects, videos_per_subject=videos_per_subject, seconds=seconds,
                        fps=LONG_FPS[layout])
    params = dict(seed=seed, width=width, height=height, face_width_px=face_width_px, amplitude_px=amplitude_px,
                  noise_sigma=noise_sigma, head_jitter_px=head_jitter_px, jpeg_quality=jpeg_quality)
    build_long_tree(Path(out_dir), LONG_LAYOUTS[layout].title, plans, params, fps=LONG_FPS[layout], grey=grey,
                    video_of=video_of, write_sheet=write_sheet)
    return plans


# The synth section's keys a long-video tree is drawn with (the rest of it is about short clips).
SYNTH_KEYS = ("seed", "width", "height", "face_width_px", "amplitude_px", "noise_sigma", "head_jitter_px",
              "jpeg_quality")


def synth_long_stage(out_dir: Path, layout: str, *, synth: Mapping[str, Any], long_videos: Mapping[str, Any]) -> None:
    """The workflow's synth_long rule: a synthetic long-video tree of `layout` from the synth and
    synth_long_videos params."""
    generate_long_synthetic(layout, Path(out_dir), **{key: synth[key] for key in SYNTH_KEYS}, **long_videos)
