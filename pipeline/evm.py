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
  to [0, 1] and rounded as `im2uint8`.

Everything between the colour conversion and the final clip is linear, which the implementation uses
to be fast without changing the result: only the amplified levels are built and filtered (the finest
level and the residual have zero gain), the pyramid steps are OpenCV's pyrDown / pyrUp (which compute
corrDn / upConv exactly, see `reduce` and `expand`), and the band is converted to RGB and added to the
RGB input (equal to ntsc2rgb(rgb2ntsc(frame) + band) with an exact inverse, and exact for a static
clip). Frames are processed one at a time, as the MIT loop does: arrays stay cache-sized and memory
holds one frame's pyramid and the two low-pass states.
"""

from __future__ import annotations

import contextlib
import math
import os
import shutil
import sys
import tempfile
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np
from tqdm import tqdm

from pipeline.artifacts import (
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

# MATLAB's rgb2ntsc matrix. MATLAB's ntsc2rgb uses a 3-decimal rounding of its inverse, which does not
# give a static frame back exactly (up to 0.3 grey levels off); we use the exact inverse.
RGB_TO_YIQ = np.array([[0.299, 0.587, 0.114],
                       [0.596, -0.274, -0.322],
                       [0.211, -0.523, 0.312]])
YIQ_TO_RGB = np.linalg.inv(RGB_TO_YIQ)

# matlabPyrTools' namedFilter('binom5') is sqrt(2) * [1 4 6 4 1] / 16 for both reduce and expand. We
# reduce with [1 4 6 4 1] / 16 and expand with [1 4 6 4 1] / 8 instead: the same products
# (sqrt(2) * sqrt(2) = 1 * 2), so the finest band and the reconstruction are identical, and level l
# is MATLAB's divided by 2^(l-1), which the linear filtering and reconstruction undo exactly.
BINOMIAL_TAPS = 5

EYES_ROW_FRACTION = 0.36       # aligned faces: eye centres' row (params.yaml align.eye_y)
MOUTH_ROW_FRACTION = 0.75      # aligned faces: mouth row, for the QC time slices
QC_MIN_HEIGHT_PX = 256         # QC images are enlarged (nearest neighbour) to about this height


# ---------------------------------------------------------------------------------------------------
# Pyramid geometry and gains


def max_pyramid_height(height: int, width: int, filter_taps: int = BINOMIAL_TAPS) -> int:
    """matlabPyrTools' maxPyrHt for a 2-D image: how often it can be halved (floor) before a side
    becomes shorter than the filter."""
    levels = 0
    while height >= filter_taps and width >= filter_taps:
        levels += 1
        height, width = height // 2, width // 2
    return levels


def level_shapes(height: int, width: int) -> list[tuple[int, int]]:
    """Shapes of the Laplacian pyramid's levels, finest first, the low-pass residual last, as
    buildLpyr(frame, 'auto') makes them (each reduce keeps ceil(n / 2) samples)."""
    shapes = [(height, width)]
    for _ in range(max_pyramid_height(height, width)):
        height, width = (height + 1) // 2, (width + 1) // 2
        shapes.append((height, width))
    return shapes


def level_gains(height: int, width: int, *, alpha: float, lambda_c: float,
                exaggeration: float) -> np.ndarray:
    """Magnification factor of every pyramid level (finest first), as the MIT code's loop over levels:
    the representative wavelength starts at the frame diagonal / 3 at the coarsest level and halves
    per finer level; the finest level and the residual are not amplified (Wu et al., Sec. 3.2)."""
    n_levels = len(level_shapes(height, width))
    delta = lambda_c / 8 / (1 + alpha)
    wavelength = math.hypot(height, width) / 3        # "3 is experimental constant" (MIT)
    gains = np.zeros(n_levels)
    for level in reversed(range(n_levels)):
        level_alpha = exaggeration * (wavelength / delta / 8 - 1)
        if level in (0, n_levels - 1):
            gains[level] = 0.0
        else:
            gains[level] = alpha if level_alpha > alpha else level_alpha
        wavelength /= 2
    return gains


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
            device: str | None = None) -> np.ndarray:
    """Magnify a uint8 (T, H, W, 3) RGB clip as amplify_spatial_lpyr_temporal_iir.m; same shape out.

    `device` None runs the NumPy/OpenCV code below (the fastest on a CPU); a torch device ("cuda",
    "cuda:1", "cpu") runs `pipeline.evm_torch.magnify_torch` there, the same to within 1 grey level."""
    if device is not None:
        from pipeline.evm_torch import magnify_torch  # torch is imported only when asked for
        return magnify_torch(frames, alpha=alpha, lambda_c=lambda_c, r1=r1, r2=r2,
                             chrom_attenuation=chrom_attenuation, exaggeration=exaggeration, device=device)
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    n_frames, height, width, _ = frames.shape
    if n_frames == 0 or height < 2 or width < 2:
        raise ValueError(f"need at least one frame of 2x2 pixels, got {frames.shape}")
    shapes = level_shapes(height, width)
    first, last = 1, len(shapes) - 2     # the levels with a gain: all but the finest and the residual
    if last < first:                     # too small for a band between the finest level and residual
        return frames.copy()
    gains = level_gains(height, width, alpha=alpha, lambda_c=lambda_c, exaggeration=exaggeration)
    sizes = [shapes[level][0] * shapes[level][1] * 3 for level in range(first, last + 1)]
    gain_per_value = np.repeat(gains[first:last + 1], sizes).astype(np.float32)
    split_at = np.cumsum(sizes)[:-1]
    # Work in grey levels (MATLAB's [0, 1] times 255, the same maths): the input stays exact integers.
    to_yiq = (RGB_TO_YIQ / 255).astype(np.float32)
    # The band is added in YIQ with I and Q attenuated; as RGB that is one 3x3 matrix.
    band_to_rgb = (255 * YIQ_TO_RGB @ np.diag([1.0, chrom_attenuation, chrom_attenuation])).astype(np.float32)

    out = np.empty_like(frames)
    lowpass1 = lowpass2 = None
    for t in range(n_frames):            # frame by frame: cache-sized arrays, memory of one pyramid
        rgb = frames[t].astype(np.float32)
        pyramid = np.concatenate([band.ravel() for band in
                                  laplacian_bands(cv2.transform(rgb, to_yiq), shapes, first, last)])
        if lowpass1 is None:             # both low-passes start at the first frame's pyramid
            lowpass1, lowpass2 = pyramid.copy(), pyramid.copy()
        # lowpass = (1 - r) * lowpass + r * pyr, written so that a constant input stays exact
        lowpass1 += np.float32(r1) * (pyramid - lowpass1)
        lowpass2 += np.float32(r2) * (pyramid - lowpass2)
        filtered = (lowpass1 - lowpass2) * gain_per_value
        motion = collapse(np.split(filtered, split_at), shapes, first, last)
        out[t] = to_uint8(rgb + cv2.transform(motion, band_to_rgb))
    return out


def laplacian_bands(image: np.ndarray, shapes: list[tuple[int, int]], first: int,
                    last: int) -> list[np.ndarray]:
    """Laplacian levels first..last (inclusive) of an (H, W, 3) image: level l = G_l - expand(G_l+1),
    G_0 the image and G_l+1 = reduce(G_l), as buildLpyr (the finest level is never needed)."""
    gaussian = [image]
    for _ in range(last + 1):
        gaussian.append(reduce(gaussian[-1]))
    return [gaussian[level] - expand(gaussian[level + 1], shapes[level]) for level in range(first, last + 1)]


def collapse(flat_bands: list[np.ndarray], shapes: list[tuple[int, int]], first: int,
             last: int) -> np.ndarray:
    """reconLpyr of a 3-channel pyramid whose levels outside first..last are zero, at full size."""
    image = flat_bands[-1].reshape(*shapes[last], 3)
    for level in range(last - 1, first - 1, -1):
        image = expand(image, shapes[level]) + flat_bands[level - first].reshape(*shapes[level], 3)
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


def to_uint8(grey_levels: np.ndarray) -> np.ndarray:
    """Clip to [0, 255] and round half away from zero, as MATLAB's im2uint8 of the [0, 1] image."""
    rounded = np.clip(grey_levels, 0, 255)
    rounded += 0.5
    return rounded.astype(np.uint8)      # truncation of non-negative values = floor


# ---------------------------------------------------------------------------------------------------
# Stage


def magnify_stage(aligned_h5: Path, out_h5: Path, qc_dir: Path, *, enabled: bool, alpha: float,
                  lambda_c: float, r1: float, r2: float, reference_fps: float, chrom_attenuation: float,
                  exaggeration: float) -> None:
    """aligned.h5 -> magnified.h5 (same clip-store layout and clip attrs) + one QC strip per clip.

    r1 and r2 hold at `reference_fps`; each clip is filtered with the rates for its own `fps` attr
    (`rate_at_fps`), so the pass band in Hz is the same for every dataset. With enabled False the
    frames are copied unchanged (the no-EVM ablation); the params are recorded either way, so the two
    artifacts differ in provenance."""
    params = {"enabled": enabled, "alpha": alpha, "lambda_c": lambda_c, "r1": r1, "r2": r2,
              "reference_fps": reference_fps, "chrom_attenuation": chrom_attenuation,
              "exaggeration": exaggeration}
    evm_params = {"alpha": alpha, "lambda_c": lambda_c, "chrom_attenuation": chrom_attenuation,
                  "exaggeration": exaggeration}
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
                write_rgb(tmp_qc / f"{clip_id}.png", qc_strip(frames, magnified, apex))


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


def qc_strip(original: np.ndarray, magnified: np.ndarray, apex: int) -> np.ndarray:
    """What EVM did to one clip, as one RGB image. Columns: before | after | difference (4x, mid-grey =
    none). Top row: the apex frame (eyes and mouth rows ticked at the sides); below: the x-t slices
    through the eyes row and the mouth row (time runs down, the apex ticked at the left). Everything
    is enlarged with nearest-neighbour so single pixels stay visible."""
    height = original.shape[1]
    scale = max(1, round(QC_MIN_HEIGHT_PX / height))
    rows = {"eyes": min(height - 1, round(EYES_ROW_FRACTION * height)),
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


@contextlib.contextmanager
def atomic_directory(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary directory beside `path`; move it onto `path` only if the block succeeds."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    try:
        yield tmp
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    os.chmod(tmp, 0o755)                 # mkdtemp makes it 0700
    if target.exists():                  # rename() cannot replace a non-empty directory
        old = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
        os.replace(target, old / "previous")
        os.replace(tmp, target)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, target)
