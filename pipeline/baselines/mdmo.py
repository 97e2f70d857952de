"""MDMO: main directional mean optical flow (Liu, Zhang, Yan, Wang, Zhao & Fu, IEEE TAC 2016).

Per clip: dense optical flow from the first (onset) frame to every later frame, so that the
sub-pixel motion between neighbouring high-speed frames accumulates; the face is partitioned into
36 regions of interest (ROIs) from the landmarks; in each ROI and frame the flow vectors are put in
8 direction bins, the fullest bin is the main direction, and the mean of its vectors is that ROI's
main directional mean flow. Averaged over the frames (as vectors) it gives each ROI a magnitude rho
and an angle theta; magnitudes are divided by the clip's largest, so the feature describes where
and which way the face moves, not how much this subject moves: [rho_1..rho_36, theta_1..theta_36].

Differences from the paper, and why: the flow is OpenCV's Farneback (the paper used Liu's robust
optical flow, not in any library here); the 36 ROIs follow the paper's partition (brows, forehead,
eyes, cheeks, nose, mouth, chin, symmetric halves) but are drawn on dlib's 68 points, the paper's on
its own 66, so the polygons are ours (ROI_POLYGONS). Head motion is not removed frame by frame:
merflow's clips are already aligned with one transform per clip.
"""

from __future__ import annotations

import cv2
import numpy as np

# Landmarks 68..77 are virtual forehead points: brow points 17..26 moved up by FOREHEAD_RISE x the
# nose bridge's length (27 -> 30), since dlib marks nothing above the brows.
FOREHEAD_RISE = 0.6

# 16 ROIs on the image's left half (the subject's right), mirrored onto the right half, plus 4 on
# the midline: 36 in all. Each ROI is the convex hull of its points.
_LEFT_ROIS = [
    [17, 18, 19, 68, 69, 70],      # forehead, outer
    [19, 20, 21, 70, 71, 72],      # forehead, inner
    [17, 18, 36, 37],              # brow, outer
    [18, 19, 20, 37, 38],          # brow, middle
    [20, 21, 38, 39],              # brow, inner
    [0, 1, 17, 36],                # temple (crow's feet)
    [36, 39, 40, 41],              # lower eyelid
    [1, 2, 36, 41],                # cheek under the outer eye corner
    [2, 3, 31, 40, 41],            # mid cheek
    [3, 4, 31, 48],                # lower cheek, beside the nostril
    [28, 29, 31, 39, 40],          # side of the nose
    [31, 32, 48, 49, 50],          # nasolabial fold, upper lip side
    [4, 5, 48, 59],                # outside the mouth corner
    [48, 49, 59, 60, 67],          # mouth corner
    [49, 50, 61, 60],              # upper lip, side
    [5, 6, 7, 58, 59],             # chin, side
]
_MIDLINE_ROIS = [
    [21, 22, 27, 39, 42],          # glabella
    [27, 28, 29, 30],              # nose bridge
    [32, 33, 34, 50, 51, 52],      # philtrum
    [7, 8, 9, 56, 57, 58],         # chin
]


def _mirror_index() -> np.ndarray:
    """Landmark index -> its mirror image across the face's midline (iBUG 68 numbering + forehead)."""
    mirror = np.arange(78)
    pairs = [(i, 16 - i) for i in range(8)]                                     # jaw
    pairs += [(17 + i, 26 - i) for i in range(5)]                               # brows
    pairs += [(31, 35), (32, 34)]                                               # nostrils
    pairs += [(36, 45), (37, 44), (38, 43), (39, 42), (40, 47), (41, 46)]       # eyes
    pairs += [(48, 54), (49, 53), (50, 52), (55, 59), (56, 58), (60, 64), (61, 63), (65, 67)]  # mouth
    pairs += [(68 + i, 77 - i) for i in range(5)]                               # forehead
    for a, b in pairs:
        mirror[a], mirror[b] = b, a
    return mirror


ROI_POLYGONS: list[list[int]] = (_LEFT_ROIS + [[int(_mirror_index()[i]) for i in roi] for roi in _LEFT_ROIS]
                                 + _MIDLINE_ROIS)


def extended_landmarks(landmarks: np.ndarray) -> np.ndarray:
    """(78, 2): the 68 landmarks and 10 virtual forehead points above the brows."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    if landmarks.shape != (68, 2):
        raise ValueError(f"MDMO needs 68 (x, y) landmarks, got shape {landmarks.shape}")
    rise = FOREHEAD_RISE * np.linalg.norm(landmarks[30] - landmarks[27])
    return np.vstack([landmarks, landmarks[17:27] - [0.0, rise]])


def roi_masks(landmarks: np.ndarray, height: int, width: int) -> list[np.ndarray]:
    """Flat pixel indices inside each of the 36 ROIs (convex hulls of their landmarks, clipped to
    the frame); an ROI that falls outside the frame is empty."""
    points = extended_landmarks(landmarks)
    masks = []
    for roi in ROI_POLYGONS:
        hull = cv2.convexHull(np.round(points[roi] * 16).astype(np.int32))   # 4 fractional bits
        mask = np.zeros((height, width), dtype=np.uint8)
        cv2.fillConvexPoly(mask, hull, 1, lineType=cv2.LINE_8, shift=4)
        masks.append(np.flatnonzero(mask))
    return masks


def onset_flows(frames: np.ndarray, *, pyr_scale: float, levels: int, winsize: int, iterations: int,
                poly_n: int, poly_sigma: float) -> np.ndarray:
    """(T-1, H, W, 2) Farneback flow (dx, dy in pixels) from the first frame to each later frame."""
    frames = np.asarray(frames)
    if frames.ndim != 3 or len(frames) < 2:
        raise ValueError(f"need (T >= 2, H, W) grey frames, got shape {frames.shape}")
    frames = np.clip(np.round(frames), 0, 255).astype(np.uint8)
    return np.stack([cv2.calcOpticalFlowFarneback(frames[0], frame, None, pyr_scale, levels, winsize,
                                                  iterations, poly_n, poly_sigma, 0)
                     for frame in frames[1:]])


def main_directional_means(flows: np.ndarray, masks: list[np.ndarray], bins: int) -> np.ndarray:
    """(T, n_rois, 2): per frame and ROI, the mean flow of the vectors in the ROI's fullest direction bin
    (zero for an empty ROI). Direction bins split the circle into `bins` equal sectors from angle 0."""
    n_frames = len(flows)
    flat = flows.reshape(n_frames, -1, 2)
    means = np.zeros((n_frames, len(masks), 2))
    for r, pixels in enumerate(masks):
        if len(pixels) == 0:
            continue
        vectors = flat[:, pixels]                                   # (T, n, 2)
        angle = np.arctan2(vectors[..., 1], vectors[..., 0]) % (2 * np.pi)
        direction = np.minimum((angle * bins / (2 * np.pi)).astype(np.intp), bins - 1)
        frame_bin = direction + bins * np.arange(n_frames)[:, None]      # one bincount for every frame
        counts = np.bincount(frame_bin.ravel(), minlength=n_frames * bins).reshape(n_frames, bins)
        in_main = direction == counts.argmax(axis=1)[:, None]       # (T, n)
        total = np.einsum("tnc,tn->tc", vectors, in_main.astype(vectors.dtype))
        means[:, r] = total / in_main.sum(axis=1)[:, None]
    return means


def mdmo_from_means(means: np.ndarray) -> np.ndarray:
    """The 2 x n_rois MDMO feature from per-frame main directional means: the frames' mean vector per
    ROI in polar form, magnitudes divided by the largest (rho in [0, 1], theta in [0, 2 pi))."""
    mean = means.mean(axis=0)                                       # (n_rois, 2)
    rho = np.hypot(mean[:, 0], mean[:, 1])
    theta = np.arctan2(mean[:, 1], mean[:, 0]) % (2 * np.pi)
    rho = rho / rho.max() if rho.max() > 0 else rho
    return np.concatenate([rho, theta]).astype(np.float32)


def mdmo_features(frames: np.ndarray, landmarks: np.ndarray, *, bins: int, pyr_scale: float, levels: int,
                  winsize: int, iterations: int, poly_n: int, poly_sigma: float) -> np.ndarray:
    """MDMO of a (T, H, W) grey clip whose 68 landmarks are given in its pixel coordinates."""
    flows = onset_flows(frames, pyr_scale=pyr_scale, levels=levels, winsize=winsize, iterations=iterations,
                        poly_n=poly_n, poly_sigma=poly_sigma)
    masks = roi_masks(landmarks, frames.shape[1], frames.shape[2])
    return mdmo_from_means(main_directional_means(flows, masks, bins))
