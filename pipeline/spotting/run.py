"""Spotting a whole long-video dataset (scored against its sheet), or one recording of a user's (`merflow spot`).

Both write into one output folder, atomically (nothing half-written is left after an error or a kill):

    aligned.h5        /videos/<n>: the aligned grey face of every frame (pipeline/spotting/spot.py), the cache
                      the curves are computed from
    curves/<n>.csv    per frame: number and, with the micro and the macro window, the spotter's raw output
                      (MDMD's feature, SOFTNet's regression) and the score its threshold cuts
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
from pipeline.errors import MerflowError
from pipeline.figures import png_bytes
from pipeline.spotting.figure import spotting_figure
from pipeline.spotting.metric import spotting_scores
from pipeline.spotting.spot import INTERVAL_COLUMNS, MDMDSpotter, spot_intervals, video_curves, write_aligned_video
from pipeline.spotting.video import FaceRegistration, SourceFrame, SpottingProblem, frame_files

PROBLEM_COLUMNS = ["video", "frame", "file", "reason"]


# A video to spot: its id, its subject, its frames afresh for each pass, its frame rate.
VideoSource = tuple[str, str, Callable[[], Iterable[SourceFrame]], float]


def spotted_curves(spotter: str, params: Mapping[str, Any], groups: list[tuple[str, str, h5py.Group]],
                   truth: pd.DataFrame | None) -> tuple[dict[str, pd.DataFrame], pd.DataFrame, float]:
    """Each video's curves (frame, score_micro, score_macro and the spotter's own columns), the intervals, and
    the p of the threshold the scores are cut at. MDMD spots each video alone; SOFTNet trains on the
    other subjects' videos and their true intervals (leave one subject out)."""
    if spotter == "mdmd":
        mdmd = MDMDSpotter(**params)
        curves = {video: video_curves(group, mdmd) for video, _, group in groups}
        tables = [spot_intervals(video, curves[video], float(group.attrs["fps"]), mdmd) for video, _, group in groups]
        table = pd.concat(tables, ignore_index=True) if tables else pd.DataFrame(columns=INTERVAL_COLUMNS)
        return curves, table, mdmd.p
    if spotter == "softnet":
        from pipeline.spotting.softnet import SoftNetSpotter, smooth_curve, softnet_spot_videos
        if truth is None:
            raise MerflowError("SOFTNet learns from a dataset's coded intervals: spot a dataset tree (--layout)")
        softnet = SoftNetSpotter(**params)
        result = softnet_spot_videos(groups, truth, softnet)
        curves = {}
        for video, _, group in groups:
            fps = float(group.attrs["fps"])
            columns = {"frame": group["number"][()]}
            for kind in ("micro", "macro"):
                columns[f"softnet_{kind}"] = result.curves[kind][video]
                columns[f"score_{kind}"] = smooth_curve(result.curves[kind][video], softnet.k(kind, fps))
            curves[video] = pd.DataFrame(columns)
        return curves, result.intervals, softnet.p
    raise MerflowError(f"unknown spotter {spotter!r} (known: mdmd, softnet)")


def spot_videos(videos: Iterable[VideoSource], out_dir: Path, registration: FaceRegistration, spotter: str,
                params: Mapping[str, Any], truth: pd.DataFrame | None = None) -> pd.DataFrame:
    """Spot every video into a fresh `out_dir` (module docstring) with `spotter` (mdmd, softnet) and its params;
    the spotted intervals. `truth` (video, onset, offset, type) adds the true intervals to the figures and
    scores.csv, and is what SOFTNet learns from."""
    problems: list[SpottingProblem] = []
    with atomic_directory(out_dir) as tmp:
        (tmp / "curves").mkdir()
        (tmp / "figures").mkdir()
        with h5py.File(tmp / "aligned.h5", "w") as h5:
            groups = []
            for n, (video, subject, frames, fps) in enumerate(tqdm(list(videos), desc="aligning", unit="video")):
                group = h5.create_group(f"videos/{n}")
                group.attrs["video"], group.attrs["subject"] = video, subject
                write_aligned_video(group, video, frames, fps, registration, problems)
                groups.append((video, subject, group))
            curves, table, p = spotted_curves(spotter, params, groups, truth)
        for n, (video, _, _) in enumerate(groups):
            curves[video].to_csv(tmp / "curves" / f"{n}.csv", index=False, float_format="%.6g")
            true = None if truth is None else truth[truth["video"] == video]
            (tmp / "figures" / f"{n}.png").write_bytes(png_bytes(
                spotting_figure(video, curves[video], table[table["video"] == video], true, p)))
        table = table.sort_values(["video", "onset", "type"], ignore_index=True)
        table.to_csv(tmp / "intervals.csv", index=False, float_format="%.6g")
        pd.DataFrame([[problem.video, problem.frame, problem.path, problem.reason] for problem in problems],
                     columns=PROBLEM_COLUMNS).to_csv(tmp / "problems.csv", index=False)
        if truth is not None:
            spotting_scores(truth[["video", "onset", "offset", "type"]], table).to_csv(
                tmp / "scores.csv", index=False, float_format="%.6g")
    for problem in problems:
        print(f"spotting: {problem}")
    return table


def spot_dataset_stage(root: Path, layout: str, out_dir: Path, *, spotter: str, registration: Mapping[str, Any],
                       params: Mapping[str, Any]) -> None:
    """Every video of a long-video dataset tree (`casme_sq`, `samm_lv`), spotted with `spotter` (its `params`) and
    scored against its sheet (the workflow's spot rule, and `merflow spot --layout`)."""
    from pipeline.datasets.long_layouts import read_long_videos
    videos, intervals, _ = read_long_videos(Path(root), layout)
    sources = [(v.video, v.subject,
                functools.partial(frame_files, v.video, list(zip(v.frame_numbers, v.frames, strict=True))), v.fps)
               for v in videos]
    truth = intervals.dropna(subset=["onset", "offset"])[["video", "onset", "offset", "type"]].astype(
        {"onset": int, "offset": int})
    spot_videos(sources, Path(out_dir), FaceRegistration(**registration), spotter, params, truth)


def spot_recording(path: Path, out_dir: Path, fps: float | None, *, registration: Mapping[str, Any],
                   mdmd: Mapping[str, Any]) -> pd.DataFrame:
    """One recording of a user's, spotted with MDMD: a video file or a folder of frames (numbered by their names'
    numbers)."""
    from pipeline.predict import frame_paths
    from pipeline.spotting.video import video_file_frames
    path = Path(path)
    if path.is_dir():
        files = frame_paths(path)
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
    return spot_videos([(path.name, path.name, frames, float(fps))], Path(out_dir), FaceRegistration(**registration),
                       "mdmd", mdmd)


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
                   spotter=smk.wildcards.spotter, **smk.params.p)
    elif smk.rule == "spotting":
        run_logged(log, spotting_table_stage, [Path(d) for d in smk.input.spotted], Path(smk.output.table),
                   Path(smk.output.page), **smk.params.p)
    else:
        raise ValueError(f"no spotting job for rule {smk.rule}")
