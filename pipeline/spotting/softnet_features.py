"""SOFTNet's inputs and pseudo-labels from merflow's aligned long-video cache (pipeline/spotting/spot.py).

Source: Liong, Gan, See, Khor & Huang, "Shallow optical flow three-stream CNN for macro- and micro-expression
spotting from long videos", ICIP 2021, and its authors' code, github.com/genbing99/SoftNet-SpotME
(its code as last changed in September 2021, cited below as file:line). The network, its training and the
spotting rule are in pipeline/spotting/softnet.py.

Inputs (extraction_preprocess.py), one per frame i whose frame i + k lies in the same run of faces:
    1. the optical flow from frame i to frame i + k (l.26-28, l.90-92; TV-L1 there) and its optical strain
       (l.11-17, l.95);
    2. head motion removed: the mean of each channel over an 11 x 11 window at landmark 28 (the nose bridge)
       is subtracted, and u and v are then taken as absolute values; the strain keeps its sign (l.103-106);
    3. the eyes masked to 0 in all three channels: polygons on landmarks 36-41 and 42-47 pushed out by 15 px
       (l.39-65, l.108-112), since blinks are movements that are no expression;
    4. two regions cut out and resized to 42 x 21 each, stacked into 42 x 42 x 3 (u, v, strain): the band of
       both eyebrows and eyes (columns landmark 17 - 12 px to landmark 26 + 12 px, rows from the higher of
       landmarks 19 and 24 - 12 px to the lower of 41 and 46 + 12 px: SOFTNet names two eyebrow regions but
       cuts them as one band, l.67-77 and l.116) on top, the mouth (landmarks 60 - 12 px to 64 + 12 px across,
       50 - 12 px to 57 + 12 px down, l.79-83, l.117) below.
Pseudo-labels (training.py:15-40): the sample of frame i stands for the window of frames i .. i + k - 1; it
    is labelled 1 when that window overlaps a true interval of the pass's expression type at all (IoU > 0,
    "Equivalent to if IoU>0 then y=1" l.31; the loop's `pseudo_y_each[index] < IoU` can only ever set 1), else
    0. The labels are hard; the soft score is the network's regression output, smoothed (softnet.py). The
    interval's frames are taken as onset + 1 .. offset (np.arange(ME[0]+1, ME[1]+1) of the 0-based onset - 1
    and offset - 1, load_label.py:60-64): the onset frame itself is not counted, as in the code.

Departures, and why:
    - Fixed regions instead of landmarks. SOFTNet crops each video by one dlib box (load_images.py:39-51) and
      places the regions from the landmarks of its first frame with a face. merflow's faces are aligned to a
      template (eye centres on row 0.34 H, 0.40 W apart about the centre: pipeline/spotting/video.py), so the
      regions sit at fixed template positions, placed from the mean dlib 68-point shape (OpenFace's
      align_dlib TEMPLATE) mapped onto the template by its eye centres. In units of the eye distance d from
      the eyes' midpoint (x right, y down), SOFTNet's margins being 12 px = 0.22 d and 15 px = 0.27 d of its
      crop (eye distance there ~55 px of 128), they are (pixels at the default 128 x 128, d = 51.2):
          eye band   x -1.14 .. 1.14,  y -0.58 .. 0.27     columns 5-121, rows 13-56
          mouth      x -0.60 .. 0.60,  y  0.78 .. 1.57     columns 33-93, rows 83-122
          nose       11 x 11 at (0, 0.18)                  columns 59-69, rows 47-57
          eye masks  hexagons, image-left one (mirrored for the other):
                     (-0.97, 0), (-0.57, -0.34), (-0.42, -0.34), (-0.03, 0.03), (-0.43, 0.33), (-0.58, 0.33)
    - Optical flow: DIS (OpenCV, preset medium) by default, TV-L1 as an option (pipeline/spotting/mdmd.py's
      flow_function); SOFTNet uses TV-L1 only, about 50 times slower.
    - Strain by central differences (pipeline/flow.py's optical_strain) instead of SOFTNet's forward
      differences with the last row and column forward-filled.
    - Resizing by area averaging (each region shrinks 1.5 to 3 times) instead of cv2.resize's bilinear
      default, which reads 4 pixels per output pixel and aliases the flow's fine structure.
    - Frames without a face: a sample needs frames i and i + k in one run of faces (spot.runs); SOFTNet has no
      missing frames (one face box for the whole video). Frames are read from the cache in chunks.
    - Labels are given for every frame position (the window clipped at the video's end); SOFTNet has no
      sample for the last k frames, which have no input here either.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

import cv2
import h5py
import numpy as np
import pandas as pd

from pipeline.flow import optical_strain
from pipeline.spotting.mdmd import flow_function
from pipeline.spotting.spot import runs
from pipeline.spotting.video import FaceRegistration

INPUT_SIZE = 42                 # SOFTNet's 42 x 42 x 3 input: two 42 x 21 regions stacked
CHUNK_FRAMES = 64               # frames read from the cache at a time (for each end of the flow)
# The regions in units of the eye distance from the eyes' midpoint (module docstring).
EYE_BAND = (-0.58, 0.27, -1.14, 1.14)          # top, bottom, left, right
MOUTH = (0.78, 1.57, -0.60, 0.60)
NOSE_CENTRE = (0.0, 0.18)                      # x, y
NOSE_HALF_WIDTH = 0.1                          # SOFTNet's 11 x 11 window: 5 px each side at d = 51.2
LEFT_EYE_MASK = ((-0.97, 0.0), (-0.57, -0.34), (-0.42, -0.34), (-0.03, 0.03), (-0.43, 0.33), (-0.58, 0.33))


@dataclass(frozen=True)
class SoftNetRegions:
    """Where SOFTNet's regions lie in an aligned face: (top, bottom, left, right) pixel boxes, ends exclusive,
    and the eye mask ((H, W) bool, True where the flow is zeroed)."""
    eye_band: tuple[int, int, int, int]
    mouth: tuple[int, int, int, int]
    nose: tuple[int, int, int, int]
    eye_mask: np.ndarray


@functools.lru_cache(maxsize=8)
def softnet_regions(height: int = 128, width: int = 128, eye_y: float = 0.34,
                    eye_distance: float = 0.40) -> SoftNetRegions:
    """SOFTNet's regions for faces aligned to this template (pipeline/faces.py's eye positions)."""
    centre_x, eye_row, d = (width - 1) / 2, eye_y * height - 0.5, eye_distance * width

    def box(top: float, bottom: float, left: float, right: float) -> tuple[int, int, int, int]:
        return (max(0, round(eye_row + top * d)), min(height, round(eye_row + bottom * d)),
                max(0, round(centre_x + left * d)), min(width, round(centre_x + right * d)))

    nose_x, nose_y = round(centre_x + NOSE_CENTRE[0] * d), round(eye_row + NOSE_CENTRE[1] * d)
    half = max(1, round(NOSE_HALF_WIDTH * d))
    mask = np.zeros((height, width), dtype=np.uint8)
    for side in (1, -1):
        polygon = np.array([[round(centre_x + side * x * d), round(eye_row + y * d)] for x, y in LEFT_EYE_MASK],
                           dtype=np.int32)
        cv2.fillPoly(mask, [polygon], 1)
    eye_mask = mask.astype(bool)
    eye_mask.flags.writeable = False            # shared by every caller through the cache
    return SoftNetRegions(eye_band=box(*EYE_BAND), mouth=box(*MOUTH),
                          nose=(nose_y - half, nose_y + half + 1, nose_x - half, nose_x + half + 1),
                          eye_mask=eye_mask)


def region_input(flow: np.ndarray, regions: SoftNetRegions) -> np.ndarray:
    """SOFTNet's (3, 42, 42) float32 input (u, v, strain) from one (H, W, 2) flow field: head motion removed at
    the nose, eyes masked, the eye band over the mouth (module docstring)."""
    flow = np.asarray(flow, dtype=np.float32)
    top, bottom, left, right = regions.nose
    u, v = flow[..., 0], flow[..., 1]
    strain = optical_strain(flow)
    channels = np.stack([np.abs(u - u[top:bottom, left:right].mean()),
                         np.abs(v - v[top:bottom, left:right].mean()),
                         strain - strain[top:bottom, left:right].mean()], axis=-1).astype(np.float32)
    channels[regions.eye_mask] = 0.0
    halves = []
    for top, bottom, left, right in (regions.eye_band, regions.mouth):
        halves.append(cv2.resize(np.ascontiguousarray(channels[top:bottom, left:right]),
                                 (INPUT_SIZE, INPUT_SIZE // 2), interpolation=cv2.INTER_AREA))
    return np.concatenate(halves, axis=0).transpose(2, 0, 1).copy()


def input_positions(has_face: np.ndarray, k: int) -> np.ndarray:
    """The frame positions that get an input: i such that frames i .. i + k all have a face."""
    starts = [np.arange(start, stop - k) for start, stop in runs(has_face) if stop - start > k]
    return np.concatenate(starts).astype(np.int64) if starts else np.zeros(0, dtype=np.int64)


def softnet_inputs(group: h5py.Group, k: int, flow: str | Callable[[np.ndarray, np.ndarray], np.ndarray] = "dis",
                   *, registration: FaceRegistration | None = None,
                   chunk_frames: int = CHUNK_FRAMES) -> tuple[np.ndarray, np.ndarray]:
    """SOFTNet's inputs for one video of the aligned cache (frames, has_face: spot.write_aligned_video): the
    flow from frame i to frame i + k of every frame i that has one (`input_positions`) as (N, 3, 42, 42)
    float32 u, v, strain (`region_input`), and those positions (N,), 0-based into the group's frames.
    Reads at most 2 x chunk_frames frames at a time; the inputs themselves take 21 KB a frame."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    registration = registration or FaceRegistration()
    frames = group["frames"]
    has_face = np.asarray(group["has_face"][()], dtype=bool)
    regions = softnet_regions(int(frames.shape[1]), int(frames.shape[2]), registration.eye_y,
                              registration.eye_distance)
    positions = input_positions(has_face, k)
    inputs = np.empty((len(positions), 3, INPUT_SIZE, INPUT_SIZE), dtype=np.float32)
    solve = flow_function(flow)
    row = 0
    for start, stop in runs(has_face):
        for first in range(start, stop - k, chunk_frames):
            last = min(first + chunk_frames, stop - k)
            # The two ends of the chunk's flows, read as two slices: 2 x chunk frames whatever k is.
            for head, tail in zip(frames[first:last], frames[first + k:last + k], strict=True):
                inputs[row] = region_input(solve(head, tail), regions)
                row += 1
    assert row == len(positions)
    return inputs, positions


def pseudo_labels(numbers: np.ndarray, intervals: pd.DataFrame, k: int) -> np.ndarray:
    """SOFTNet's label of every frame position of a video (T,) float32: 1 where the window of frames
    i .. i + k - 1 (clipped at the end) holds a frame numbered onset < n <= offset of one of `intervals`
    (columns onset, offset: inclusive frame numbers of the expressions of one type), else 0."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    numbers = np.asarray(numbers, dtype=np.int64)
    expression = np.zeros(len(numbers), dtype=bool)
    for onset, offset in intervals[["onset", "offset"]].itertuples(index=False):
        expression |= (numbers > onset) & (numbers <= offset)
    counts = np.concatenate([[0], np.cumsum(expression)])
    window_ends = np.minimum(np.arange(len(numbers)) + k, len(numbers))
    return (counts[window_ends] - counts[:-1] > 0).astype(np.float32)
