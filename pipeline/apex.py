"""The apex frame of a clip whose sheet codes none, estimated from the aligned face without its label.

Some clips have no coded apex: CASME II's sheet has '/' in 21 rows, SAMM codes a missing one as -1,
SMIC codes none at all. MER-RCNN and the hand-crafted baselines use every frame from onset to offset
and need no apex; what shows or uses one (the QC images, onset-apex methods) takes this estimate.

The estimate is the frame that differs most from both ends of the clip: for aligned grey frames F_t
(Gaussian-smoothed to suppress camera noise, central part of the face only),

    D_t = mean |F_t - F_onset| + mean |F_t - F_offset|

smoothed over a few frames (about 25 ms, at most a quarter of the clip), and the apex is the frame
of largest D_t. A micro-expression rises from the onset and returns by the offset, so D_t peaks at
its apex, while a slow drift of the whole face (lighting, a head settling) adds about the same
amount to every D_t and moves no peak: the difference to one end grows as the difference to the
other shrinks. It uses pixels only, never a label, so it is the same for every fold.
"""

from __future__ import annotations

import cv2
import numpy as np

SMOOTH_SIGMA_PX = 1.5       # spatial Gaussian before differencing (aligned faces are 256 x 192 by default)
CENTRAL = 0.8               # the central part of the aligned frame the difference is taken over
WINDOW_S = 0.025            # temporal smoothing of D_t, in seconds


def apex_curve(frames: np.ndarray, fps: float) -> np.ndarray:
    """D_t for frames (T, H, W, 3) or (T, H, W) uint8: difference of each frame to the onset and offset."""
    frames = np.asarray(frames)
    grey = frames.astype(np.float32).mean(axis=-1) if frames.ndim == 4 else frames.astype(np.float32)
    t, h, w = grey.shape
    dy, dx = int(h * (1 - CENTRAL) / 2), int(w * (1 - CENTRAL) / 2)
    smooth = np.stack([cv2.GaussianBlur(frame, (0, 0), SMOOTH_SIGMA_PX)[dy:h - dy, dx:w - dx] for frame in grey])
    curve = np.abs(smooth - smooth[0]).mean(axis=(1, 2)) + np.abs(smooth - smooth[-1]).mean(axis=(1, 2))
    window = min(int(round(WINDOW_S * fps)), t // 4) | 1       # odd; at most a quarter of the clip
    if window > 1:
        curve = np.convolve(np.pad(curve, window // 2, mode="edge"), np.ones(window) / window, mode="valid")
    return curve


def estimate_apex(frames: np.ndarray, fps: float) -> int:
    """Index (0 = the onset) of the estimated apex frame of an aligned clip; the middle frame of a clip
    of fewer than 3 frames or one without any change."""
    t = len(frames)
    if t < 3:
        return t // 2
    curve = apex_curve(frames, fps)
    inner = curve[1:-1]
    if not np.isfinite(inner).all() or np.ptp(inner) == 0 and inner[0] == 0:
        return t // 2
    return 1 + int(np.argmax(inner))
