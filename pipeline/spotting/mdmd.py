"""MDMD, the training-free spotting baseline of MEGC 2020, as pure functions on aligned grey frames.

Sources
    Wang, Wu, Qian, Li & Fu, "A main directional maximal difference analysis for spotting facial
    movements from long-term videos", Neurocomputing 230 (2017) 382-389: the method (not read here:
    the paper itself is paywalled; its definition is taken from the two sources below).
    He, Wang, Li & Yap, "Spotting macro- and micro-expression intervals in long video sequences"
    (FG 2020, arXiv:1912.11985), section II-B-2: a restatement of MDMD with its equations, and II-B-3:
    the MEGC 2020 settings and post-processing.
    The public baseline code of that paper, github.com/HeyingGithub/Baseline-project-for-MEGC2020_spotting:
    MDMD_codes/MDMD.m (the per-frame feature), MDMD_codes/cmd.m (relative difference, threshold),
    MDMD_results/MDMDmat_to_txt.m and result_helper.py (intervals, length limits).

Definition (frame indices 0-based here)
    1. For the current frame F_i, the head frame is F_{i-k} and the tail frame F_{i+k}. Optical flow
       HF -> CF gives (u^HC, v^HC) and HF -> TF gives (u^HT, v^HT) at every pixel of the head frame
       (u to the right, v downwards), in polar form (rho, theta).
    2. The face is cut into b x b blocks (6 x 6 in the paper and in MEGC 2020) of floor(H/b) x floor(W/b)
       pixels; the remainder rows and columns at the bottom and right are left out, as MDMD.m does.
    3. Per block, the HC vectors are split by direction into a = 4 sectors; the main direction is the
       sector holding the most vectors (ties: the first sector, as MATLAB's max). For the g pixels in
       it, the per-pixel differences rho^HC - rho^HT are sorted in descending order and the block's
       maximal difference d_j is the mean of the first round(g/3) (He et al., eq. for d; MDMD.m). It is
       the mean of the largest per-pixel differences, not a difference of two means, and it is not
       clipped at 0 (neither source clips).
    4. The frame's feature dbar^i is the mean of the s largest block values, s = round(b^2 / 3) = 12 for
       6 x 6 (MDMD.m; the paper names s without fixing it): `frame_mdmd`, `mdmd_curve`.
    5. The relative difference r^i = dbar^i - (dbar^{i-k+1} + dbar^{i+k-1}) / 2 removes the slow
       background (He et al.'s eq. for r; cmd.m with m = k - 1): `relative_difference`.
    6. Threshold = r_mean + p (r_max - r_mean) over the video, p in [0, 1]; frames with r above it are
       movement frames, and in MEGC 2020 each run of consecutive movement frames is one interval, runs
       outside a length range being dropped (CAS(ME)^2 at 30 fps: micro 7-16 frames, macro >= 17;
       SAMM-LV at 200 fps: micro 47-105, macro >= 106): `spot_peaks`.
    MEGC 2020's k: CAS(ME)^2 12 (micro) and 39 (macro), SAMM-LV 80 and 260; p = 0.01 for its table.

Choices, and where this differs from the baseline code
    - Directions: sectors of atan2(v, u), i.e. the four quadrants of the flow vector, as the papers'
      figure of four directions in polar coordinates shows. MDMD.m instead bins rad2deg(atan(u ./ v)),
      whose range is (-90, 90]: its second and third "quadrants" stay (almost) empty, so it really
      votes between two axes, {down-right, up-left} and {down-left, up-right}. That rule is kept as
      direction_rule="megc2020_code" for reproducing the baseline. Zero vectors have no direction and
      vote for none (in MDMD.m atan(0/0) is NaN and falls in no bin too); a block with no moving pixel
      is worth 0 (MDMD.m gives NaN there, which would poison the frame's value).
    - Rounding: "the first third" is MATLAB's round (halves away from zero), at least one element.
    - Optical flow: the papers use RLOF (Senst et al. 2012) at every pixel. Here `flow` is OpenCV's
      DIS (preset medium, the default: fast), Dual TV-L1 (opencv-contrib, default settings), OpenCV's
      dense RLOF (grid-interpolated, so not the per-pixel RLOF of the baseline), or any callable
      (head, other) -> (H, W, 2) float flow.
    - Ends: dbar is NaN where i - k or i + k lies outside the video, r where i - k + 1 or i + k - 1
      does. cmd.m's loop ends its r 2k frames before the last frame where r is defined; not copied.
    - Intervals: `spot_peaks` finds the peaks of the curve above the threshold (scipy find_peaks, at
      least k frames apart) and by default grows each into the run of frames around it that stay above
      the threshold (interval="above_threshold"): every run above the threshold holds a peak, so these
      are the baseline's runs, their lengths come from the data and the micro / macro split by length
      means something. interval="peak_window" gives [peak - k, peak + k] clipped to the video instead,
      whose length is fixed by k. Overlapping intervals are merged; score is the curve's maximum in the
      interval; an interval of at most micro_max_seconds * fps frames (MEGC: 0.5 s) is "micro", a longer
      one "macro", and one shorter than min_seconds * fps frames is dropped.

Not confirmed (the 2017 paper was not read): whether it fixes s = b^2 / 3 and the rounding of the thirds,
its own angle convention, and its handling of blocks without a main direction.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Callable, Iterable, Sequence
from typing import Literal

import cv2
import numpy as np
import pandas as pd
from scipy.signal import find_peaks

FlowFunction = Callable[[np.ndarray, np.ndarray], np.ndarray]
FLOW_METHODS = ("dis", "tvl1", "rlof")
DIRECTION_RULES = ("sectors", "megc2020_code")
INTERVAL_RULES = ("above_threshold", "peak_window")
SPOT_COLUMNS = ["onset", "offset", "type", "score"]


def matlab_round(x: float) -> int:
    """MATLAB's round for x >= 0 (halves go up), which the baseline code uses for its thirds."""
    return int(math.floor(x + 0.5))


def top_count(n: int, fraction: float) -> int:
    """How many of n sorted values "the first fraction" keeps: round(n * fraction), at least one."""
    return max(1, matlab_round(n * fraction))


def flow_function(flow: str | FlowFunction) -> FlowFunction:
    """A function (head, other) -> float32 (H, W, 2) flow from the name of a method, or `flow` itself."""
    if callable(flow):
        return flow
    if flow == "dis":
        solver = cv2.DISOpticalFlow_create(cv2.DISOPTICAL_FLOW_PRESET_MEDIUM)
        return lambda head, other: solver.calc(head, other, None)
    if flow == "tvl1":
        solver = cv2.optflow.DualTVL1OpticalFlow_create()
        return lambda head, other: solver.calc(head, other, None)
    if flow == "rlof":
        # OpenCV's dense RLOF takes 3-channel 8-bit images only.
        return lambda head, other: cv2.optflow.calcOpticalFlowDenseRLOF(
            cv2.cvtColor(head, cv2.COLOR_GRAY2BGR), cv2.cvtColor(other, cv2.COLOR_GRAY2BGR), None)
    raise ValueError(f"flow must be one of {FLOW_METHODS} or a callable, got {flow!r}")


def direction_bins(flow: np.ndarray, *, directions: int = 4,
                   direction_rule: Literal["sectors", "megc2020_code"] = "sectors") -> np.ndarray:
    """The direction sector (0 .. directions-1) of every vector of an (H, W, 2) flow; -1 for none.

    "sectors": equal sectors of atan2(v, u) counted from +u (to the right) towards +v (downwards), so
    with 4 directions: 0 right-down, 1 left-down, 2 left-up, 3 right-up. Zero vectors get -1.
    "megc2020_code": MDMD.m's bins of theta = rad2deg(atan(u / v)): [0, 90), [90, 180), [-180, -90),
    [-90, 0); NaN (0/0) in none."""
    u = flow[..., 0].astype(np.float64)
    v = flow[..., 1].astype(np.float64)
    if direction_rule == "sectors":
        angle = np.mod(np.arctan2(v, u), 2 * np.pi)
        bins = np.minimum((angle // (2 * np.pi / directions)).astype(np.int64), directions - 1)
        return np.where((u == 0) & (v == 0), -1, bins)
    if direction_rule == "megc2020_code":
        if directions != 4:
            raise ValueError("direction_rule='megc2020_code' has 4 directions only")
        with np.errstate(divide="ignore", invalid="ignore"):
            theta = np.degrees(np.arctan(u / v))
        bins = np.full(theta.shape, -1, dtype=np.int64)
        for index, (low, high) in enumerate(((0, 90), (90, 180), (-180, -90), (-90, 0))):
            bins[(theta >= low) & (theta < high)] = index
        return bins
    raise ValueError(f"direction_rule must be one of {DIRECTION_RULES}, got {direction_rule!r}")


def block_mdmd(flow_current: np.ndarray, flow_tail: np.ndarray, blocks: int, *, directions: int = 4,
               direction_rule: Literal["sectors", "megc2020_code"] = "sectors") -> np.ndarray:
    """(blocks, blocks) maximal differences d_j from the HF -> CF and HF -> TF flows ((H, W, 2) each).

    Per block: the main direction is the sector with the most HF -> CF vectors; d_j is the mean of the
    largest third of rho^HC - rho^HT over the pixels in it (He et al. 2020, II-B-2; MDMD.m)."""
    if flow_current.shape != flow_tail.shape or flow_current.ndim != 3 or flow_current.shape[2] != 2:
        raise ValueError(f"flows must both be (H, W, 2), got {flow_current.shape} and {flow_tail.shape}")
    height, width = flow_current.shape[0] // blocks, flow_current.shape[1] // blocks
    if blocks < 1 or height < 1 or width < 1:
        raise ValueError(f"cannot cut a {flow_current.shape[:2]} flow into {blocks} x {blocks} blocks")
    bins = direction_bins(flow_current, directions=directions, direction_rule=direction_rule)
    difference = (np.hypot(flow_current[..., 0], flow_current[..., 1]).astype(np.float64)
                  - np.hypot(flow_tail[..., 0], flow_tail[..., 1]).astype(np.float64))
    values = np.zeros((blocks, blocks))
    for row in range(blocks):
        for col in range(blocks):
            window = (slice(row * height, (row + 1) * height), slice(col * width, (col + 1) * width))
            block_bins = bins[window].ravel()
            counts = np.bincount(block_bins[block_bins >= 0], minlength=directions)
            if counts.sum() == 0:
                continue                    # nothing moves from HF to CF here: no main direction
            main = int(np.argmax(counts))   # ties: the first sector, as MATLAB's max
            in_main = difference[window].ravel()[block_bins == main]
            keep = top_count(in_main.size, 1 / 3)
            values[row, col] = np.partition(in_main, in_main.size - keep)[in_main.size - keep:].mean()
    return values


def frame_mdmd(block_values: np.ndarray, top_blocks: float = 1 / 3) -> float:
    """The frame's feature dbar: the mean of the largest round(top_blocks * b^2) block values."""
    flat = np.sort(np.asarray(block_values, dtype=np.float64).ravel())[::-1]
    return float(flat[:top_count(flat.size, top_blocks)].mean())


def check_frame(frame: np.ndarray, shape: tuple[int, ...] | None) -> np.ndarray:
    frame = np.asarray(frame)
    if frame.ndim != 2 or frame.dtype != np.uint8:
        raise ValueError(f"frames must be 2-D grey uint8, got {frame.dtype} of shape {frame.shape}")
    if shape is not None and frame.shape != shape:
        raise ValueError(f"all frames must have one shape: {frame.shape} after {shape}")
    return frame


def frame_value(head: np.ndarray, current: np.ndarray, tail: np.ndarray, flow: FlowFunction, *, blocks: int,
                top_blocks: float, directions: int, direction_rule: Literal["sectors", "megc2020_code"]) -> float:
    """dbar of the current frame from its head and tail frames."""
    flow_current = np.asarray(flow(head, current), dtype=np.float32)
    flow_tail = np.asarray(flow(head, tail), dtype=np.float32)
    values = block_mdmd(flow_current, flow_tail, blocks, directions=directions, direction_rule=direction_rule)
    return frame_mdmd(values, top_blocks)


def mdmd_curve(frames: np.ndarray | Sequence[np.ndarray], k: int, *, blocks: int = 6, top_blocks: float = 1 / 3,
               flow: str | FlowFunction = "dis", directions: int = 4,
               direction_rule: Literal["sectors", "megc2020_code"] = "sectors") -> np.ndarray:
    """dbar^i of every frame of a video in memory (T grey uint8 frames, aligned faces) -> T float64 values,
    NaN where i - k or i + k is outside the video."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    shape = check_frame(frames[0], None).shape if len(frames) else None
    checked = [check_frame(frame, shape) for frame in frames]
    solve = flow_function(flow)
    curve = np.full(len(checked), np.nan)
    for i in range(k, len(checked) - k):
        curve[i] = frame_value(checked[i - k], checked[i], checked[i + k], solve, blocks=blocks,
                               top_blocks=top_blocks, directions=directions, direction_rule=direction_rule)
    return curve


def mdmd_curve_stream(frames: Iterable[np.ndarray], k: int, *, blocks: int = 6, top_blocks: float = 1 / 3,
                      flow: str | FlowFunction = "dis", directions: int = 4,
                      direction_rule: Literal["sectors", "megc2020_code"] = "sectors") -> np.ndarray:
    """`mdmd_curve` reading the frames one by one and holding only 2k + 1 of them (a long high-speed video
    never has to be in memory); the same curve."""
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    solve = flow_function(flow)
    window: deque[np.ndarray] = deque(maxlen=2 * k + 1)
    values: list[float] = []
    count = 0
    shape = None
    for frame in frames:
        frame = check_frame(frame, shape)
        shape = frame.shape
        window.append(frame)
        count += 1
        if len(window) == window.maxlen:    # window[k] is frame count - 1 - k, its head and tail at the ends
            values.append(frame_value(window[0], window[k], window[-1], solve, blocks=blocks,
                                      top_blocks=top_blocks, directions=directions,
                                      direction_rule=direction_rule))
    curve = np.full(count, np.nan)
    curve[k:k + len(values)] = values
    return curve


def relative_difference(curve: np.ndarray, k: int) -> np.ndarray:
    """r^i = dbar^i - (dbar^{i-k+1} + dbar^{i+k-1}) / 2 (He et al. 2020; cmd.m's m = k - 1): how far a frame
    stands above the frames k - 1 before and after it. NaN where a term is missing. Needs k >= 2."""
    if k < 2:
        raise ValueError(f"the relative difference needs k >= 2 (it looks k - 1 frames away), got {k}")
    curve = np.asarray(curve, dtype=np.float64)
    shift = k - 1
    relative = np.full(curve.shape, np.nan)
    if curve.size > 2 * shift:
        relative[shift:-shift] = curve[shift:-shift] - (curve[:-2 * shift] + curve[2 * shift:]) / 2
    return relative


def spot_peaks(curve: np.ndarray, *, k: int, p: float, fps: float, micro_max_seconds: float = 0.5,
               min_seconds: float = 0.0,
               interval: Literal["above_threshold", "peak_window"] = "above_threshold") -> pd.DataFrame:
    """Intervals of movement from a curve (the paper thresholds `relative_difference` of `mdmd_curve`).

    Threshold T = mean + p (max - mean) over the curve's finite values; peaks above T at least k frames
    apart; each grown to the run above T around it ("above_threshold") or to [peak - k, peak + k]
    ("peak_window"), clipped to the curve; overlaps merged; "micro" when at most micro_max_seconds * fps
    frames long, else "macro"; those shorter than min_seconds * fps frames dropped. Columns onset,
    offset (inclusive, 0-based indices into the curve), type and score (the curve's maximum inside)."""
    if not 0.0 <= p <= 1.0:
        raise ValueError(f"p must be in [0, 1], got {p}")
    if k < 1 or fps <= 0:
        raise ValueError(f"k must be >= 1 and fps > 0, got k={k}, fps={fps}")
    if interval not in INTERVAL_RULES:
        raise ValueError(f"interval must be one of {INTERVAL_RULES}, got {interval!r}")
    curve = np.asarray(curve, dtype=np.float64)
    empty = pd.DataFrame({"onset": pd.Series(dtype="int64"), "offset": pd.Series(dtype="int64"),
                          "type": pd.Series(dtype="object"), "score": pd.Series(dtype="float64")})
    finite = np.isfinite(curve)
    if not finite.any():
        return empty
    mean, peak_max = float(curve[finite].mean()), float(curve[finite].max())
    threshold = mean + p * (peak_max - mean)
    above = finite & (curve > threshold)    # strictly above, as cmd.m's C > T: a flat curve spots nothing
    filled = np.where(finite, curve, -np.inf)
    peaks, _ = find_peaks(filled, height=np.nextafter(threshold, np.inf), distance=k)
    spans = []
    for peak in peaks:
        if interval == "above_threshold":
            onset, offset = int(peak), int(peak)
            while onset > 0 and above[onset - 1]:
                onset -= 1
            while offset < curve.size - 1 and above[offset + 1]:
                offset += 1
        else:
            onset, offset = max(0, int(peak) - k), min(curve.size - 1, int(peak) + k)
        spans.append((onset, offset))
    merged: list[list[int]] = []
    for onset, offset in sorted(spans):
        if merged and onset <= merged[-1][1]:   # shares a frame with the previous one
            merged[-1][1] = max(merged[-1][1], offset)
        else:
            merged.append([onset, offset])
    rows = []
    for onset, offset in merged:
        length = offset - onset + 1
        if length < min_seconds * fps - 1e-9:
            continue
        kind = "micro" if length <= micro_max_seconds * fps + 1e-9 else "macro"
        rows.append({"onset": onset, "offset": offset, "type": kind,
                     "score": float(np.nanmax(curve[onset:offset + 1]))})
    if not rows:
        return empty
    return pd.DataFrame(rows, columns=SPOT_COLUMNS).astype({"onset": "int64", "offset": "int64", "score": "float64"})
