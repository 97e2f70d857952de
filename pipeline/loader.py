"""The RCNN's input from a tensors store (tensors.h5, pipeline/jitter.py): the training clips' per-channel
statistics for input normalisation, and one epoch of shuffled mini-batches streamed from the store, so that
host memory holds at most two shuffle buffers and a batch whatever the store's size (pipeline/train.py)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import h5py
import numpy as np
from tqdm import tqdm

SHUFFLE_BUFFER_BYTES = 512 * 2**20   # ~60 CASME II clips x 48 variants; two such buffers at most


# --- input normalisation ----------------------------------------------------------------------------

def channel_histograms(x: h5py.Dataset | np.ndarray, rows: np.ndarray) -> np.ndarray:
    """(3, 256) counts of each grey level per colour channel over all variants of the given clips."""
    histograms = np.zeros((3, 256), dtype=np.int64)
    for row in tqdm(rows, desc="input statistics", unit="clip", file=sys.stderr):
        clip = x[row]                                   # (V, 3, pixels, frames) uint8
        for channel in range(3):
            histograms[channel] += np.bincount(clip[:, channel].ravel(), minlength=256)
    return histograms


def mean_std_from_histograms(histograms: np.ndarray) -> tuple[list[float], list[float]]:
    """Per-channel mean and standard deviation of the pixel values in [0, 1] units.

    The std is floored at one grey level so that a constant channel does not divide by zero.
    """
    values = np.arange(256) / 255.0
    counts = histograms.sum(axis=1)
    mean = histograms @ values / counts
    var = histograms @ values**2 / counts - mean**2
    std = np.maximum(np.sqrt(np.maximum(var, 0.0)), 1 / 255)
    return mean.tolist(), std.tolist()


# --- streaming, shuffled mini-batches ---------------------------------------------------------------

def read_clips(x: h5py.Dataset | np.ndarray, rows: np.ndarray) -> np.ndarray:
    """All variants of the given clips, (len(rows), V, 3, pixels, frames); rows read in file order."""
    out = np.empty((len(rows), *x.shape[1:]), dtype=x.dtype)
    for i, row in enumerate(rows):
        out[i] = x[row]
    return out


def shuffled_batches(x: h5py.Dataset | np.ndarray, rows: np.ndarray, labels: np.ndarray, batch_size: int,
                     rng: np.random.Generator, clips_per_buffer: int
                     ) -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """One epoch over every variant of every clip in `rows`, each sample exactly once.

    Yields (samples (B, 3, pixels, frames) uint8, labels (B,), sample ids (B,) = row * V + variant).
    Clips are visited in a random order, `clips_per_buffer` at a time; the samples of a buffer (plus
    the few left over from the previous one) are shuffled and cut into batches of `batch_size`, the
    last batch of the epoch may be smaller. The next buffer is read by a thread meanwhile.
    """
    n_variants = x.shape[1]
    order = rng.permutation(rows)
    groups = [np.sort(order[i:i + clips_per_buffer]) for i in range(0, len(order), clips_per_buffer)]
    carry_x = np.empty((0, *x.shape[2:]), dtype=x.dtype)
    carry_y = carry_id = np.empty(0, dtype=np.int64)
    with ThreadPoolExecutor(max_workers=1) as reader:
        pending = reader.submit(read_clips, x, groups[0]) if groups else None
        for g, group in enumerate(groups):
            buffer = pending.result().reshape(-1, *x.shape[2:])       # (clips * V, 3, pixels, frames)
            if g + 1 < len(groups):
                pending = reader.submit(read_clips, x, groups[g + 1])
            buffer_y = np.repeat(labels[group], n_variants)
            buffer_id = (group[:, None] * n_variants + np.arange(n_variants)).ravel()
            perm = rng.permutation(len(buffer))
            if len(carry_y):                                          # top up last buffer's remainder
                take, perm = perm[:batch_size - len(carry_y)], perm[batch_size - len(carry_y):]
                carry_x = np.concatenate([carry_x, buffer[take]])
                carry_y = np.concatenate([carry_y, buffer_y[take]])
                carry_id = np.concatenate([carry_id, buffer_id[take]])
                if len(carry_y) < batch_size:
                    continue
                yield carry_x, carry_y, carry_id
            n_full = len(perm) // batch_size * batch_size
            for start in range(0, n_full, batch_size):
                batch = perm[start:start + batch_size]
                yield buffer[batch], buffer_y[batch], buffer_id[batch]
            rest = perm[n_full:]
            carry_x, carry_y, carry_id = buffer[rest], buffer_y[rest], buffer_id[rest]
    if len(carry_y):
        yield carry_x, carry_y, carry_id
