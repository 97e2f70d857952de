"""Eulerian video magnification (EVM), as MIT's `amplify_spatial_lpyr_temporal_iir.m`.

The paper (Xia et al., Sec. II-B and IV-A) magnifies every aligned clip with EVM (Wu et al., SIGGRAPH
2012): a Laplacian pyramid per frame, the temporal band-pass "difference of two first-order IIR
low-passes" (r1 = 0.4, r2 = 0.05) on every pyramid coefficient, a per-level gain that follows the
bound of Wu et al.'s Fig. 6 (alpha = 10, lambda_c = 16), and the amplified band added back to the
frame in YIQ with the chrominance attenuated. This module reproduces the MIT MATLAB code step by step:

* colour: `rgb2ntsc` on frames in [0, 1]; back to RGB with the exact inverse matrix (see `YIQ_TO_RGB`);
* pyramid: matlabPyrTools' `buildLpyr(frame, 'auto')`, i.e. `1 + maxPyrHt` levels, the 5-tap binomial
  filter `binom5`, 'reflect1' borders, samples kept at even indices (MATLAB's start = [1 1]);
* temporal filter: both low-passes start from the FIRST frame's pyramid, so the first frame comes out
  unchanged and there is no start-up transient;
* gains: lambda = sqrt(H^2 + W^2) / 3 at the coarsest level (the low-pass residual), halved per finer
  level; alpha_l = exaggeration * (lambda / delta / 8 - 1), capped at alpha, delta = lambda_c / 8 /
  (1 + alpha); the finest level and the residual get no gain;
* the reconstructed band, I and Q scaled by chrom_attenuation, is added to EVERY frame; RGB is clipped
  to [0, 255] grey levels and rounded (OpenCV's saturate_cast: MATLAB's im2uint8 except at exact
  .5 ties, which go to even).

Everything between the colour conversion and the final clip is linear and the same on every channel,
which the implementation uses to be fast without changing the result (float32 rounding aside):
only the amplified levels are built and filtered (the finest level and the residual have zero
gain); the pyramid steps are OpenCV's pyrDown / pyrUp (which compute corrDn / upConv exactly, see
`reduce` and `expand`); and "to YIQ, attenuate I and Q, back to RGB" is one 3x3 matrix applied to the
level-1 Gaussian image (a quarter of the pixels) instead of two full-size conversions, so the band
comes out in RGB and is added to the RGB frame (equal to ntsc2rgb(rgb2ntsc(frame) + band) with an
exact inverse, and exact for a static clip). Frames stream in chunks of CHUNK_FRAMES: each frame's
pyramid is built into one flat float32 row (all levels), the two low-passes run over the rows in
time order (one fused OpenCV pass per low-pass and frame, over all levels at once), and each row is
collapsed and added to its frame; memory holds one chunk, whatever the clip length. Analysis and
synthesis of a chunk's frames are independent, so `threads` > 1 runs them on a thread pool (OpenCV
releases the GIL); on the 2-core machine this pays for large frames only (bench/README.md). (The
recursion over a chunk can also be written as one matrix product; measured, that was slower: OpenBLAS's
threads stall on a busy 2-core machine, and on one thread it is no faster than the fused passes.)
"""

from __future__ import annotations

import contextlib
import os
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.artifacts import (
    atomic_directory,
    atomic_output,
    clip_ids,
    iter_clips,
    open_h5_for_write,
    provenance,
    write_clip,
    write_provenance,
)
from pipeline.errors import BadInputError
from pipeline.imageio import write_rgb
from pipeline.pyramid import RGB_TO_YIQ, YIQ_TO_RGB, check_frames, level_gains, level_shapes

MOUTH_ROW_FRACTION = 0.75      # aligned faces: mouth row, for the QC time slices
CHUNK_FRAMES = 16              # frames analysed / synthesised per step (memory: this many frames)
QC_MIN_HEIGHT_PX = 256         # QC images are enlarged (nearest neighbour) to about this height


# ---------------------------------------------------------------------------------------------------
# matlabPyrTools' corrDn / upConv with binom5 and 'reflect1'


def _take(array: np.ndarray, axis: int, start: int | None, stop: int | None, step: int = 1) -> np.ndarray:
    """array[start:stop:step] along `axis` (a view)."""
    key = [slice(None)] * array.ndim
    key[axis] = slice(start, stop, step)
    return array[tuple(key)]


def upsample(samples: np.ndarray, length: int, axis: int) -> np.ndarray:
    """upConv(samples, binom5, 'reflect1', step 2 along `axis`, start 1, stop `length`): put the samples
    at the even indices of `length` zeros, mirror that about its edge samples and convolve with
    [1 4 6 4 1] / 8. Written polyphase: even outputs (u[m-1] + 6 u[m] + u[m+1]) / 8, odd outputs
    (u[m] + u[m+1]) / 2, where the mirror gives u[-1] = u[1] and, past the end, u[m] again when
    `length` is even and u[m-1] when it is odd."""
    m = samples.shape[axis]
    if m != (length + 1) // 2 or m < 2:
        raise ValueError(f"cannot upsample {m} samples to {length}")
    past_end = _take(samples, axis, m - 1, m) if length % 2 == 0 else _take(samples, axis, m - 2, m - 1)
    u = np.concatenate([_take(samples, axis, 1, 2), samples, past_end], axis=axis)   # u[-1] .. u[m]
    even = 0.125 * (_take(u, axis, 0, m) + _take(u, axis, 2, m + 2)) + 0.75 * _take(u, axis, 1, m + 1)
    odd = 0.5 * (_take(u, axis, 1, 1 + length // 2) + _take(u, axis, 2, 2 + length // 2))
    if length == 5:
        # matlabPyrTools' reflect1 EXPAND folds only one edge when the filter overhangs both: the last
        # of 5 outputs misses the mirrored copy of u[1] ([0 1 6] / 8 instead of [0 2 6] / 8).
        _take(even, axis, 2, 3)[...] -= 0.125 * _take(samples, axis, 1, 2)
    shape = list(samples.shape)
    shape[axis] = length
    out = np.empty(shape, dtype=even.dtype)
    _take(out, axis, 0, None, 2)[...] = even
    _take(out, axis, 1, None, 2)[...] = odd
    return out


def reduce(image: np.ndarray) -> np.ndarray:
    """One Gaussian pyramid step of an (H, W, 3) image to (ceil(H/2), ceil(W/2), 3), as buildLpyr's two
    corrDn: correlate with [1 4 6 4 1] / 16 along rows and columns on the image mirrored about its
    edge samples, keep the even samples. OpenCV's pyrDown with BORDER_REFLECT_101 is exactly that."""
    height, width = image.shape[:2]
    return cv2.pyrDown(image, dstsize=((width + 1) // 2, (height + 1) // 2), borderType=cv2.BORDER_REFLECT_101)


def expand(image: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """The inverse step of an (h, w, 3) image to `shape`, as buildLpyr's and reconLpyr's two upConv.

    OpenCV's pyrUp computes the same except the last sample of an odd length (it mirrors the coarse
    image, not the zero-filled one: (u[m-2] + 7 u[m-1]) / 8 where upConv has (2 u[m-2] + 6 u[m-1]) / 8),
    so for an odd side that last column / row is recomputed with `upsample`."""
    height, width = shape
    out = cv2.pyrUp(image, dstsize=(width, height), borderType=cv2.BORDER_REFLECT_101)
    if width % 2:
        out[:, -1] = upsample(_last_output(image, width, axis=1), height, axis=0)
    if height % 2:
        out[-1, :] = upsample(_last_output(image, height, axis=0), width, axis=0)
    return out


def _last_output(image: np.ndarray, length: int, axis: int) -> np.ndarray:
    """upConv's last output along `axis` for an odd `length`, before filtering the other axis."""
    before_last, last = np.take(image, -2, axis=axis), np.take(image, -1, axis=axis)
    mirrored = 0.125 if length == 5 else 0.25    # the length-5 quirk of `upsample`
    return mirrored * before_last + 0.75 * last


# ---------------------------------------------------------------------------------------------------
# EVM on a clip


def magnify(frames: np.ndarray, *, alpha: float = 10, lambda_c: float = 16, r1: float = 0.4,
            r2: float = 0.05, chrom_attenuation: float = 0.1, exaggeration: float = 2,
            device: str | None = None, threads: int = 1) -> np.ndarray:
    """Magnify a uint8 (T, H, W, 3) RGB clip as amplify_spatial_lpyr_temporal_iir.m; same shape out.

    `device` None runs the NumPy/OpenCV code below (the fastest on a CPU); a torch device ("cuda",
    "cuda:1", "cpu") runs `pipeline.evm_torch.magnify_torch` there, the same to within 1 grey level.
    `threads` > 1 analyses and synthesises frames on that many threads; the result is the same."""
    if device is not None:
        from pipeline.evm_torch import magnify_torch  # torch is imported only when asked for
        return magnify_torch(frames, alpha=alpha, lambda_c=lambda_c, r1=r1, r2=r2,
                             chrom_attenuation=chrom_attenuation, exaggeration=exaggeration, device=device)
    check_frames(frames)
    n_frames, height, width, _ = frames.shape
    if threads < 1:
        raise ValueError(f"threads must be at least 1, got {threads}")
    shapes = level_shapes(height, width)
    first, last = 1, len(shapes) - 2     # the levels with a gain: all but the finest and the residual
    if last < first:                     # too small for a band between the finest level and residual
        return frames.copy()
    gains = level_gains(height, width, alpha=alpha, lambda_c=lambda_c, exaggeration=exaggeration)
    offsets = np.cumsum([0] + [shapes[level][0] * shapes[level][1] * 3 for level in range(first, last + 1)])
    # The band is added in YIQ with I and Q attenuated: as RGB, one 3x3 matrix on the RGB band. Every
    # step between the colour conversions is linear and the same on every channel, so that matrix is
    # applied once, to the level-1 Gaussian image, and the band comes out in RGB grey levels.
    mix = (YIQ_TO_RGB @ np.diag([1.0, chrom_attenuation, chrom_attenuation]) @ RGB_TO_YIQ).astype(np.float32)

    chunk = min(CHUNK_FRAMES, n_frames)
    floats = np.empty((chunk, height, width, 3), np.float32)    # the chunk's frames, in grey levels
    rows = np.empty((chunk, offsets[-1]), np.float32)             # their pyramids (levels first..last)
    out = np.empty_like(frames)
    lowpass1 = lowpass2 = None           # the two low-passes' states, (offsets[-1],) each

    levels = [[rows[t, offsets[i]:offsets[i + 1]].reshape(*shapes[level], 3)      # views: row t, level
               for i, level in enumerate(range(first, last + 1))] for t in range(chunk)]

    def analyse(t: int, start: int) -> None:
        np.copyto(floats[t], frames[start + t])
        laplacian_bands(cv2.transform(reduce(floats[t]), mix), shapes, first, last, levels[t])

    def synthesise(t: int, start: int) -> None:
        motion = collapse(levels[t], shapes, gains, first, last)
        cv2.add(floats[t], motion, dst=out[start + t], dtype=cv2.CV_8U)   # saturated to [0, 255], rounded

    with ThreadPoolExecutor(threads) if threads > 1 else contextlib.nullcontext() as pool:
        for start in range(0, n_frames, chunk):
            n = min(chunk, n_frames - start)
            _for_each(pool, threads, analyse, n, start)
            if lowpass1 is None:         # both low-passes start at the first frame's pyramid
                lowpass1, lowpass2 = rows[0].copy(), rows[0].copy()
            for t in range(n):           # lowpass = (1 - r) lowpass + r pyramid; the band replaces the pyramid
                cv2.addWeighted(lowpass1, 1 - r1, rows[t], r1, 0, dst=lowpass1)
                cv2.addWeighted(lowpass2, 1 - r2, rows[t], r2, 0, dst=lowpass2)
                cv2.subtract(lowpass1, lowpass2, dst=rows[t])
            _for_each(pool, threads, synthesise, n, start)
    return out


def _for_each(pool: ThreadPoolExecutor | None, threads: int, work: Callable[[int, int], None], n: int,
              start: int) -> None:
    """work(t, start) for t in range(n): in order, or in `threads` contiguous runs on the pool."""
    if pool is None:
        for t in range(n):
            work(t, start)
        return
    bounds = np.linspace(0, n, threads + 1).round().astype(int)

    def run(lo: int, hi: int) -> None:
        for t in range(lo, hi):
            work(t, start)

    for future in [pool.submit(run, lo, hi) for lo, hi in zip(bounds[:-1], bounds[1:], strict=True) if hi > lo]:
        future.result()


def laplacian_bands(image: np.ndarray, shapes: list[tuple[int, int]], first: int, last: int,
                    out: list[np.ndarray] | None = None) -> list[np.ndarray]:
    """Laplacian levels first..last (inclusive) of the pyramid whose level-`first` Gaussian image is
    `image`: level l = G_l - expand(G_l+1), G_l+1 = reduce(G_l), as buildLpyr. Written into `out`
    (arrays of the levels' shapes) when given."""
    gaussian = [image]
    for _ in range(first, last + 1):
        gaussian.append(reduce(gaussian[-1]))
    bands = out if out is not None else [None] * (last - first + 1)
    for i, level in enumerate(range(first, last + 1)):
        bands[i] = np.subtract(gaussian[i], expand(gaussian[i + 1], shapes[level]), out=bands[i])
    return bands


def collapse(bands: list[np.ndarray], shapes: list[tuple[int, int]], gains: np.ndarray, first: int,
             last: int) -> np.ndarray:
    """reconLpyr, at full size, of the pyramid whose levels first..last are `bands` times their gains
    and whose other levels are zero."""
    image = bands[-1] * np.float32(gains[last])
    for level in range(last - 1, first - 1, -1):
        image = cv2.scaleAdd(bands[level - first], float(gains[level]), expand(image, shapes[level]))
    for level in range(first - 1, -1, -1):
        image = expand(image, shapes[level])
    return image


def rate_at_fps(rate: float, fps: float, reference_fps: float) -> float:
    """The IIR low-pass rate at `fps` that forgets as fast per second as `rate` does at `reference_fps`.

    A low-pass `lowpass += r (frame - lowpass)` keeps (1 - r) of its state per frame, (1 - r)^fps per
    second; keeping that per-second decay fixes its time constant, and so the band-pass's corners, in
    Hz (the MIT code's r1 = 0.4, r2 = 0.05 at 200 fps: about 1.6-16 Hz)."""
    if fps <= 0 or reference_fps <= 0:
        raise ValueError(f"frame rates must be positive, got fps {fps} and reference_fps {reference_fps}")
    return 1 - (1 - rate) ** (reference_fps / fps)


# ---------------------------------------------------------------------------------------------------
# Stage


def magnify_stage(aligned_h5: Path, out_h5: Path, qc_dir: Path, *, enabled: bool, alpha: float,
                  lambda_c: float, r1: float, r2: float, reference_fps: float, chrom_attenuation: float,
                  exaggeration: float, eye_y: float, device: str = "cpu") -> None:
    """aligned.h5 -> magnified.h5 (same clip-store layout and clip attrs) + one QC strip per clip.

    r1 and r2 hold at `reference_fps`; each clip is filtered with the rates for its own `fps` attr
    (`rate_at_fps`), so the pass band in Hz is the same for every dataset. `device` "cpu" runs the
    NumPy/OpenCV path, any other torch device ("cuda", "cuda:1") the torch path (`magnify`). `eye_y`
    is the align stage's eye row (a fraction of the aligned height), where the QC strip's eyes slice
    is taken. With enabled False the frames are copied unchanged (the no-EVM ablation); the params are
    recorded either way, so the two artifacts differ in provenance."""
    params = {"enabled": enabled, "alpha": alpha, "lambda_c": lambda_c, "r1": r1, "r2": r2,
              "reference_fps": reference_fps, "chrom_attenuation": chrom_attenuation,
              "exaggeration": exaggeration, "eye_y": eye_y, "device": device}
    evm_params = {"alpha": alpha, "lambda_c": lambda_c, "chrom_attenuation": chrom_attenuation,
                  "exaggeration": exaggeration, "device": None if device == "cpu" else device}
    n_clips = len(clip_ids(aligned_h5))
    with atomic_output(out_h5) as tmp_h5, atomic_directory(qc_dir) as tmp_qc:
        with open_h5_for_write(tmp_h5) as h5:
            write_provenance(h5, provenance("magnify", params, {"aligned": aligned_h5}))
            clips = tqdm(iter_clips(aligned_h5), total=n_clips, desc="magnify", unit="clip", file=sys.stderr)
            for clip_id, frames, attrs in clips:
                if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3 or not len(frames):
                    raise BadInputError(clip_id, aligned_h5, f"frames must be uint8 (T, H, W, 3) with T >= 1, "
                                                             f"got {frames.dtype} {frames.shape}")
                apex = apex_index(clip_id, aligned_h5, frames, attrs)
                fps = clip_fps(clip_id, aligned_h5, attrs)
                rates = {"r1": rate_at_fps(r1, fps, reference_fps), "r2": rate_at_fps(r2, fps, reference_fps)}
                try:
                    magnified = magnify(frames, **evm_params, **rates) if enabled else frames
                except ValueError as error:
                    raise BadInputError(clip_id, aligned_h5, str(error)) from error
                write_clip(h5, clip_id, magnified, attrs)
                write_rgb(tmp_qc / f"{clip_id}.png", qc_strip(frames, magnified, apex, eye_y=eye_y))


def apex_index(clip_id: str, path: os.PathLike, frames: np.ndarray, attrs: dict) -> int:
    """Index of the apex frame in the clip (clip frames start at the onset)."""
    if "apex" not in attrs or "onset" not in attrs:
        raise BadInputError(clip_id, path, "clip has no onset/apex attributes")
    index = int(attrs["apex"]) - int(attrs["onset"])
    if not 0 <= index < len(frames):
        raise BadInputError(clip_id, path, f"apex {attrs['apex']} is outside the clip's frames "
                                           f"{attrs['onset']}..{int(attrs['onset']) + len(frames) - 1}")
    return index


def clip_fps(clip_id: str, path: os.PathLike, attrs: dict) -> float:
    """The clip's frame rate (the `fps` attr every clip store carries)."""
    try:
        fps = float(attrs["fps"])
    except (KeyError, TypeError, ValueError):
        raise BadInputError(clip_id, path, f"clip has no usable fps attribute (got {attrs.get('fps')!r})") from None
    if not fps > 0:
        raise BadInputError(clip_id, path, f"fps must be positive, got {fps:g}")
    return fps


def qc_strip(original: np.ndarray, magnified: np.ndarray, apex: int, *, eye_y: float) -> np.ndarray:
    """What EVM did to one clip, as one RGB image. Columns: before | after | difference (4x, mid-grey =
    none). Top row: the apex frame (eyes and mouth rows ticked at the sides); below: the x-t slices
    through the eyes row (`eye_y` of the height, the align stage's) and the mouth row (time runs down,
    the apex ticked at the left). Everything is enlarged with nearest-neighbour so single pixels stay
    visible."""
    height = original.shape[1]
    scale = max(1, round(QC_MIN_HEIGHT_PX / height))
    rows = {"eyes": min(height - 1, round(eye_y * height)),
            "mouth": min(height - 1, round(MOUTH_ROW_FRACTION * height))}
    colour = {"eyes": (0, 255, 255), "mouth": (255, 0, 255)}
    difference = np.clip(128 + 4 * (magnified.astype(np.int16) - original), 0, 255).astype(np.uint8)

    def enlarge(image: np.ndarray) -> np.ndarray:
        return np.repeat(np.repeat(image, scale, axis=0), scale, axis=1)

    def apex_view(clip: np.ndarray) -> np.ndarray:
        view = enlarge(clip[apex])
        for name, row in rows.items():   # ticks mid-pixel at both sides, the face itself unmarked
            y = row * scale + scale // 2
            view[y, : 2 * scale] = view[y, -2 * scale:] = colour[name]
        return view

    def slice_view(clip: np.ndarray, name: str) -> np.ndarray:
        view = enlarge(clip[:, rows[name]])
        view[apex * scale + scale // 2, : 2 * scale] = colour[name]
        return view

    clips = {"before": original, "after": magnified, "difference x4": difference}
    panel_rows = [[labelled(apex_view(clip), f"apex {what}") for what, clip in clips.items()]]
    for name in rows:
        panel_rows.append([labelled(slice_view(clip, name), f"{name} x-t {what}") for what, clip in clips.items()])
    return _grid(panel_rows, gap=4)


def _grid(panel_rows: list[list[np.ndarray]], gap: int) -> np.ndarray:
    """Panels side by side, rows of them one under the other, black gaps between."""
    lines = []
    for panels in panel_rows:
        spacer = np.zeros((panels[0].shape[0], gap, 3), np.uint8)
        lines.append(np.concatenate([part for panel in panels for part in (panel, spacer)][:-1], axis=1))
    spacer = np.zeros((gap, lines[0].shape[1], 3), np.uint8)
    return np.concatenate([part for line in lines for part in (line, spacer)][:-1], axis=0)


def labelled(image: np.ndarray, text: str) -> np.ndarray:
    """The image under a black caption bar."""
    bar = np.zeros((14, image.shape[1], 3), np.uint8)
    cv2.putText(bar, text, (2, 10), cv2.FONT_HERSHEY_SIMPLEX, 0.33, (255, 255, 255), 1, cv2.LINE_AA)
    return np.concatenate([bar, image], axis=0)
