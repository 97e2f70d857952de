"""The baselines' input: aligned (not magnified) clips, resized and temporally normalised.

The hand-crafted methods were designed for, and reported on, the aligned face videos without motion
magnification, each at its own face size and clip length; these helpers bring a clip of the aligned
store (256 x 192, onset..offset frames, 68 landmarks in aligned coordinates) to a method's size.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass

import cv2
import h5py
import numpy as np

from pipeline.artifacts import attr_value
from pipeline.errors import BadInputError


@dataclass
class AlignedClip:
    clip_id: str
    subject: str
    label: str
    frames: np.ndarray          # uint8 (T, H, W, 3) RGB
    landmarks: np.ndarray       # float (68, 2) x, y in the frames' pixel coordinates
    apex: int | None = None     # the apex frame's index in `frames` (0 = onset); None if the store records none
    fps: float | None = None
    source: str | None = None   # the source dataset of a composite's clip (pipeline/composite.py)


def iter_aligned_clips(path: str | os.PathLike) -> Iterator[AlignedClip]:
    """Stream the clips of an aligned store (pipeline.faces.align_stage) one at a time, in file order."""
    with h5py.File(path, "r") as h5:
        if "clips" not in h5:
            raise BadInputError("(all)", path, "not a clip store: no /clips group")
        for clip_id, group in h5["clips"].items():
            if "frames" not in group or "landmarks" not in group:
                raise BadInputError(clip_id, path, "needs /frames and /landmarks (an aligned store)")
            frames = group["frames"][()]
            if frames.ndim != 4 or frames.shape[-1] != 3 or frames.dtype != np.uint8 or len(frames) < 2:
                raise BadInputError(clip_id, path, f"frames must be uint8 (T >= 2, H, W, 3), got "
                                                   f"{frames.dtype} {frames.shape}")
            attrs = group.attrs
            apex = None
            if "apex" in attrs and "onset" in attrs:    # align_stage stores apex and onset as frame numbers
                apex = int(np.clip(int(attrs["apex"]) - int(attrs["onset"]), 0, len(frames) - 1))
            yield AlignedClip(clip_id=clip_id, subject=str(attr_value(attrs["subject"])),
                              label=str(attr_value(attrs["label"])), frames=frames,
                              landmarks=group["landmarks"][()].astype(np.float64), apex=apex,
                              fps=float(attrs["fps"]) if "fps" in attrs else None,
                              source=str(attr_value(attrs["source"])) if "source" in attrs else None)


def clip_row(clip: AlignedClip) -> dict[str, str]:
    """A clip's id, subject and label (and its source dataset, in a composite), as the folds name them."""
    return {"clip_id": clip.clip_id, "subject": clip.subject, "label": clip.label,
            **({"source": clip.source} if clip.source is not None else {})}


def resample_frames(frames: np.ndarray, n_frames: int) -> np.ndarray:
    """`n_frames` frames evenly spaced from the first to the last, linearly interpolated in time
    (float32). Stands in for the temporal interpolation model (TIM) with which the LBP baselines
    bring every clip to one length."""
    frames = np.asarray(frames, dtype=np.float32)
    if n_frames < 2:
        raise ValueError(f"need at least 2 frames, got {n_frames}")
    position = np.linspace(0, len(frames) - 1, n_frames)
    low = np.minimum(np.floor(position).astype(int), len(frames) - 2)
    weight = (position - low).astype(np.float32).reshape(-1, *([1] * (frames.ndim - 1)))
    return frames[low] * (1 - weight) + frames[low + 1] * weight


def resize_frames(frames: np.ndarray, height: int, width: int) -> np.ndarray:
    """Every frame resized to height x width (area averaging when shrinking, as for the tensors)."""
    if frames.shape[1:3] == (height, width):
        return frames
    shrinking = height <= frames.shape[1] and width <= frames.shape[2]
    interpolation = cv2.INTER_AREA if shrinking else cv2.INTER_LINEAR
    return np.stack([cv2.resize(frame, (width, height), interpolation=interpolation) for frame in frames])


def grey(frames: np.ndarray) -> np.ndarray:
    """float32 luma (ITU-R BT.601, as OpenCV's RGB2GRAY) of (..., 3) RGB frames."""
    return np.asarray(frames, dtype=np.float32) @ np.array([0.299, 0.587, 0.114], dtype=np.float32)


def scale_landmarks(landmarks: np.ndarray, source_hw: tuple[int, int], target_hw: tuple[int, int]) -> np.ndarray:
    """Landmarks of a frame of size source_hw in a resized frame of size target_hw (pixel centres kept)."""
    sy, sx = target_hw[0] / source_hw[0], target_hw[1] / source_hw[1]
    return (np.asarray(landmarks, dtype=np.float64) + 0.5) * [sx, sy] - 0.5


def grey_volume(frames: np.ndarray, *, height: int, width: int, n_frames: int) -> np.ndarray:
    """The float32 (n_frames, height, width) grey volume the LBP descriptors read."""
    return resample_frames(grey(resize_frames(frames, height, width)), n_frames)
