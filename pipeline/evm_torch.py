"""Eulerian video magnification in PyTorch: the same maths as `pipeline.evm.magnify`, on a GPU.

`pipeline.evm.magnify(frames, device="cuda")` lands here. Every step is `pipeline.evm`'s (MIT's
amplify_spatial_lpyr_temporal_iir.m), written for batches of frames: the Laplacian pyramids of a chunk
of frames are built in one go (matlabPyrTools' corrDn / upConv with binom5 and 'reflect1' as separable
sums of strided views), the two IIR low-passes then run frame by frame over the chunk's flattened
pyramids (the recursion is sequential in time), and the band is collapsed, turned into RGB and added
back for the whole chunk. The colour conversions are done in full, as in the MATLAB code (the NumPy
path folds them into one matrix on the level-1 image, the same by linearity), so the two agree to
float32 rounding: within 1 grey level. Memory holds one chunk's pyramids and the two low-pass
states, whatever the clip length.

On a CPU the NumPy/OpenCV path is faster; this one exists for CUDA, and runs anywhere torch does.
"""

from __future__ import annotations

import numpy as np
import torch

from pipeline.pyramid import RGB_TO_YIQ, YIQ_TO_RGB, check_frames, level_gains, level_shapes

CHUNK_FRAMES = 64                      # frames whose pyramids are built at once


def magnify_torch(frames: np.ndarray, *, alpha: float = 10, lambda_c: float = 16, r1: float = 0.4,
                  r2: float = 0.05, chrom_attenuation: float = 0.1, exaggeration: float = 2,
                  device: str | torch.device = "cuda", chunk_frames: int = CHUNK_FRAMES) -> np.ndarray:
    """Magnify a uint8 (T, H, W, 3) RGB clip on `device`; same result as `pipeline.evm.magnify` to
    within 1 grey level, same shape out (a NumPy array)."""
    check_frames(frames)
    n_frames, height, width, _ = frames.shape
    if chunk_frames < 1:
        raise ValueError(f"chunk_frames must be at least 1, got {chunk_frames}")
    shapes = level_shapes(height, width)
    first, last = 1, len(shapes) - 2     # the levels with a gain: all but the finest and the residual
    if last < first:
        return frames.copy()
    device = torch.device(device)
    gains = level_gains(height, width, alpha=alpha, lambda_c=lambda_c, exaggeration=exaggeration)
    sizes = [3 * shapes[level][0] * shapes[level][1] for level in range(first, last + 1)]
    gain_per_value = torch.from_numpy(np.repeat(gains[first:last + 1], sizes).astype(np.float32)).to(device)
    to_yiq = torch.from_numpy((RGB_TO_YIQ / 255).astype(np.float32)).to(device)   # grey levels in, as evm.py
    band_to_rgb = torch.from_numpy((255 * YIQ_TO_RGB @ np.diag([1.0, chrom_attenuation, chrom_attenuation]))
                                   .astype(np.float32)).to(device)
    rate1, rate2 = torch.tensor(r1, dtype=torch.float32), torch.tensor(r2, dtype=torch.float32)

    out = np.empty_like(frames)
    lowpass1 = lowpass2 = None
    with torch.inference_mode():
        for start in range(0, n_frames, chunk_frames):
            rgb = (torch.from_numpy(frames[start:start + chunk_frames]).to(device)
                   .permute(0, 3, 1, 2).to(torch.float32))                              # (n, 3, H, W)
            yiq = torch.einsum("ij,njhw->nihw", to_yiq, rgb)
            bands = laplacian_bands(yiq, shapes, first, last)
            pyramids = torch.cat([band.flatten(1) for band in bands], dim=1)           # (n, values)
            if lowpass1 is None:         # both low-passes start at the first frame's pyramid
                lowpass1, lowpass2 = pyramids[0].clone(), pyramids[0].clone()
            filtered = torch.empty_like(pyramids)
            for t, pyramid in enumerate(pyramids):
                lowpass1 += rate1 * (pyramid - lowpass1)
                lowpass2 += rate2 * (pyramid - lowpass2)
                torch.mul(lowpass1 - lowpass2, gain_per_value, out=filtered[t])
            motion = collapse(filtered.split(sizes, dim=1), shapes, first, last)       # (n, 3, H, W)
            magnified = rgb + torch.einsum("ij,njhw->nihw", band_to_rgb, motion)
            # clip and round half up, as im2uint8
            rounded = (magnified.clamp_(0, 255) + 0.5).to(torch.uint8)
            out[start:start + chunk_frames] = rounded.permute(0, 2, 3, 1).cpu().numpy()
    return out


def laplacian_bands(images: torch.Tensor, shapes: list[tuple[int, int]], first: int,
                    last: int) -> list[torch.Tensor]:
    """Laplacian levels first..last of (n, C, H, W) images, as `pipeline.evm.laplacian_bands`."""
    gaussian = [images]
    for _ in range(last + 1):
        gaussian.append(reduce(gaussian[-1]))
    return [gaussian[level] - expand(gaussian[level + 1], shapes[level]) for level in range(first, last + 1)]


def collapse(flat_bands: tuple[torch.Tensor, ...], shapes: list[tuple[int, int]], first: int,
             last: int) -> torch.Tensor:
    """reconLpyr of (n, values) flattened levels first..last (the others zero), at full size."""
    n = flat_bands[0].shape[0]
    image = flat_bands[-1].reshape(n, 3, *shapes[last])
    for level in range(last - 1, first - 1, -1):
        image = expand(image, shapes[level]) + flat_bands[level - first].reshape(n, 3, *shapes[level])
    for level in range(first - 1, -1, -1):
        image = expand(image, shapes[level])
    return image


def _take(x: torch.Tensor, axis: int, start: int, stop: int | None, step: int = 1) -> torch.Tensor:
    """x[start:stop:step] along `axis` (a view)."""
    key = [slice(None)] * x.ndim
    key[axis] = slice(start, stop, step)
    return x[tuple(key)]


def reduce(images: torch.Tensor) -> torch.Tensor:
    """corrDn with binom5 and 'reflect1' along both axes, keeping the even samples: (n, C, H, W) to
    (n, C, ceil(H/2), ceil(W/2)), as `pipeline.evm.reduce`."""
    return _downsample(_downsample(images, axis=3), axis=2)


def _downsample(x: torch.Tensor, axis: int) -> torch.Tensor:
    """Correlate with [1 4 6 4 1] / 16 on x mirrored about its edge samples, keep the even samples.
    Written as sums of strided views rather than a convolution: no im2col, the same on every device."""
    n = x.shape[axis]
    padded = torch.cat([_take(x, axis, 2, 3), _take(x, axis, 1, 2), x,
                        _take(x, axis, n - 2, n - 1), _take(x, axis, n - 3, n - 2)], dim=axis)
    m = (n + 1) // 2

    def tap(offset: int) -> torch.Tensor:
        return _take(padded, axis, offset, offset + 2 * m - 1, 2)

    return 0.0625 * (tap(0) + tap(4)) + 0.25 * (tap(1) + tap(3)) + 0.375 * tap(2)


def expand(images: torch.Tensor, shape: tuple[int, int]) -> torch.Tensor:
    """upConv with binom5 and 'reflect1' along both axes: (n, C, h, w) to (n, C, *shape), as
    `pipeline.evm.expand`."""
    return _upsample(_upsample(images, shape[1], axis=3), shape[0], axis=2)


def _upsample(samples: torch.Tensor, length: int, axis: int) -> torch.Tensor:
    """`pipeline.evm.upsample` in torch: the samples at the even indices of `length` zeros, mirrored
    about the edge samples and convolved with [1 4 6 4 1] / 8, written polyphase (even outputs
    (u[m-1] + 6 u[m] + u[m+1]) / 8, odd outputs (u[m] + u[m+1]) / 2), the MEX file's length-5 quirk
    included."""
    m = samples.shape[axis]
    if m != (length + 1) // 2 or m < 2:
        raise ValueError(f"cannot upsample {m} samples to {length}")
    past_end = _take(samples, axis, m - 1, m) if length % 2 == 0 else _take(samples, axis, m - 2, m - 1)
    u = torch.cat([_take(samples, axis, 1, 2), samples, past_end], dim=axis)   # u[-1] .. u[m]
    even = 0.125 * (_take(u, axis, 0, m) + _take(u, axis, 2, m + 2)) + 0.75 * _take(u, axis, 1, m + 1)
    odd = 0.5 * (_take(u, axis, 1, 1 + length // 2) + _take(u, axis, 2, 2 + length // 2))
    if length == 5:                      # the last of 5 outputs misses the mirrored copy of u[1]
        _take(even, axis, 2, 3).sub_(0.125 * _take(samples, axis, 1, 2))
    shape = list(samples.shape)
    shape[axis] = length
    out = samples.new_empty(shape)
    _take(out, axis, 0, None, 2).copy_(even)
    _take(out, axis, 1, None, 2).copy_(odd)
    return out
