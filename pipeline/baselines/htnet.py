"""HTNet (Wang, Zhang, Chen et al., "HTNet for micro-expression recognition", Neurocomputing 2024): a
hierarchical transformer on the onset -> apex flow of four facial regions. A Table 2 row trained per fold
(one job per fold: at the published size its weights alone are 560 MB, so folds are not stacked).

Written from the authors' code (wangzhifengharrison/HTNet: Model.py, main_HTNet.py), not copied:

- input: u, v and optical strain at 28 x 28 (the flow stage's `flow_28`), each channel of each clip
  min-max scaled to [0, 255] as the other flow networks' (the authors feed 8-bit flow images read with
  cv2.imread; the code that made them is not public). Channel order u, v, strain: the network is trained
  from scratch, so an order is a relabelling of the first layer's inputs.
- regions: five facial points on the 28 x 28 grid (left eye, right eye, nose tip, left and right mouth
  corners: MTCNN's five, main_HTNet.py lines 65-95), each clamped to [7, 21] and truncated to an integer
  as the authors do, and a 14 x 14 crop around each of four of them tiled into one 28 x 28 input:
  [left eye | right eye] over [left mouth corner | right mouth corner] (the authors' names l_eye, l_lips,
  r_eye, r_lips, lines 112-121 and 202-204, index MTCNN's points 0, 1, 3, 4: both eyes, then both mouth
  corners). Where merflow departs:
  * the points come from the aligned face's dlib landmarks (eye centres = the mean of each eye's six
    points, nose tip 30, mouth corners 48 and 54), mapped onto the 28 x 28 grid of the flow, instead of
    MTCNN run on the apex face already shrunk to 28 x 28 with a hard-coded fallback when it finds none
    (lines 70-84). The landmarks are the aligned clip's (one detection per clip, every frame warped with
    the same transform), so they fit the onset and apex alike;
  * the authors crop rows by the point's x and columns by its y (lines 112-121: `image[x-7:x+7, y-7:y+7]`),
    which moves every region off its feature; merflow crops rows by y and columns by x. `swap_xy: true`
    reproduces the authors' crops.
- network: Model.py's HTNet with image size 28, patch 7, dim 256, 3 heads, 3 hierarchies, block repeats
  (2, 2, 10), MLP ratio 4, no dropout: 139,582,982 parameters for 3 classes, as the authors' Model.py
  counts at that configuration (tests/test_htnet.py), and the same outputs as Model.py given the same
  weights (checked against it with einops, which merflow does not need). At 28 / 7 = 4 x 4 patches and 3
  hierarchies every block holds one patch, so each attention layer attends over a single token.
- training: Adam, lr 5e-5, batch 256, 800 epochs, cross-entropy (main_HTNet.py lines 162-164). The authors'
  DataLoader does not shuffle and sets no seed; merflow shuffles each epoch and seeds everything (`seed`),
  as for every network. The authors score the test subject after every epoch and keep the best
  (line 295): here that is `selection: test`, an audit row; the default row is the last epoch's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
from torch import nn

from pipeline.artifacts import provenance
from pipeline.baselines.flownets import EpochRecorder, fit_network, normalise_channels, parameter_count
from pipeline.devices import keep_freed_memory, resolve_device
from pipeline.errors import BadInputError
from pipeline.flow import read_flow
from pipeline.fold_results import class_indices
from pipeline.selection import fold_rows, write_fold_with_epochs

REGION = 14                      # a region's side on the 28 x 28 grid
LOW, HIGH = 7, 21                # the authors' clamp of the points (main_HTNet.py lines 86-92)


class ChannelNorm(nn.Module):
    """Model.py's LayerNorm: over the channels of each pixel, with a per-channel gain and bias."""

    def __init__(self, dim: int, eps: float = 1e-5):
        super().__init__()
        self.eps = eps
        self.g = nn.Parameter(torch.ones(1, dim, 1, 1))
        self.b = nn.Parameter(torch.zeros(1, dim, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        var, mean = torch.var_mean(x, dim=1, correction=0, keepdim=True)
        return (x - mean) / (var + self.eps).sqrt() * self.g + self.b


class Attention(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float = 0.0):
        super().__init__()
        self.heads, self.scale = heads, (dim // heads) ** -0.5
        inner = (dim // heads) * heads
        self.norm = ChannelNorm(dim)
        self.to_qkv = nn.Conv2d(dim, inner * 3, 1, bias=False)
        self.to_out = nn.Sequential(nn.Conv2d(inner, dim, 1), nn.Dropout(dropout))
        self.dropout = nn.Dropout(dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, _, h, w = x.shape
        q, k, v = (t.reshape(b, self.heads, -1, h * w).transpose(2, 3)
                   for t in self.to_qkv(self.norm(x)).chunk(3, dim=1))
        attention = self.dropout((q @ k.transpose(2, 3) * self.scale).softmax(dim=-1))
        out = (attention @ v).transpose(2, 3).reshape(b, -1, h, w)
        return self.to_out(out)


class FeedForward(nn.Module):
    def __init__(self, dim: int, mult: int, dropout: float = 0.0):
        super().__init__()
        self.norm = ChannelNorm(dim)
        self.net = nn.Sequential(nn.Conv2d(dim, dim * mult, 1), nn.GELU(), nn.Dropout(dropout),
                                 nn.Conv2d(dim * mult, dim, 1), nn.Dropout(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(self.norm(x))


class Transformer(nn.Module):
    def __init__(self, dim: int, seq_len: int, depth: int, heads: int, mult: int, dropout: float = 0.0):
        super().__init__()
        self.pos_emb = nn.Parameter(torch.randn(seq_len))
        self.layers = nn.ModuleList(nn.ModuleList([Attention(dim, heads, dropout), FeedForward(dim, mult, dropout)])
                                    for _ in range(depth))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h, w = x.shape[2:]
        x = x + self.pos_emb[:h * w].reshape(1, 1, h, w)
        for attention, feed_forward in self.layers:
            x = attention(x) + x
            x = feed_forward(x) + x
        return x


def to_blocks(x: torch.Tensor, blocks: int) -> torch.Tensor:
    """(b, c, blocks*h, blocks*w) -> (b*blocks*blocks, c, h, w): Model.py's 'b c (b1 h) (b2 w) -> (b b1 b2) c h w'."""
    b, c, height, width = x.shape
    x = x.reshape(b, c, blocks, height // blocks, blocks, width // blocks).permute(0, 2, 4, 1, 3, 5)
    return x.reshape(b * blocks * blocks, c, height // blocks, width // blocks)


def from_blocks(x: torch.Tensor, blocks: int) -> torch.Tensor:
    n, c, h, w = x.shape
    x = x.reshape(n // blocks ** 2, blocks, blocks, c, h, w).permute(0, 3, 1, 4, 2, 5)
    return x.reshape(n // blocks ** 2, c, blocks * h, blocks * w)


class HTNet(nn.Module):
    """Model.py's HTNet: patch embedding, then per hierarchy (finest first) a transformer inside each block
    and an aggregation (3 x 3 conv, channel norm, 3 x 3 max pooling of stride 2) that doubles the width."""

    def __init__(self, *, n_classes: int, image_size: int = 28, patch_size: int = 7, dim: int = 256, heads: int = 3,
                 hierarchies: int = 3, block_repeats: Sequence[int] = (2, 2, 10), mlp_mult: int = 4,
                 channels: int = 3, dropout: float = 0.0):
        super().__init__()
        if image_size % patch_size:
            raise ValueError(f"htnet: image_size {image_size} is not a multiple of patch_size {patch_size}")
        if len(block_repeats) != hierarchies:
            raise ValueError(f"htnet: {len(block_repeats)} block_repeats for {hierarchies} hierarchies")
        self.patch_size = patch_size
        seq_len = (image_size // patch_size // 2 ** (hierarchies - 1)) ** 2
        widths = [dim * 2 ** i for i in range(hierarchies)]
        self.embed = nn.Conv2d(channels * patch_size ** 2, widths[0], 1)
        self.levels = list(reversed(range(hierarchies)))
        self.layers = nn.ModuleList(nn.ModuleList([
            Transformer(widths[i], max(seq_len, 1), block_repeats[i], heads * 2 ** i, mlp_mult, dropout),
            nn.Sequential(nn.Conv2d(widths[i], widths[i + 1], 3, padding=1), ChannelNorm(widths[i + 1]),
                          nn.MaxPool2d(3, stride=2, padding=1)) if i + 1 < hierarchies else nn.Identity()])
            for i in range(hierarchies))
        self.head_norm = ChannelNorm(widths[-1])
        self.head = nn.Linear(widths[-1], n_classes)

    def forward(self, image: torch.Tensor) -> torch.Tensor:
        b, c, height, width = image.shape
        p = self.patch_size
        x = image.reshape(b, c, height // p, p, width // p, p).permute(0, 3, 5, 1, 2, 4)
        x = self.embed(x.reshape(b, p * p * c, height // p, width // p))
        for level, (transformer, aggregate) in zip(self.levels, self.layers, strict=True):
            x = aggregate(from_blocks(transformer(to_blocks(x, 2 ** level)), 2 ** level))
        return self.head(self.head_norm(x).mean(dim=(2, 3)))


# --- input ----------------------------------------------------------------------------------------------


def five_points(landmarks: np.ndarray, height: int, width: int, size: int = 28) -> np.ndarray:
    """(5, 2) x, y on the size x size grid of the flow (the aligned frame of height x width resized):
    left eye centre, right eye centre, nose tip, left and right mouth corners (image left and right, as
    MTCNN orders them), from dlib's 68 points in aligned-frame pixels."""
    landmarks = np.asarray(landmarks, dtype=np.float64)
    points = np.stack([landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0), landmarks[30], landmarks[48],
                       landmarks[54]])
    scale = np.array([size / width, size / height])
    return (points + 0.5) * scale - 0.5


def region_input(image: np.ndarray, points: np.ndarray, swap_xy: bool = False) -> np.ndarray:
    """The 28 x 28 input of one clip (C, 28, 28): 14 x 14 crops around the eyes (top) and the mouth corners
    (bottom), each point clamped to [7, 21] and truncated as the authors do; rows by y, columns by x (the
    authors' crops, rows by x: `swap_xy`)."""
    centres = np.clip(points, LOW, HIGH).astype(int)
    half = REGION // 2
    crops = []
    for x, y in centres[[0, 1, 3, 4]]:
        row, column = (x, y) if swap_xy else (y, x)
        crops.append(image[:, row - half:row + half, column - half:column + half])
    return np.concatenate([np.concatenate(crops[:2], axis=2), np.concatenate(crops[2:], axis=2)], axis=1)


def read_points(aligned_h5: str | os.PathLike, clip_ids: Sequence[str], size: int) -> np.ndarray:
    """(n, 5, 2) the five points of each clip on the size x size grid, from the aligned store's landmarks."""
    points = []
    with h5py.File(aligned_h5, "r") as h5:
        for clip_id in clip_ids:
            group = h5.get(f"clips/{clip_id}")
            if group is None or "landmarks" not in group:
                raise BadInputError(clip_id, aligned_h5, "has no landmarks for this clip (HTNet reads them)")
            height, width = group["frames"].shape[1:3]
            points.append(five_points(group["landmarks"][()], height, width, size))
    return np.stack(points)


def htnet_inputs(flow: np.ndarray, points: np.ndarray, swap_xy: bool = False) -> np.ndarray:
    """float32 (n, 3, 28, 28): each clip's u, v and strain scaled to [0, 255], its four regions tiled."""
    images = normalise_channels(flow)
    return np.stack([region_input(image, p, swap_xy) for image, p in zip(images, points, strict=True)])


# --- a fold ---------------------------------------------------------------------------------------------


def htnet_fold(flow_h5: Path, aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, classes: Sequence[str],
               input_size: int, patch_size: int, dim: int, heads: int, hierarchies: int, block_repeats: Sequence[int],
               mlp_mult: int, epochs: int, lr: float, batch_size: int, swap_xy: bool, device: str, seed: int,
               threads: int, selection: str = "last", inner: Mapping[str, Any] | None = None) -> None:
    """Train HTNet on the training clips of `fold` (fixed schedule; with selection inner, without its
    validation subjects), score its test clips after every epoch, write predictions, metrics and epochs."""
    started = time.perf_counter()
    fold = int(fold)
    params = dict(input_size=input_size, patch_size=patch_size, dim=dim, heads=heads, hierarchies=hierarchies,
                  block_repeats=list(block_repeats), mlp_mult=mlp_mult, epochs=epochs, lr=lr, batch_size=batch_size,
                  swap_xy=swap_xy, seed=seed)
    torch.set_num_threads(threads)
    keep_freed_memory()
    target = resolve_device(device)
    flow, clips = read_flow(flow_h5, input_size)
    points = read_points(aligned_h5, clips["clip_id"].tolist(), input_size)
    labels = torch.from_numpy(class_indices(clips["label"].tolist(), classes, os.fspath(flow_h5)))
    folds = pd.read_csv(folds_csv, dtype={"clip_id": str, "subject": str, "label": str})
    rows = fold_rows(clips, folds, fold, os.fspath(flow_h5), selection, inner)
    inputs = torch.from_numpy(htnet_inputs(flow, points, swap_xy))

    torch.manual_seed(seed)
    model = HTNet(n_classes=len(classes), image_size=input_size, patch_size=patch_size, dim=dim, heads=heads,
                  hierarchies=hierarchies, block_repeats=block_repeats, mlp_mult=mlp_mult).to(target)
    recorder = EpochRecorder(inputs[rows.watched].to(target))
    training = time.perf_counter()
    losses = fit_network(model, inputs[rows.train].to(target), labels[rows.train].to(target), epochs=epochs, lr=lr,
                         batch_size=batch_size, seed=seed, desc=f"htnet fold {fold}", on_epoch=recorder)
    train_seconds = time.perf_counter() - training
    seconds = time.perf_counter() - started
    record = provenance("htnet", {**params, "fold": fold, "selection": selection},
                        {"flow": flow_h5, "aligned": aligned_h5, "folds": folds_csv})
    extra = {"n_train_clips": len(rows.train), "method": "htnet", "fold": fold, "parameters": parameter_count(model),
             "final_train_loss": round(losses[-1], 6) if losses else None, "device": str(target),
             "samples_per_second": round(len(rows.train) * epochs / max(train_seconds, 1e-9), 1),   # training
             "seconds": round(seconds, 3), "provenance": record}
    write_fold_with_epochs(out_dir, clips, rows.test, rows.validation, recorder.probabilities(), losses,
                           classes=classes, selection=selection, inner=inner, extra=extra, record=record)


def htnet_fold_stage(flow_h5: Path, aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path,
                     **params: Any) -> None:
    """HTNet on one fold, the last epoch's network scored."""
    htnet_fold(flow_h5, aligned_h5, folds_csv, fold, out_dir, **params)


def htnet_inner_fold_stage(flow_h5: Path, aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path,
                           **params: Any) -> None:
    """HTNet on one fold, the epoch chosen on validation subjects of its training clips."""
    htnet_fold(flow_h5, aligned_h5, folds_csv, fold, out_dir, selection="inner", **params)

