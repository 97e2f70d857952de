"""Spotting one long video: its aligned face cached to HDF5, a score curve per expression type, the spotted
intervals and a QC figure.

1. `write_aligned_video`: the aligned grey face of every frame (pipeline/spotting/video.py) appended to an
   HDF5 group in chunks, with each frame's number and whether it has a face, so the video is decoded and
   registered once and never held in memory whole.
2. `video_curves`: the training-free MDMD feature (pipeline/spotting/mdmd.py) of every frame and its relative
   difference, the score, once with the micro-expression window k_micro and once with the macro one k_macro
   (frames k apart are compared, so k is about half an expression's length). A frame is scored only when
   its whole window lies in one run of frames that have a face (video.py); elsewhere its score is NaN.
3. `spot_intervals`: each curve's peaks above its threshold (mean + p (max - mean), per video), a peak
   becoming the interval peak ± k; the micro curve keeps its micro-length intervals (at most 0.5 s, MEGC's
   definition) and the macro curve its longer ones; frame indices become the video's frame numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass

import h5py
import numpy as np
import pandas as pd

from pipeline.spotting.mdmd import mdmd_curve_stream, relative_difference, spot_peaks
from pipeline.spotting.video import FaceRegistration, SourceFrame, SpottingProblem, aligned_frames

CHUNK_FRAMES = 64
INTERVAL_COLUMNS = ["video", "onset", "offset", "type", "score"]


@dataclass(frozen=True)
class MDMDSpotter:
    """The MDMD spotter's params (`spotting.mdmd` in params.yaml)."""
    k_micro_seconds: float = 0.4     # MEGC 2020's baseline: k = 12 on CAS(ME)2 (30 fps), 80 on SAMM-LV (200 fps)
    k_macro_seconds: float = 1.3     # k = 39 and 260
    p: float = 0.01                  # threshold: mean + p (max - mean) of the video's score curve
    blocks: int = 6                  # the face in blocks x blocks regions (MDMD: 6 x 6)
    top_blocks: float = 1 / 3        # a frame's feature: the mean of its largest third of block values
    flow: str = "dis"                # optical flow between the compared frames: dis or tvl1
    micro_min_seconds: float = 0.23  # shorter intervals are dropped (the baseline: 7 frames at 30 fps)
    micro_max_seconds: float = 0.5   # MEGC: a micro-expression lasts at most 0.5 s

    def k(self, kind: str, fps: float) -> int:
        return max(2, round((self.k_micro_seconds if kind == "micro" else self.k_macro_seconds) * fps))


# --- 1. the aligned face, cached ---------------------------------------------------------------------------

def write_aligned_video(group: h5py.Group, video: str, frames: Callable[[], Iterable[SourceFrame]], fps: float,
                        registration: FaceRegistration, problems: list[SpottingProblem]) -> int:
    """Align every frame of a video into `group` (frames (T, H, W) uint8, number, has_face); the number of
    frames written. `frames` gives the video's frames afresh for each pass (video.aligned_frames)."""
    h, w = registration.height, registration.width
    images = group.create_dataset("frames", shape=(0, h, w), maxshape=(None, h, w), dtype=np.uint8,
                                  chunks=(CHUNK_FRAMES, h, w))
    numbers, has_face = [], []
    buffer: list[np.ndarray] = []

    def flush() -> None:
        if buffer:
            start = images.shape[0]
            images.resize(start + len(buffer), axis=0)
            images[start:] = np.stack(buffer)
            buffer.clear()

    blank = np.zeros((h, w), dtype=np.uint8)
    for frame in aligned_frames(video, frames, fps, registration, problems):
        numbers.append(frame.number)
        has_face.append(frame.image is not None)
        buffer.append(blank if frame.image is None else frame.image)
        if len(buffer) == CHUNK_FRAMES:
            flush()
    flush()
    group.create_dataset("number", data=np.asarray(numbers, dtype=np.int64))
    group.create_dataset("has_face", data=np.asarray(has_face, dtype=bool))
    group.attrs["fps"] = float(fps)
    return len(numbers)


def runs(has_face: np.ndarray) -> list[tuple[int, int]]:
    """(start, stop) of every run of consecutive frames with a face."""
    usable = np.concatenate([[False], np.asarray(has_face, dtype=bool), [False]]).astype(np.int8)
    edges = np.flatnonzero(np.diff(usable))
    return [(int(start), int(stop)) for start, stop in zip(edges[::2], edges[1::2], strict=True)]


def _chunked(images: h5py.Dataset, start: int, stop: int) -> Iterable[np.ndarray]:
    for first in range(start, stop, CHUNK_FRAMES):
        yield from images[first:min(first + CHUNK_FRAMES, stop)]


# --- 2. the score curves ----------------------------------------------------------------------------------

def video_curves(group: h5py.Group, spotter: MDMDSpotter) -> pd.DataFrame:
    """Per frame: its number, and with the micro and the macro window its MDMD feature and score, the
    feature's relative difference (NaN where the window leaves a run, module docstring)."""
    fps = float(group.attrs["fps"])
    has_face = group["has_face"][()]
    curves = {}
    for kind in ("micro", "macro"):
        k = spotter.k(kind, fps)
        curve = np.full(len(has_face), np.nan)
        for start, stop in runs(has_face):
            if stop - start > 2 * k:
                curve[start:stop] = mdmd_curve_stream(_chunked(group["frames"], start, stop), k, blocks=spotter.blocks,
                                                      top_blocks=spotter.top_blocks, flow=spotter.flow)
        curves[f"mdmd_{kind}"] = curve
        # What is thresholded: how far a frame stands above the frames k - 1 before and after it (He et al.).
        curves[f"score_{kind}"] = relative_difference(curve, k)
    return pd.DataFrame({"frame": group["number"][()], **curves})


# --- 3. the intervals -------------------------------------------------------------------------------------

def video_intervals(video: str, numbers: np.ndarray, passes: Mapping[str, pd.DataFrame]) -> pd.DataFrame:
    """A video's intervals (INTERVAL_COLUMNS; onset and offset the video's frame numbers, inclusive) from what each
    pass spotted (kind -> onset, offset as positions into `numbers`, type, score): each pass keeps the intervals
    of its own type. Every spotter's passes end here."""
    found = [{"video": video, "onset": int(numbers[r.onset]), "offset": int(numbers[r.offset]), "type": kind,
              "score": float(r.score)}
             for kind, spotted in passes.items() for r in spotted[spotted["type"] == kind].itertuples()]
    return pd.DataFrame(found, columns=INTERVAL_COLUMNS).sort_values(["onset", "type"], ignore_index=True)


def spot_intervals(video: str, curves: pd.DataFrame, fps: float, spotter: MDMDSpotter) -> pd.DataFrame:
    """The intervals MDMD spotted in one video (`video_intervals`)."""
    return video_intervals(video, curves["frame"].to_numpy(), {
        kind: spot_peaks(curves[f"score_{kind}"].to_numpy(), k=spotter.k(kind, fps), p=spotter.p, fps=fps,
                         micro_max_seconds=spotter.micro_max_seconds, min_seconds=spotter.micro_min_seconds)
        for kind in ("micro", "macro")})
