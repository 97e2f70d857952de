"""The flow stage: onset -> apex TV-L1 optical flow and optical strain of every aligned clip, the input of
the flow networks (pipeline/baselines/flownets.py), and how well the apex is spotted.

Since 2019 the leading micro-expression recognisers (OFF-ApexNet, STSTNet and their successors) read
two frames of a clip only: the onset (the neutral face) and the apex (the peak of the movement), as
the dense optical flow between them. Their public code ships the flow as images; this stage makes it
from the aligned faces (data/{ds}/aligned.h5), so the whole chain runs from the owners' raw frames.

Per clip:

1. the onset frame (the clip's first) and the apex frame (`apex`: the store's apex, the sheet's where
   it codes one and pipeline/apex.py's estimate where not; `estimated`: the estimate for every clip,
   as a system that must spot the apex itself would), both as 8-bit grey (ITU-R BT.601 luma);
2. the optical flow between them (`method`): TV-L1 (Zach, Pock & Bischof 2007, OpenCV's DualTVL1
   of opencv-contrib, the solver both papers name; the default), or, a hundred times cheaper, OpenCV's
   DIS (Kroeger et al. 2016, `dis_preset`) or Farneback (2003, `farneback`'s settings); at the aligned
   face's size: (u, v) in pixels, u to the right, v downwards, such that apex(x + u, y + v) ~ onset(x, y);
3. the optical strain magnitude of the flow field (Liong et al., "Optical strain based recognition
   of subtle emotions", 2014; STSTNet's third input): with the strain tensor
   eps = 1/2 (grad w + grad w^T) of w = (u, v),

       |eps| = sqrt(u_x^2 + v_y^2 + 1/2 (u_y + v_x)^2)

   (central differences), which is zero for any rigid shift or rotation of the face and grows with
   how much the skin stretches or compresses;
4. u, v and strain resized (area averaging) to each size of `sizes` (28 x 28: STSTNet's and
   OFF-ApexNet's input). Their values stay in pixels of the aligned face: the networks normalise each
   clip's channels themselves.

Outputs:

    data/{ds}/flow.h5            /clips/<id>/flow_<S>: float32 (3, S, S) = u, v, strain (+ the clip's
                                 subject, label, onset, apex, offset, apex_source, fps as attributes),
                                 with provenance (pipeline/artifacts.py)
    data/{ds}/flow_qc/<id>.png   the onset face with the flow as arrows, the flow as a colour wheel
                                 (hue: direction, brightness: magnitude) and the strain map
    data/{ds}/apex_spotting.csv  per clip: the estimated apex, the coded one where the sheet has one,
                                 and their distance in frames and milliseconds

The apex estimate uses no label, so it and the flow are the same in every fold; no fold, label or
test clip is read here.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import cv2
import h5py
import numpy as np
import pandas as pd
from tqdm import tqdm

from pipeline.apex import estimate_apex
from pipeline.artifacts import (
    atomic_directory,
    atomic_output,
    attr_value,
    open_h5_for_write,
    provenance,
    write_array,
    write_provenance,
)
from pipeline.errors import BadInputError
from pipeline.imageio import write_rgb

APEX_CHOICES = ("store", "estimated")
FLOW_METHODS = ("tvl1", "dis", "farneback")
# Farneback's settings where params give none: OpenCV's documented example (pyramid of 3 levels halving,
# 15-pixel windows, 3 iterations, 5-pixel polynomial neighbourhood of sigma 1.2).
FARNEBACK_DEFAULTS = {"pyr_scale": 0.5, "levels": 3, "winsize": 15, "iterations": 3, "poly_n": 5, "poly_sigma": 1.2}
DIS_PRESETS = {"ultrafast": 0, "fast": 1, "medium": 2}     # cv2.DISOPTICAL_FLOW_PRESET_*
COPIED_ATTRS = ("subject", "emotion", "label", "label_index", "onset", "offset", "fps", "source")   # source: composites
SPOTTING_COLUMNS = ["clip_id", "subject", "fps", "onset", "offset", "apex_coded", "apex_estimated",
                    "apex_used", "apex_source", "error_frames", "error_ms"]


# --- flow and strain on arrays -------------------------------------------------------------------------

def tvl1_solver(*, tau: float, data_weight: float, theta: float, scales: int, warps: int, epsilon: float,
                inner_iterations: int, outer_iterations: int, scale_step: float, median_filtering: int) -> Any:
    """OpenCV's Dual TV-L1 solver with these settings (data_weight is TV-L1's lambda)."""
    if not hasattr(cv2, "optflow"):
        raise RuntimeError("OpenCV's optflow module is missing: merflow needs opencv-contrib-python-headless "
                           "(uninstall opencv-python-headless, which shadows it)")
    return cv2.optflow.DualTVL1OpticalFlow_create(
        tau=tau, lambda_=data_weight, theta=theta, nscales=scales, warps=warps, epsilon=epsilon,
        innnerIterations=inner_iterations, outerIterations=outer_iterations, scaleStep=scale_step, gamma=0.0,
        medianFiltering=median_filtering, useInitialFlow=False)


def grey_uint8(frame: np.ndarray) -> np.ndarray:
    """8-bit luma of an RGB frame (a grey one is returned as it is)."""
    frame = np.asarray(frame)
    if frame.ndim == 2:
        return frame.astype(np.uint8)
    return cv2.cvtColor(frame.astype(np.uint8), cv2.COLOR_RGB2GRAY)


def onset_apex_flow(onset: np.ndarray, apex: np.ndarray, solver: Any) -> np.ndarray:
    """float32 (H, W, 2) flow (u right, v down, in pixels) from the onset frame to the apex frame."""
    return solver.calc(grey_uint8(onset), grey_uint8(apex), None).astype(np.float32)


class FarnebackSolver:
    """OpenCV's Farneback dense flow with fixed settings, called like the other solvers (`calc`)."""

    def __init__(self, *, pyr_scale: float, levels: int, winsize: int, iterations: int, poly_n: int,
                 poly_sigma: float):
        self.settings = (pyr_scale, levels, winsize, iterations, poly_n, poly_sigma, 0)

    def calc(self, onset: np.ndarray, apex: np.ndarray, flow: Any) -> np.ndarray:
        return cv2.calcOpticalFlowFarneback(onset, apex, flow, *self.settings)


def flow_solver(method: str, *, dis_preset: str, farneback: dict[str, Any], **tvl1: Any) -> Any:
    """The solver of `method` (FLOW_METHODS): OpenCV's TV-L1 with `tvl1`'s settings, DIS with a preset, or
    Farneback with its settings; each has calc(onset_grey, apex_grey, None) -> (H, W, 2) flow."""
    if method == "tvl1":
        return tvl1_solver(**tvl1)
    if method == "dis":
        return cv2.DISOpticalFlow_create(DIS_PRESETS[dis_preset])
    if method == "farneback":
        return FarnebackSolver(**farneback)
    raise ValueError(f"flow.method must be one of {FLOW_METHODS}, got {method!r}")


def optical_strain(flow: np.ndarray) -> np.ndarray:
    """Magnitude of the strain tensor of an (H, W, 2) flow field: sqrt(u_x^2 + v_y^2 + (u_y + v_x)^2 / 2)."""
    u, v = flow[..., 0].astype(np.float64), flow[..., 1].astype(np.float64)
    u_y, u_x = np.gradient(u)
    v_y, v_x = np.gradient(v)
    return np.sqrt(u_x ** 2 + v_y ** 2 + 0.5 * (u_y + v_x) ** 2).astype(np.float32)


def flow_channels(flow: np.ndarray, size: int) -> np.ndarray:
    """float32 (3, size, size): u, v and strain of the flow, each resized by area averaging."""
    channels = [flow[..., 0], flow[..., 1], optical_strain(flow)]
    return np.stack([cv2.resize(np.ascontiguousarray(c), (size, size), interpolation=cv2.INTER_AREA)
                     for c in channels]).astype(np.float32)


# --- QC images -----------------------------------------------------------------------------------------

def flow_colour(flow: np.ndarray, max_magnitude: float | None = None) -> np.ndarray:
    """uint8 RGB colour-wheel picture of a flow field: hue is the direction (Middlebury's convention:
    right red, down yellow-green...), brightness the magnitude relative to max_magnitude (the field's
    largest by default)."""
    u, v = flow[..., 0], flow[..., 1]
    magnitude = np.hypot(u, v)
    top = float(max_magnitude if max_magnitude is not None else magnitude.max())
    angle = (np.degrees(np.arctan2(v, u)) % 360) / 2                    # OpenCV's hue runs 0..180
    value = np.clip(magnitude / top, 0, 1) * 255 if top > 0 else np.zeros_like(magnitude)
    hsv = np.stack([angle, np.full_like(angle, 255), value], axis=-1).astype(np.uint8)
    return cv2.cvtColor(hsv, cv2.COLOR_HSV2RGB)


def colour_wheel(size: int) -> np.ndarray:
    """The legend of `flow_colour`: a disc whose colour at each point is that of a flow towards it."""
    y, x = np.mgrid[:size, :size].astype(np.float32) - (size - 1) / 2
    flow = np.stack([x, y], axis=-1) / ((size - 1) / 2)
    wheel = flow_colour(flow, max_magnitude=1.0)
    wheel[np.hypot(x, y) > (size - 1) / 2] = 255
    return wheel


def flow_qc_image(clip_id: str, onset: np.ndarray, flow: np.ndarray, apex_index: int, *, step: int = 12,
                  zoom: int = 2) -> np.ndarray:
    """uint8 RGB audit image: the onset face with the flow as arrows (lengthened so that the largest
    is `step` pixels long), the flow as a colour wheel, the strain map, and a caption."""
    h, w = flow.shape[:2]
    magnitude = np.hypot(flow[..., 0], flow[..., 1])
    top = float(magnitude.max())
    gain = step / top if top > 0 else 0.0
    face = cv2.cvtColor(grey_uint8(onset), cv2.COLOR_GRAY2RGB)
    face = cv2.resize(face, (w * zoom, h * zoom), interpolation=cv2.INTER_LINEAR)
    for y in range(step // 2, h, step):
        for x in range(step // 2, w, step):
            du, dv = flow[y, x] * gain
            if abs(du) + abs(dv) < 0.5:
                continue
            start = (int(x * zoom), int(y * zoom))
            end = (int(round((x + du) * zoom)), int(round((y + dv) * zoom)))
            cv2.arrowedLine(face, start, end, (255, 64, 0), 1, cv2.LINE_AA, tipLength=0.3)
    colour = cv2.resize(flow_colour(flow), (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST)
    legend = colour_wheel(max(24, h * zoom // 5))
    colour[:legend.shape[0], -legend.shape[1]:] = legend
    strain = optical_strain(flow)
    strain_top = float(strain.max())
    strain_8 = (np.clip(strain / strain_top, 0, 1) * 255).astype(np.uint8) if strain_top > 0 else \
        np.zeros(strain.shape, np.uint8)
    strain_rgb = cv2.cvtColor(cv2.applyColorMap(strain_8, cv2.COLORMAP_INFERNO), cv2.COLOR_BGR2RGB)
    strain_rgb = cv2.resize(strain_rgb, (w * zoom, h * zoom), interpolation=cv2.INTER_NEAREST)
    panels = np.concatenate([face, colour, strain_rgb], axis=1)
    caption = np.full((20, panels.shape[1], 3), 255, np.uint8)
    text = (f"{clip_id}  onset -> apex (frame {apex_index})  |  arrows x{gain:.1f}, max |flow| {top:.2f} px  |  "
            f"direction (wheel)  |  strain (max {strain_top:.3f})")
    cv2.putText(caption, text, (3, 14), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
    return np.concatenate([caption, panels], axis=0)


# --- apex spotting -------------------------------------------------------------------------------------

def spotting_row(clip_id: str, attrs: dict, estimated_index: int, used_index: int) -> dict:
    """One row of apex_spotting.csv: the estimated apex against the coded one (frame numbers)."""
    onset, fps = int(attrs["onset"]), float(attrs.get("fps", 0) or 0)
    coded = int(attrs["apex"]) if attrs.get("apex_source", "sheet") == "sheet" and "apex" in attrs else None
    estimated = onset + estimated_index
    error = None if coded is None else estimated - coded
    return {"clip_id": clip_id, "subject": attrs.get("subject", ""), "fps": fps or None, "onset": onset,
            "offset": int(attrs.get("offset", onset + used_index)), "apex_coded": coded,
            "apex_estimated": estimated, "apex_used": onset + used_index,
            "apex_source": attrs.get("apex_source", "sheet"), "error_frames": error,
            "error_ms": None if error is None or not fps else round(1000.0 * error / fps, 3)}


def spotting_summary(table: pd.DataFrame) -> dict[str, float | int | None]:
    """How good the apex estimate is on the clips with a coded apex: their number, the mean and median
    absolute error (frames and ms) and the share within 1, 3 and 5 frames."""
    errors = pd.to_numeric(table["error_frames"], errors="coerce").dropna().abs()
    ms = pd.to_numeric(table["error_ms"], errors="coerce").dropna().abs()
    if errors.empty:
        return {"coded": 0}
    summary: dict[str, float | int | None] = {
        "coded": int(len(errors)), "mean_abs_frames": round(float(errors.mean()), 3),
        "median_abs_frames": round(float(errors.median()), 3),
        "mean_abs_ms": round(float(ms.mean()), 3) if len(ms) else None}
    for within in (1, 3, 5):
        summary[f"within_{within}"] = round(float((errors <= within).mean()), 4)
    return summary


# --- the stage -----------------------------------------------------------------------------------------

def flow_stage(aligned_h5: Path, out_h5: Path, qc_dir: Path, apex_csv: Path, *, sizes: Sequence[int], apex: str,
               tau: float, data_weight: float, theta: float, scales: int, warps: int, epsilon: float,
               inner_iterations: int, outer_iterations: int, scale_step: float, median_filtering: int,
               method: str = "tvl1", dis_preset: str = "medium", farneback: dict[str, Any] | None = None) -> None:
    """Onset -> apex flow (`method`) and strain of every clip of the aligned store, at each of `sizes`, with a
    QC image per clip and the apex spotting table (module docstring). Bad input (a store without clips,
    a clip of fewer than 2 frames or without its onset attribute) stops the stage with BadInputError
    naming the clip and the file, and nothing is written."""
    if apex not in APEX_CHOICES:
        raise ValueError(f"flow.apex must be one of {APEX_CHOICES}, got {apex!r}")
    solver_params = dict(tau=tau, data_weight=data_weight, theta=theta, scales=scales, warps=warps, epsilon=epsilon,
                         inner_iterations=inner_iterations, outer_iterations=outer_iterations, scale_step=scale_step,
                         median_filtering=median_filtering)
    farneback = dict(farneback or FARNEBACK_DEFAULTS)
    params = dict(sizes=[int(s) for s in sizes], apex=apex, method=method, dis_preset=dis_preset,
                  farneback=farneback, **solver_params)
    solver = flow_solver(method, dis_preset=dis_preset, farneback=farneback, **solver_params)
    rows = []
    with (h5py.File(aligned_h5, "r") as source, atomic_output(out_h5) as tmp_h5, atomic_directory(qc_dir) as tmp_qc,
          open_h5_for_write(tmp_h5) as h5):
        if "clips" not in source or not len(source["clips"]):
            raise BadInputError("(all)", aligned_h5, "the aligned store has no clips")
        write_provenance(h5, provenance("flow", params, {"aligned": aligned_h5}))
        clips = h5.require_group("clips")
        ds = Path(aligned_h5).parent.name
        for clip_id, group in tqdm(source["clips"].items(), total=len(source["clips"]), desc=f"flow {ds}",
                                   unit="clip"):
            attrs = {key: attr_value(value) for key, value in group.attrs.items()}
            frames = group["frames"][()] if "frames" in group else None
            if frames is None or frames.ndim not in (3, 4) or len(frames) < 2 or frames.dtype != np.uint8:
                shape = None if frames is None else f"{frames.dtype} {frames.shape}"
                raise BadInputError(clip_id, aligned_h5, f"needs uint8 frames (T >= 2, H, W[, 3]), got {shape}")
            if "onset" not in attrs:
                raise BadInputError(clip_id, aligned_h5, "has no onset attribute (not an aligned store?)")
            fps = float(attrs.get("fps") or 0) or 100.0
            estimated = estimate_apex(frames, fps)
            stored = int(attrs["apex"]) - int(attrs["onset"]) if "apex" in attrs else None
            used = estimated if apex == "estimated" or stored is None else int(np.clip(stored, 0, len(frames) - 1))
            if used == 0:                       # onset -> onset is no motion: take the next frame
                used = 1
            flow = onset_apex_flow(frames[0], frames[used], solver)
            if not np.isfinite(flow).all():
                raise BadInputError(clip_id, aligned_h5, f"the {method} flow is not finite")
            out = clips.create_group(clip_id, track_order=True)
            for size in params["sizes"]:
                write_array(out, f"flow_{size}", flow_channels(flow, size))
            for key in COPIED_ATTRS:
                if key in attrs:
                    out.attrs[key] = attrs[key]
            out.attrs["apex"] = int(attrs["onset"]) + used
            out.attrs["apex_source"] = "estimated" if used != stored else attrs.get("apex_source", "sheet")
            rows.append(spotting_row(clip_id, attrs, estimated, used))
            write_rgb(tmp_qc / f"{clip_id}.png", flow_qc_image(clip_id, frames[0], flow, used))
    table = pd.DataFrame(rows, columns=SPOTTING_COLUMNS)
    with atomic_output(apex_csv) as tmp:
        table.to_csv(tmp, index=False)
    summary = spotting_summary(table)
    print(f"apex spotting on {os.fspath(aligned_h5)}: {summary}")


def read_flow(flow_h5: str | os.PathLike, size: int) -> tuple[np.ndarray, pd.DataFrame]:
    """(n_clips, 3, size, size) u, v, strain of every clip of a flow store, and the clips' ids, subjects and
    labels (and sources, for a composite), in file order."""
    arrays, table = [], []
    with h5py.File(flow_h5, "r") as h5:
        if "clips" not in h5 or not len(h5["clips"]):
            raise BadInputError("(all)", flow_h5, "the flow store has no clips")
        for clip_id, group in h5["clips"].items():
            name = f"flow_{size}"
            if name not in group:
                raise BadInputError(clip_id, flow_h5, f"has no {size} x {size} flow ({', '.join(group)}): add {size} "
                                                      "to flow.sizes")
            arrays.append(group[name][()])
            row = {"clip_id": clip_id, "subject": str(attr_value(group.attrs["subject"])),
                   "label": str(attr_value(group.attrs["label"]))}
            if "source" in group.attrs:
                row["source"] = str(attr_value(group.attrs["source"]))
            table.append(row)
    return np.stack(arrays).astype(np.float32), pd.DataFrame(table)
