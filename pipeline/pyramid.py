"""What the NumPy and the PyTorch paths of Eulerian video magnification share (pipeline/evm.py,
pipeline/evm_torch.py): the colour matrices, the Laplacian pyramid's geometry and the per-level gains of
MIT's amplify_spatial_lpyr_temporal_iir.m."""

from __future__ import annotations

import math

import numpy as np

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


def max_pyramid_height(height: int, width: int, filter_taps: int = BINOMIAL_TAPS) -> int:
    """matlabPyrTools' maxPyrHt for a 2-D image: how often it can be halved (floor) before a side
    becomes shorter than the filter."""
    levels = 0
    while height >= filter_taps and width >= filter_taps:
        levels += 1
        height, width = height // 2, width // 2
    return levels


def check_frames(frames: np.ndarray) -> None:
    """A clip EVM can magnify: uint8 (T, H, W, 3), at least one frame of 2x2 pixels."""
    if frames.dtype != np.uint8 or frames.ndim != 4 or frames.shape[-1] != 3:
        raise ValueError(f"frames must be uint8 (T, H, W, 3), got {frames.dtype} {frames.shape}")
    if frames.shape[0] == 0 or frames.shape[1] < 2 or frames.shape[2] < 2:
        raise ValueError(f"need at least one frame of 2x2 pixels, got {frames.shape}")


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
