"""TICS: LBP-TOP in a tensor-independent colour space (Wang, Yan, Li, Zhao, Zhou & Fu, IEEE TIP 2015).

A colour clip is a 4th-order tensor (x, y, t, colour). TICS seeks the projection of the colour mode
that makes the three colour components statistically independent, then describes each component
with LBP-TOP and concatenates the three descriptors. A projection of the colour mode alone is a 3x3
linear map of every pixel's RGB, so we estimate it with FastICA on RGB pixels sampled from the
training clips of the fold (never the test clips) and apply it to every pixel of every clip.
LBP compares grey levels, so the components need no quantisation back to 0..255.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence

import numpy as np
from sklearn.decomposition import FastICA
from sklearn.exceptions import ConvergenceWarning

from pipeline.baselines.lbptop import lbptop_features


def sample_pixels(frames: np.ndarray, n_pixels: int, rng: np.random.Generator) -> np.ndarray:
    """(n, 3) float RGB values of up to `n_pixels` random pixels of a (T, H, W, 3) clip."""
    flat = np.asarray(frames).reshape(-1, 3)
    take = rng.choice(len(flat), size=min(n_pixels, len(flat)), replace=False)
    return flat[take].astype(np.float64)


def fit_colour_space(pixels: np.ndarray, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """(unmixing (3, 3), mean (3,)) such that (rgb - mean) @ unmixing.T are independent components.

    Components come out in FastICA's order and sign; both are fixed for a fold (one seed, one fit),
    which is all LBP-TOP needs, as every clip of the fold is projected the same way.
    """
    pixels = np.asarray(pixels, dtype=np.float64)
    if pixels.ndim != 2 or pixels.shape[1] != 3 or len(pixels) < 10:
        raise ValueError(f"need (n >= 10, 3) RGB pixels to fit a colour space, got {pixels.shape}")
    # Grey faces (R = G = B) leave fewer than three independent directions; a little noise keeps the
    # whitening defined without changing the components of colour data (grey levels are integers).
    jitter = np.random.default_rng(seed).uniform(-0.5, 0.5, pixels.shape)
    ica = FastICA(n_components=3, whiten="unit-variance", random_state=seed, max_iter=1000, tol=1e-4)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)
        ica.fit(pixels + jitter)
    return ica.components_.astype(np.float32), ica.mean_.astype(np.float32)


def tics_components(frames: np.ndarray, unmixing: np.ndarray, mean: np.ndarray) -> np.ndarray:
    """(3, T, H, W) float32: the clip's three independent colour components."""
    frames = np.asarray(frames, dtype=np.float32)
    return np.moveaxis((frames - mean) @ unmixing.T, -1, 0)


def tics_features(frames: np.ndarray, unmixing: np.ndarray, mean: np.ndarray, *, points: Sequence[int],
                  radii: Sequence[float], blocks: Sequence[int]) -> np.ndarray:
    """LBP-TOP of each TICS component of a (T, H, W, 3) clip, concatenated (3x LBP-TOP's length)."""
    return np.concatenate([lbptop_features(component, points=points, radii=radii, blocks=blocks)
                           for component in tics_components(frames, unmixing, mean)])
