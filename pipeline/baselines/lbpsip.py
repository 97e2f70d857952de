"""LBP-SIP: LBP with six intersection points (Wang, See, Phan & Oh, ACCV workshops 2014).

LBP-TOP samples 3P neighbours on three circles, many of them twice (the circles intersect). LBP-SIP
keeps only the six points where the three orthogonal lines through a voxel cross the neighbourhood:
four in its frame (right, up, left, down at spatial radius R) and two in time (the same pixel R_t
frames before and after). The four spatial bits make a 16-bin code and the two temporal bits a
4-bin code, so a block's histogram has 20 bins instead of LBP-TOP's 3 x 59: far fewer dimensions
and no interpolation, at some cost in discrimination.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from pipeline.baselines.lbptop import block_histograms, neighbour_codes


def sip_offsets(radius_xy: int, radius_t: int) -> tuple[np.ndarray, np.ndarray]:
    """(dt, dy, dx) of the four spatial points (right, up, left, down) and the two temporal points
    (before, after); integer radii, so every point lies on the pixel grid."""
    r, rt = int(radius_xy), int(radius_t)
    spatial = np.array([(0, 0, r), (0, -r, 0), (0, 0, -r), (0, r, 0)], dtype=float)
    temporal = np.array([(-rt, 0, 0), (rt, 0, 0)], dtype=float)
    return spatial, temporal


def lbpsip_codes(volume: np.ndarray, radius_xy: int, radius_t: int) -> tuple[np.ndarray, np.ndarray]:
    """The 4-bit spatial and 2-bit temporal codes of the interior voxels (same interior for both)."""
    if radius_xy < 1 or radius_t < 1:
        raise ValueError(f"LBP-SIP radii must be >= 1, got {radius_xy} and {radius_t}")
    spatial, temporal = sip_offsets(radius_xy, radius_t)
    margin = (radius_t, radius_xy, radius_xy)
    return neighbour_codes(volume, spatial, margin), neighbour_codes(volume, temporal, margin)


def lbpsip_features(volume: np.ndarray, *, radius_xy: int, radius_t: int, blocks: Sequence[int]) -> np.ndarray:
    """The LBP-SIP feature of a (T, H, W) grey volume: per block, the normalised 16-bin spatial and
    4-bin temporal histograms, concatenated (block-major), float32 of length n_blocks * 20."""
    spatial, temporal = lbpsip_codes(volume, radius_xy, radius_t)
    return np.concatenate([block_histograms(spatial, 16, blocks), block_histograms(temporal, 4, blocks)],
                          axis=1).ravel()
