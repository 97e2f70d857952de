"""Central crop and temporal jittering: magnified clips -> fixed-size RCNN input tensors (tensors.h5).

Paper, Sec. III-A: the core 80% of the face along width and height is kept, which reduces each
channel from 3072 to 1966 pixels, and every sequence is temporally normalised to 30 frames, giving a
1966 x 30 x 3 tensor. Sec. II-D: temporal jittering augments each clip 48 times, by randomly keeping
100%, 90%, ..., 50% of its frames (6 keep-ratios) and resampling the selection to 30 frames with 8
resizing methods (nearest, bilinear, bicubic, and the box, triangle, cubic, Lanczos-2 and Lanczos-3
kernels).

The resizing methods follow MATLAB's imresize (their names are imresize's), applied along time:
an output frame at position u in the input draws on the input frames near u through a kernel, with
imresize's half-pixel coordinate mapping and replicated boundary frames. In imresize itself
`bilinear` is `triangle` and `bicubic` is `cubic`, both antialiased; for the paper's 8 methods to be
8 distinct ones, here nearest / bilinear / bicubic are point-sampling interpolation (no antialiasing,
as interp1 or cv2.resize), while box / triangle / cubic / lanczos2 / lanczos3 widen their kernel by
the scale factor when downsampling (antialiasing, as imresize). When upsampling (fewer selected
frames than 30) no kernel is widened, so bilinear = triangle, bicubic = cubic and nearest = box; a
selection of exactly 30 frames is copied unchanged by every kernel. A short clip therefore has fewer
distinct variants than keep-ratios x kernels: tensors.h5 counts them per clip (`distinct_variants`)
and the stage logs their spread.

Tensor file layout (tensors.h5)::

    /x            uint8 (N, V, 3, P, F)  N clips, V = keep-ratios x kernels variants (ratio-major),
                                         3 RGB channels, P pixels, F frames; one clip per chunk
    /clip_id, /subject, /label           (N,) utf-8 strings
    /label_index  int64 (N,)             position of the label in the `classes` attribute
    /distinct_variants int64 (N,)        how many of the clip's V variants differ (byte for byte)
    /keep_ratio   float64 (V,), /kernel (V,) str: the jitter that made each variant
    /             attrs: classes (JSON list) + provenance
"""

from __future__ import annotations

import hashlib
import json
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import cv2
import h5py
import numpy as np
from tqdm import tqdm

from pipeline.artifacts import (
    atomic_output,
    clip_ids,
    iter_clips,
    open_h5_for_write,
    provenance,
    write_array,
    write_provenance,
)
from pipeline.errors import BadInputError, MerflowError

MIN_SELECTED_FRAMES = 2  # resampling a single frame would only repeat it


# --- central crop (Sec. III-A) -------------------------------------------------------------------

def central_pixel_indices(height: int, width: int, crop: float, pixels: int) -> np.ndarray:
    """Flat (raster) indices of the `pixels` pixels nearest the image centre, in raster order.

    The paper keeps the central 80% along width and height: 0.64 x 3072 = 1966 pixels for 64 x 48.
    1966 = 2 x 983 with 983 prime, so no rectangle holds exactly 1966 pixels; the integer realisation
    of the central box is the `pixels` pixels of smallest normalised box distance
    max(|x - cx| / W, |y - cy| / H) (ties broken in raster order). `pixels` must be that count,
    round(crop^2 * H * W), so a frame size that does not match the params is caught here.
    """
    expected = round(crop * crop * height * width)
    if pixels != expected:
        raise ValueError(f"tensors.pixels = {pixels} but a central {crop:.0%} x {crop:.0%} crop of "
                         f"{height} x {width} frames holds round({crop}^2 * {height * width}) = {expected}")
    rows, cols = np.mgrid[0:height, 0:width]
    box_distance = np.maximum(np.abs(cols - (width - 1) / 2) / width,
                              np.abs(rows - (height - 1) / 2) / height).ravel()
    nearest = np.argsort(box_distance, kind="stable")[:pixels]  # stable: ties stay in raster order
    return np.sort(nearest)


# --- temporal resampling kernels (MATLAB imresize) -----------------------------------------------

def _box(x: np.ndarray) -> np.ndarray:
    return ((x >= -0.5) & (x < 0.5)).astype(np.float64)


def _triangle(x: np.ndarray) -> np.ndarray:
    return np.clip(1.0 - np.abs(x), 0.0, None)


def _cubic(x: np.ndarray) -> np.ndarray:
    """Keys' cubic convolution kernel with a = -0.5, as imresize's `cubic`."""
    ax = np.abs(x)
    return np.where(ax <= 1, 1.5 * ax**3 - 2.5 * ax**2 + 1,
                    np.where(ax <= 2, -0.5 * ax**3 + 2.5 * ax**2 - 4 * ax + 2, 0.0))


def _lanczos(lobes: int) -> Callable[[np.ndarray], np.ndarray]:
    def kernel(x: np.ndarray) -> np.ndarray:
        return np.where(np.abs(x) < lobes, np.sinc(x) * np.sinc(x / lobes), 0.0)
    return kernel


# name -> (kernel, support width in input samples, antialiased when downsampling)
RESAMPLING_METHODS: dict[str, tuple[Callable[[np.ndarray], np.ndarray], float, bool]] = {
    "nearest": (_box, 1.0, False),
    "bilinear": (_triangle, 2.0, False),
    "bicubic": (_cubic, 4.0, False),
    "box": (_box, 1.0, True),
    "triangle": (_triangle, 2.0, True),
    "cubic": (_cubic, 4.0, True),
    "lanczos2": (_lanczos(2), 4.0, True),
    "lanczos3": (_lanczos(3), 6.0, True),
}


def resample_weights(n_in: int, n_out: int, method: str) -> np.ndarray:
    """The (n_out, n_in) matrix that resamples a length-n_in signal to n_out samples; rows sum to 1.

    As imresize's `contributions`: output sample j (0-based) sits at input position
    u = (j + 0.5) * n_in / n_out - 0.5; its weights are kernel(u - i) over the nearby input samples
    i (kernel stretched by n_in / n_out when antialiasing a downsample), normalised to sum to 1,
    with positions outside 0..n_in-1 replicating the boundary sample.
    """
    if method not in RESAMPLING_METHODS:
        raise ValueError(f"unknown resampling method {method!r}; valid: {', '.join(RESAMPLING_METHODS)}")
    if n_in < 1 or n_out < 1:
        raise ValueError(f"cannot resample {n_in} samples to {n_out}")
    kernel, support, antialiased = RESAMPLING_METHODS[method]
    scale = n_out / n_in
    if antialiased and scale < 1:
        def weight(x: np.ndarray) -> np.ndarray:
            return scale * kernel(scale * x)
        support = support / scale
    else:
        weight = kernel
    # One division of integers, so that exact half-way positions (nearest-neighbour ties) are exact.
    centre = ((2 * np.arange(n_out) + 1) * n_in - n_out) / (2 * n_out)
    taps = int(np.ceil(support)) + 2
    first = np.floor(centre - support / 2).astype(np.int64)
    positions = first[:, None] + np.arange(taps)[None, :]
    tap_weights = weight(centre[:, None] - positions)
    tap_weights /= tap_weights.sum(axis=1, keepdims=True)
    matrix = np.zeros((n_out, n_in))
    rows = np.broadcast_to(np.arange(n_out)[:, None], positions.shape)
    np.add.at(matrix, (rows, np.clip(positions, 0, n_in - 1)), tap_weights)
    return matrix


# --- temporal jittering (Sec. II-D) --------------------------------------------------------------

def selected_frame_count(n_frames: int, keep_ratio: float) -> int:
    """round(keep_ratio * T), halves rounded up as MATLAB's round."""
    return int(np.floor(keep_ratio * n_frames + 0.5))


def select_frames(n_frames: int, keep_ratio: float, rng: np.random.Generator) -> np.ndarray:
    """A random selection of round(keep_ratio * T) frame numbers, kept in temporal order."""
    count = selected_frame_count(n_frames, keep_ratio)
    return np.sort(rng.choice(n_frames, size=count, replace=False))


def clip_rng(seed: int, clip_id: str) -> np.random.Generator:
    """A generator that depends only on the seed and the clip id, not on the order clips come in."""
    clip_hash = int.from_bytes(hashlib.sha256(clip_id.encode("utf-8")).digest()[:16], "big")
    return np.random.default_rng([seed, clip_hash])


def jitter_clip(frames: np.ndarray, *, keep_ratios: Sequence[float], kernels: Sequence[str],
                frames_out: int, crop: float, pixels: int, rng: np.random.Generator) -> np.ndarray:
    """All jittered variants of one clip: uint8 (len(keep_ratios) * len(kernels), 3, pixels, frames_out).

    `frames` is uint8 (T, H, W, 3). Variants are ratio-major: variant r * len(kernels) + k is
    keep_ratios[r] resampled with kernels[k]; all kernels of a ratio share one frame selection.
    """
    n_frames, height, width, _ = frames.shape
    core = frames.reshape(n_frames, height * width, 3)[:, central_pixel_indices(height, width, crop, pixels)]
    # (3 * pixels, T), channel-first, so that resampled frames come out as the last, contiguous axis.
    signals = core.transpose(2, 1, 0).reshape(3 * pixels, n_frames).astype(np.float64)
    variants = np.empty((len(keep_ratios), len(kernels), 3, pixels, frames_out), dtype=np.uint8)
    for r, keep_ratio in enumerate(keep_ratios):
        selected = signals[:, select_frames(n_frames, keep_ratio, rng)]
        n_selected = selected.shape[1]
        if n_selected < MIN_SELECTED_FRAMES:
            raise ValueError(f"keep-ratio {keep_ratio} of {n_frames} frames selects {n_selected} frame(s)")
        # One (kernels x frames_out, n_selected) weight matrix resamples every pixel at once.
        weights = np.concatenate([resample_weights(n_selected, frames_out, k) for k in kernels])
        resampled = selected @ weights.T
        np.clip(resampled, 0, 255, out=resampled)
        np.floor(resampled + 0.5, out=resampled)  # round half up, as MATLAB's uint8 conversion
        variants[r] = resampled.reshape(3, pixels, len(kernels), frames_out).transpose(2, 0, 1, 3)
    return variants.reshape(len(keep_ratios) * len(kernels), 3, pixels, frames_out)


UNJITTERED_VIEW = (1.0, "bilinear")   # every frame, linearly resampled to 30: plain temporal normalisation


def unjittered_variant(keep_ratios: Sequence[float], kernels: Sequence[str]) -> int | None:
    """The variant of a store (/keep_ratio and /kernel, one per variant) that is the clip unjittered:
    keep-ratio 1.0 resampled with the bilinear kernel; None if the store's jitter has no such variant.
    With keep-ratio 1.0 every frame is selected, so this variant is the same tensor whatever other
    ratios and kernels a store holds: the one view every jitter setting is scored on alike."""
    for number, (ratio, kernel) in enumerate(zip(keep_ratios, kernels, strict=True)):
        if (float(ratio), str(kernel)) == UNJITTERED_VIEW:
            return number
    return None


def count_distinct_variants(variants: np.ndarray) -> int:
    """How many of a clip's variants (axis 0) are different tensors, compared exactly (by their bytes)."""
    return len({hashlib.sha256(np.ascontiguousarray(variant).tobytes()).digest() for variant in variants})


# --- the stage -----------------------------------------------------------------------------------

def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Resize uint8 (T, H, W, 3) frames to (T, height, width, 3) by area averaging.

    The paper magnifies the aligned faces first and only then resizes them to 3072 px per channel
    (Sec. II-A: "Firstly, we utilize the motion magnification ... Then, images from an video are
    resized"): EVM's lambda_c = 16 px cut-off is meant for faces of a few hundred pixels.
    """
    if frames.shape[1:3] == (height, width):
        return frames
    return np.stack([cv2.resize(frame, (width, height), interpolation=cv2.INTER_AREA) for frame in frames])


def subtract_onset(frames: np.ndarray) -> np.ndarray:
    """Every frame minus the clip's first (onset, neutral) frame, offset to mid-grey 128 and clipped.

    Not in the paper: it removes the static face, so that a model cannot tell clips apart by who is
    in them, only by how the face moves (see README, "Choices the paper leaves open").
    """
    return np.clip(frames.astype(np.int16) - frames[:1].astype(np.int16) + 128, 0, 255).astype(np.uint8)


def tensors_stage(magnified_h5: Path, out_h5: Path, *, height: int, width: int, crop: float, pixels: int,
                  frames: int, keep_ratios: Sequence[float], kernels: Sequence[str], seed: int,
                  classes: list[str], subtract_onset_frame: bool = False) -> None:
    """Write tensors.h5: every clip of the magnified clip store resized to height x width, cropped and
    jittered (see module doc)."""
    for kernel in kernels:
        resample_weights(2, 2, kernel)  # fail on an unknown kernel before any work
    if not all(0 < ratio <= 1 for ratio in keep_ratios):
        raise ValueError(f"tensors.keep_ratios must lie in (0, 1], got {list(keep_ratios)}")
    if round(crop * crop * height * width) != pixels:
        raise ValueError(f"tensors: frames of {height} x {width} do not give pixels = {pixels} with a "
                         f"{crop:.0%} crop (round(crop^2 * height * width) = {round(crop * crop * height * width)})")
    params = {"height": height, "width": width, "crop": crop, "pixels": pixels, "frames": frames,
              "keep_ratios": list(keep_ratios), "kernels": list(kernels), "seed": seed, "classes": list(classes),
              "subtract_onset_frame": subtract_onset_frame}
    ids = clip_ids(magnified_h5)
    if not ids:
        raise MerflowError(f"{magnified_h5}: the clip store holds no clips")
    variants = len(keep_ratios) * len(kernels)
    strings = h5py.string_dtype("utf-8")
    clip_id_written: list[str] = []
    clip_subject: list[str] = []
    clip_label: list[str] = []
    clip_label_index: list[int] = []
    clip_distinct: list[int] = []
    clip_source: list[str] = []         # a composite's clips name their source dataset (pipeline/composite.py)
    started = time.perf_counter()
    with atomic_output(out_h5) as tmp, open_h5_for_write(tmp) as h5:
        write_provenance(h5, provenance("tensors", params, {"magnified": magnified_h5}))
        h5.attrs["classes"] = json.dumps(list(classes))
        x = h5.create_dataset("x", shape=(len(ids), variants, 3, pixels, frames), dtype=np.uint8,
                              chunks=(1, variants, 3, pixels, frames), track_times=False)
        clips = tqdm(iter_clips(magnified_h5), total=len(ids), desc="tensors", unit="clip")
        for n, (clip_id, clip_frames, attrs) in enumerate(clips):
            label_index = _label_index(clip_id, magnified_h5, attrs, classes)
            shortest = selected_frame_count(len(clip_frames), min(keep_ratios))
            if shortest < MIN_SELECTED_FRAMES:
                raise BadInputError(clip_id, magnified_h5,
                                    f"{len(clip_frames)} frames: keep-ratio {min(keep_ratios)} would select "
                                    f"{shortest}, at least {MIN_SELECTED_FRAMES} are needed")
            clip_frames = resize_frames(clip_frames, height, width)
            if subtract_onset_frame:
                clip_frames = subtract_onset(clip_frames)
            jittered = jitter_clip(clip_frames, keep_ratios=keep_ratios,
                                   kernels=kernels, frames_out=frames, crop=crop, pixels=pixels,
                                   rng=clip_rng(seed, clip_id))
            x[n] = jittered
            clip_distinct.append(count_distinct_variants(jittered))
            clip_id_written.append(clip_id)
            clip_subject.append(str(attrs["subject"]))
            clip_label.append(str(attrs["label"]))
            clip_label_index.append(label_index)
            if "source" in attrs:
                clip_source.append(str(attrs["source"]))
        write_array(h5, "clip_id", np.array(clip_id_written, dtype=object), dtype=strings)
        write_array(h5, "subject", np.array(clip_subject, dtype=object), dtype=strings)
        write_array(h5, "label", np.array(clip_label, dtype=object), dtype=strings)
        write_array(h5, "label_index", np.array(clip_label_index, dtype=np.int64))
        write_array(h5, "distinct_variants", np.array(clip_distinct, dtype=np.int64))
        if clip_source:
            if len(clip_source) != len(ids):
                raise MerflowError(f"{magnified_h5}: {len(ids) - len(clip_source)} clips have no source attribute, "
                                   "the others have one (a composite's store names every clip's source)")
            write_array(h5, "source", np.array(clip_source, dtype=object), dtype=strings)
        write_array(h5, "keep_ratio", np.repeat(np.asarray(keep_ratios, dtype=np.float64), len(kernels)))
        write_array(h5, "kernel", np.array(list(kernels) * len(keep_ratios), dtype=object), dtype=strings)
    elapsed = time.perf_counter() - started
    tqdm.write(f"tensors: {len(ids)} clips x {variants} variants in {elapsed:.1f} s "
               f"({elapsed / len(ids):.3f} s per clip)", file=sys.stderr)
    tqdm.write(f"tensors {Path(magnified_h5).parent.name}: {distinct_variants_summary(clip_distinct, variants)}",
               file=sys.stderr)


def distinct_variants_summary(counts: Sequence[int], variants: int) -> str:
    """The log line on a store's distinct variants, e.g. "distinct variants per clip: min/median/max
    30/48/48 of 48"."""
    low, median, high = np.min(counts), np.median(counts), np.max(counts)
    return f"distinct variants per clip: min/median/max {low}/{median:g}/{high} of {variants}"


def _label_index(clip_id: str, path: Path, attrs: dict, classes: list[str]) -> int:
    label = attrs.get("label")
    if label not in classes:
        raise BadInputError(clip_id, path, f"label {label!r} is not one of the classes {classes}")
    index = classes.index(label)
    if "label_index" in attrs and int(attrs["label_index"]) != index:
        raise BadInputError(clip_id, path, f"label_index {attrs['label_index']} disagrees with label "
                            f"{label!r} = class {index} of {classes}")
    return index
