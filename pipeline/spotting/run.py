"""Spotting a whole long-video dataset (scored against its sheet), or one recording of a user's (`merflow spot`).

Both write into one output folder, atomically (nothing half-written is left after an error or a kill):

    aligned.h5        /videos/<n>: the aligned grey face of every frame (pipeline/spotting/spot.py), the cache
                      the curves are computed from
    curves/<n>.csv    per frame: number, the MDMD feature and score with the micro and the macro window
    intervals.csv     the spotted intervals: video, onset, offset (frame numbers, inclusive), type, score
    figures/<n>.png   the curves with their thresholds, true and spotted intervals
    problems.csv      every frame that could not be read or had no face (video, frame, file, reason)
    scores.csv        (a dataset) MEGC's spotting metric against the sheet's intervals: micro, macro and
                      overall TP, FP, FN, precision, recall, F1 (pipeline/spotting/metric.py)

<n> is the video's position in the dataset (its id, which may hold a '/', is in intervals.csv and in the
group's `video` attribute).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterable, Mapping
from pathlib import Path
from typing import Any

import h5py
import pandas as pd
from tqdm import tqdm

from pipeline.artifacts import atomic_directory
from pipeline.figures import png_bytes
from pipeline.spotting.figure import spotting_figure
from pipeline.spotting.metric import spotting_scores
from pipeline.spotting.spot import INTERVAL_COLUMNS, MDMDSpotter, spot_intervals, video_curves, write_aligned_video
from pipeline.spotting.video import FaceRegistration, SourceFrame, SpottingProblem, frame_files

PROBLEM_COLUMNS = ["video", "frame", "file", "reason"]


def spot_videos(videos: Iterable[tuple[str, Callable[[], Iterable[SourceFrame]], float]], out_dir: Path,
                registration: FaceRegistration, spotter: MDMDSpotter,
                truth: pd.DataFrame | None = None) -> pd.DataFrame:
    """Spot every (video id, its frames afresh for each pass, fps) into a fresh `out_dir` (module docstring); the
    spotted intervals.
    `truth` (video, onset, offset, type) adds the true intervals to the figures and scores.csv."""
    problems: list[SpottingProblem] = []
    spotted = []
    with atomic_directory(out_dir) as tmp:
        (tmp / "curves").mkdir()
        (tmp / "figures").mkdir()
        with h5py.File(tmp / "aligned.h5", "w") as h5:
            for n, (video, frames, fps) in enumerate(tqdm(list(videos), desc="spotting", unit="video")):
                group = h5.create_group(f"videos/{n}")
                group.attrs["video"] = video
                write_aligned_video(group, video, frames, fps, registration, problems)
                curves = video_curves(group, spotter)
                intervals = spot_intervals(video, curves, fps, spotter)
                curves.to_csv(tmp / "curves" / f"{n}.csv", index=False, float_format="%.6g")
                true = None if truth is None else truth[truth["video"] == video]
                (tmp / "figures" / f"{n}.png").write_bytes(
                    png_bytes(spotting_figure(video, curves, intervals, true, spotter.p)))
                spotted.append(intervals)
        table = pd.concat(spotted, ignore_index=True) if spotted else pd.DataFrame(columns=INTERVAL_COLUMNS)
        table.to_csv(tmp / "intervals.csv", index=False, float_format="%.6g")
        pd.DataFrame([[p.video, p.frame, p.path, p.reason] for p in problems],
                     columns=PROBLEM_COLUMNS).to_csv(tmp / "problems.csv", index=False)
        if truth is not None:
            spotting_scores(truth[["video", "onset", "offset", "type"]], table).to_csv(
                tmp / "scores.csv", index=False, float_format="%.6g")
    for problem in problems:
        print(f"spotting: {problem}")
    return table


def spot_dataset_stage(root: Path, layout: str, out_dir: Path, *, registration: Mapping[str, Any],
                       mdmd: Mapping[str, Any]) -> None:
    """Every video of a long-video dataset tree (`casme_sq`, `samm_lv`), spotted with MDMD and scored against its
    sheet (the workflow's spot rule, and `merflow spot --layout`)."""
    from pipeline.datasets.long_layouts import read_long_videos
    videos, intervals, _ = read_long_videos(Path(root), layout)
    sources = [(v.video, functools.partial(frame_files, v.video, list(zip(v.frame_numbers, v.frames, strict=True))),
                v.fps) for v in videos]
    truth = intervals.dropna(subset=["onset", "offset"])[["video", "onset", "offset", "type"]].astype(
        {"onset": int, "offset": int})
    spot_videos(sources, Path(out_dir), FaceRegistration(**registration), MDMDSpotter(**mdmd), truth)


def spot_recording(path: Path, out_dir: Path, fps: float | None, *, registration: Mapping[str, Any],
                   mdmd: Mapping[str, Any]) -> pd.DataFrame:
    """One recording of a user's: a video file or a folder of frames (numbered by their names' numbers)."""
    from pipeline.errors import MerflowError
    from pipeline.predict import natural_key
    from pipeline.spotting.video import video_file_frames
    path = Path(path)
    if path.is_dir():
        files = sorted((f for f in path.iterdir() if f.suffix.lower() in (".jpg", ".jpeg", ".png", ".bmp")),
                       key=lambda f: natural_key(f.name))
        if not files:
            raise MerflowError(f"{path}: no .jpg, .png or .bmp frames in this folder")
        if fps is None:
            raise MerflowError(f"{path}: a folder of frames has no frame rate; give it with --fps")
        frames = functools.partial(frame_files, path.name, list(enumerate(files, start=1)))
    elif path.is_file():
        import cv2
        capture = cv2.VideoCapture(os.fspath(path))
        fps = fps or capture.get(cv2.CAP_PROP_FPS) or None
        capture.release()
        if not fps:
            raise MerflowError(f"{path}: the video does not say its frame rate; give it with --fps")
        frames = functools.partial(video_file_frames, path)
    else:
        raise MerflowError(f"{path}: no such video file or folder of frames")
    return spot_videos([(path.name, frames, float(fps))], Path(out_dir), FaceRegistration(**registration),
                       MDMDSpotter(**mdmd))


def run_spotting_job(smk: Any) -> None:
    """What workflow/scripts/spotting.py does: the spotting rule's function on its files, logged."""
    from pipeline.datasets.long_video_synth import synth_long_stage
    from pipeline.runner import run_logged
    from pipeline.spotting.table import spotting_table_stage
    log = smk.log[0]
    if smk.rule == "synth_long":
        run_logged(log, synth_long_stage, Path(smk.output.out_dir), smk.wildcards.layout, **smk.params.p)
    elif smk.rule == "spot":
        run_logged(log, spot_dataset_stage, Path(smk.input.tree), smk.params.layout, Path(smk.output.out_dir),
                   **smk.params.p)
    elif smk.rule == "spotting":
        run_logged(log, spotting_table_stage, [Path(d) / "scores.csv" for d in smk.input.scores],
                   Path(smk.output.table), **smk.params.p)
    else:
        raise ValueError(f"no spotting job for rule {smk.rule}")
