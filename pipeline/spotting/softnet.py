"""A learned spotter after SOFTNet: a shallow three-stream CNN regressing, frame by frame, whether an expression
is under way, trained leave-one-subject-out; its smoothed output's peaks become intervals.

Source: Liong, Gan, See, Khor & Huang, "Shallow optical flow three-stream CNN for macro- and micro-expression
spotting from long videos", ICIP 2021, and its authors' code, github.com/genbing99/SoftNet-SpotME
(its code as last changed in September 2021; file:line below). Its inputs and pseudo-labels:
pipeline/spotting/softnet_features.py.

Reproduced
    - Network (training.py:104-124): one stream per channel, u with 3, v with 5 and strain with 8 maps of a 5 x 5
      convolution ('same', ReLU; 5 x 5 in the code, not 3 x 3) and a 3 x 3 max pool of
      stride 3 (14 x 14); the 16 maps concatenated, a 2 x 2 max pool (7 x 7 x 16 = 784), a dense layer of 400
      (ReLU) and one linear output: 314,817 parameters. Keras's initialisation (Glorot-uniform weights, zero
      biases). Every input channel min-max scaled to [0, 1] per sample (cv2.normalize in `generator`, l.66-81;
      a flat channel becomes 0, as cv2 does).
    - Training (l.126-127, l.182-183, l.178-222): mean squared error, plain SGD at learning rate 0.0005, 10 epochs
      in batches of 12, the same initial weights for every left-out subject (l.188, l.222); the label-0 samples
      randomly cut down to half the majority class's count, all others kept (l.201-213); for micro-expressions
      every expression sample also added flipped left-right, blurred (7 x 7 Gaussian) and with Gaussian noise
      of variance 0.01 (skimage's random_noise default) (l.89-102, l.216-217).
    - Spotting (l.130-159): the score s_i of frame i (the sample of frames i .. i + k) smoothed as
      S_j = mean(s_{j-k} .. s_{j+k-1}) (2k samples), the threshold mean + p (max - mean) of S over the video
      with p = 0.55 (l.152, l.186), scipy's find_peaks(height=threshold, distance=k) (l.153), each peak j the
      interval [j - k, j + k] (l.157, in the code's coordinates shifted by k: l.143 and l.159). Separate passes
      for micro- and macro-expressions with their own k, pseudo-labels and networks (main.py).
    - k: SOFTNet computes k = int((N + 1) / 2) from the mean length N of the dataset's expressions of the type
      (load_label.py:93-101): CAS(ME)^2 6 (micro) and 18 (macro) frames at 30 fps, SAMM-LV 37 and 174 at 200
      fps. Here k comes from seconds, as for MDMD (spot.MDMDSpotter): 0.2 s and 0.6 s by default (CAS(ME)^2's;
      SAMM-LV's micro k is 0.185 s, its macro k 0.87 s: set k_macro_seconds = 0.87 to follow it there).

Departures
    - Every video is trained on and scored, also those without an expression of the pass's type. SOFTNet drops
      those videos from both (load_label.py:65-89), so their false positives are never counted.
    - Training samples are reshuffled every epoch with a seeded numpy Generator (SOFTNet shuffles once, l.221,
      and Keras's generator then walks that order), and the network is seeded (torch.manual_seed): deterministic
      on CPU. The last short batch of an epoch is used.
    - Augmentation's noise is added after the min-max scaling, clipped to [0, 1]; SOFTNet adds it to the raw flow
      (in pixels), where skimage clips it to [-1, 1], i.e. caps the flow at one pixel.
    - Smoothing needs all 2k samples of a window (NaN where a frame has no input, i.e. near a stretch without a
      face or the video's end); peaks are looked for in each stretch of defined values separately, whose ends
      are never peaks, as the ends of SOFTNet's per-video curve. SOFTNet's loop leaves out the video's last
      sample (range(len(score[k:-k])) windows); here the last complete window counts too. Intervals are clipped
      to the video; overlapping ones are kept, as in SOFTNet.
    - An interval is typed by its length (at most micro_max_seconds: micro), and each pass keeps its own type,
      as spot.spot_intervals does for MDMD; SOFTNet's intervals take the pass's type.

Memory: a frame's input is 21 KB; a pass holds every video's inputs (a 200 fps hour: 15 GB). The training set of
a fold is indexed, not copied (`ConcatenatedRows`), so inputs may be np.memmap arrays.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

import cv2
import h5py
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from scipy.signal import find_peaks
from torch import nn

from pipeline.spotting.mdmd import SPOT_COLUMNS
from pipeline.spotting.softnet_features import pseudo_labels, softnet_inputs
from pipeline.spotting.spot import INTERVAL_COLUMNS, runs, video_intervals

AUGMENTATIONS = 3               # flipped, blurred, noisy: the extra copies of a micro-expression sample
NOISE_STD = 0.1                 # skimage random_noise's default variance 0.01


@dataclass(frozen=True)
class SoftNetSpotter:
    """The SOFTNet spotter's params (module docstring)."""
    k_micro_seconds: float = 0.2     # SOFTNet's k: CAS(ME)^2 6 frames at 30 fps (SAMM-LV 37 at 200 fps)
    k_macro_seconds: float = 0.6     # CAS(ME)^2 18 frames at 30 fps (SAMM-LV 174 at 200 fps: 0.87 s)
    p: float = 0.55                  # threshold: mean + p (max - mean) of the smoothed curve
    flow: str = "dis"                # dis or tvl1 (SOFTNet: tvl1)
    epochs: int = 10
    batch_size: int = 12
    lr: float = 0.0005
    seed: int = 0
    threads: int = 1
    micro_max_seconds: float = 0.5   # MEGC: a micro-expression lasts at most 0.5 s
    augment_micro: bool = True       # flipped, blurred and noisy copies of the micro pass's expression samples

    def k(self, kind: str, fps: float) -> int:
        return max(1, round((self.k_micro_seconds if kind == "micro" else self.k_macro_seconds) * fps))


# --- the network ----------------------------------------------------------------------------------------------

@dataclass(frozen=True)
class SoftNetConfig:
    input_size: int = 42
    stream_maps: tuple[int, ...] = (3, 5, 8)     # u, v, strain
    kernel_size: int = 5
    stream_pool: int = 3
    merged_pool: int = 2
    hidden: int = 400


class SoftNet(nn.Module):
    """SOFTNet's three streams (one conv and pool per channel), concatenated, pooled, dense 400, one output."""

    def __init__(self, config: SoftNetConfig | None = None):
        super().__init__()
        config = config or SoftNetConfig()
        self.config = config
        self.streams = nn.ModuleList(nn.Sequential(
            nn.Conv2d(1, maps, config.kernel_size, padding=config.kernel_size // 2), nn.ReLU(),
            nn.MaxPool2d(config.stream_pool)) for maps in config.stream_maps)
        self.pool = nn.MaxPool2d(config.merged_pool)
        side = config.input_size // config.stream_pool // config.merged_pool
        self.hidden = nn.Linear(sum(config.stream_maps) * side * side, config.hidden)
        self.output = nn.Linear(config.hidden, 1)
        for layer in self.modules():
            if isinstance(layer, nn.Conv2d | nn.Linear):     # Keras's defaults, as SOFTNet was trained with
                nn.init.xavier_uniform_(layer.weight)
                nn.init.zeros_(layer.bias)
        self.epoch_losses: list[float] = []

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """(B, 3, 42, 42) min-max scaled u, v, strain -> (B,) scores."""
        merged = torch.cat([stream(x[:, i:i + 1]) for i, stream in enumerate(self.streams)], dim=1)
        hidden = F.relu(self.hidden(torch.flatten(self.pool(merged), 1)))
        return self.output(hidden).squeeze(1)


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def normalise_inputs(inputs: np.ndarray) -> np.ndarray:
    """Each channel of each sample min-max scaled to [0, 1], a flat one to 0 (SOFTNet's cv2.normalize)."""
    inputs = np.asarray(inputs, dtype=np.float32)
    low = inputs.min(axis=(2, 3), keepdims=True)
    span = inputs.max(axis=(2, 3), keepdims=True) - low
    return np.where(span > 0, (inputs - low) / np.where(span > 0, span, 1), 0).astype(np.float32)


class ConcatenatedRows:
    """Several (n_i, ...) arrays seen as one of sum(n_i) rows, read only where indexed (a fold's training set
    without a copy of its inputs)."""

    def __init__(self, parts: Sequence[np.ndarray]):
        self.parts = list(parts)
        self.offsets = np.cumsum([0] + [len(part) for part in self.parts])

    def __len__(self) -> int:
        return int(self.offsets[-1])

    def __getitem__(self, rows: np.ndarray) -> np.ndarray:
        rows = np.asarray(rows, dtype=np.int64)
        part_of = np.searchsorted(self.offsets, rows, side="right") - 1
        out = np.empty((len(rows), *self.parts[0].shape[1:]), dtype=np.float32)
        for part in np.unique(part_of):
            chosen = part_of == part
            out[chosen] = self.parts[part][rows[chosen] - self.offsets[part]]
        return out


# --- training -------------------------------------------------------------------------------------------------

def balanced_rows(labels: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """SOFTNet's rows of a training set: int(half the larger class's count) random label-0 rows and every other
    row, in order."""
    negatives = np.flatnonzero(labels == 0)
    others = np.flatnonzero(labels != 0)
    keep = min(len(negatives), max(len(negatives), len(others)) // 2)
    return np.sort(np.concatenate([rng.choice(negatives, size=keep, replace=False), others]))


def batch_inputs(inputs: np.ndarray | ConcatenatedRows, rows: np.ndarray, transforms: np.ndarray,
                 rng: np.random.Generator) -> np.ndarray:
    """A batch's inputs, each transformed (0 none, 1 flipped, 2 blurred, 3 noisy) and min-max scaled."""
    raw = np.array(inputs[rows], dtype=np.float32)
    for i in np.flatnonzero(transforms == 1):
        raw[i] = raw[i][..., ::-1].copy()
    for i in np.flatnonzero(transforms == 2):
        raw[i] = cv2.GaussianBlur(raw[i].transpose(1, 2, 0), (7, 7), 0).transpose(2, 0, 1)
    scaled = normalise_inputs(raw)
    noisy = transforms == 3
    if noisy.any():
        scaled[noisy] = np.clip(scaled[noisy] + rng.normal(0.0, NOISE_STD, scaled[noisy].shape), 0, 1)
    return scaled


def train_softnet(inputs: np.ndarray | ConcatenatedRows, labels: np.ndarray, *, epochs: int = 10,
                  batch_size: int = 12, lr: float = 0.0005, seed: int = 0, threads: int = 1, balance: bool = True,
                  augment: bool = False, config: SoftNetConfig | None = None) -> SoftNet:
    """A SoftNet trained on (N, 3, 42, 42) raw inputs (softnet_inputs) and their (N,) pseudo-labels with SOFTNet's
    schedule (module docstring), seeded; the mean loss of each epoch in `model.epoch_losses`. The model is
    returned in eval mode."""
    labels = np.asarray(labels, dtype=np.float32)
    if len(inputs) != len(labels):
        raise ValueError(f"{len(inputs)} inputs but {len(labels)} labels")
    rng = np.random.default_rng(seed)
    rows = balanced_rows(labels, rng) if balance else np.arange(len(labels))
    transforms = np.zeros(len(rows), dtype=np.int64)
    if augment:
        expression = rows[labels[rows] != 0]
        rows = np.concatenate([rows, np.tile(expression, AUGMENTATIONS)])
        transforms = np.concatenate([transforms, np.repeat(np.arange(1, AUGMENTATIONS + 1), len(expression))])
    if not len(rows):
        raise ValueError("no training samples")
    previous_threads = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        torch.manual_seed(seed)
        model = SoftNet(config)
        optimizer = torch.optim.SGD(model.parameters(), lr=lr)
        model.train()
        for _ in range(epochs):
            total = 0.0
            order = rng.permutation(len(rows))
            for batch in (order[first:first + batch_size] for first in range(0, len(rows), batch_size)):
                x = torch.from_numpy(batch_inputs(inputs, rows[batch], transforms[batch], rng))
                loss = F.mse_loss(model(x), torch.from_numpy(labels[rows[batch]]))
                optimizer.zero_grad(set_to_none=True)
                loss.backward()
                optimizer.step()
                total += float(loss.detach()) * len(batch)
            model.epoch_losses.append(total / len(rows))
    finally:
        torch.set_num_threads(previous_threads)
    return model.eval()


@torch.inference_mode()
def score_softnet(model: SoftNet, inputs: np.ndarray, batch_size: int = 128) -> np.ndarray:
    """The model's (N,) float64 scores of (N, 3, 42, 42) raw inputs."""
    model.eval()
    scores = [model(torch.from_numpy(normalise_inputs(inputs[first:first + batch_size]))).double().numpy()
              for first in range(0, len(inputs), batch_size)]
    return np.concatenate(scores) if scores else np.zeros(0)


# --- leave one subject out ------------------------------------------------------------------------------------

class SoftNetVideo(NamedTuple):
    """One video's inputs: its id, subject, (N, 3, 42, 42) inputs, their frame positions (N,) and its length."""
    video: str
    subject: str
    inputs: np.ndarray
    positions: np.ndarray
    n_frames: int


def loso_curves(videos: Sequence[SoftNetVideo | tuple[str, str, np.ndarray, np.ndarray, int]],
                labels: Mapping[str, np.ndarray], *, epochs: int = 10, batch_size: int = 12, lr: float = 0.0005,
                seed: int = 0, threads: int = 1, augment: bool = False, balance: bool = True,
                on_fold: Callable[[str, list[str]], None] | None = None) -> dict[str, np.ndarray]:
    """Each video's score curve (n_frames,), NaN where a frame has no input, from a SoftNet trained on every other
    subject's videos (labels: video -> (n_frames,) pseudo-labels by frame position). `on_fold(test subject,
    training video ids)` is called before each fold's training."""
    videos = [SoftNetVideo(*video) for video in videos]
    ids = [video.video for video in videos]
    if len(set(ids)) != len(ids):
        raise ValueError("video ids must be unique")
    curves: dict[str, np.ndarray] = {}
    for subject in sorted({video.subject for video in videos}):
        test = [video for video in videos if video.subject == subject]
        train = [video for video in videos if video.subject != subject]
        # The left-out subject's frames must never be trained on: checked here, not assumed from the split.
        if {v.video for v in train} & {v.video for v in test} or any(v.subject == subject for v in train):
            raise RuntimeError(f"the training set of subject {subject!r} holds its own videos")
        if not train:
            raise ValueError(f"subject {subject!r} is the only one: nothing to train on")
        train_labels = np.concatenate([np.asarray(labels[v.video], dtype=np.float32)[v.positions] for v in train])
        if not np.isfinite(train_labels).all():
            raise ValueError(f"non-finite pseudo-labels in the training set of subject {subject!r}")
        if on_fold is not None:
            on_fold(subject, [v.video for v in train])
        model = train_softnet(ConcatenatedRows([v.inputs for v in train]), train_labels, epochs=epochs,
                              batch_size=batch_size, lr=lr, seed=seed, threads=threads, augment=augment,
                              balance=balance)
        for video in test:
            curve = np.full(video.n_frames, np.nan)
            curve[video.positions] = score_softnet(model, video.inputs)
            curves[video.video] = curve
    return {video_id: curves[video_id] for video_id in ids}


# --- spotting -------------------------------------------------------------------------------------------------

def smooth_curve(curve: np.ndarray, k: int) -> np.ndarray:
    """SOFTNet's score aggregation: S_j = mean(curve[j - k : j + k]), NaN where any of those 2k values is."""
    curve = np.asarray(curve, dtype=np.float64)
    smoothed = np.full(curve.shape, np.nan)
    if curve.size >= 2 * k:
        smoothed[k:curve.size - k + 1] = np.lib.stride_tricks.sliding_window_view(curve, 2 * k).mean(axis=-1)
    return smoothed


def spot_from_curve(curve: np.ndarray, *, k: int, p: float = 0.55, fps: float,
                    micro_max_seconds: float = 0.5) -> pd.DataFrame:
    """Intervals from a score curve as SOFTNet spots them (module docstring): onset, offset (0-based positions,
    inclusive), type (micro when at most micro_max_seconds long) and score (the smoothed curve at the peak)."""
    if k < 1 or fps <= 0:
        raise ValueError(f"k must be >= 1 and fps > 0, got k={k}, fps={fps}")
    smoothed = smooth_curve(curve, k)
    finite = np.isfinite(smoothed)
    rows = []
    if finite.any():
        mean = float(smoothed[finite].mean())
        threshold = mean + p * (float(smoothed[finite].max()) - mean)
        for start, stop in runs(finite):
            peaks, _ = find_peaks(smoothed[start:stop], height=threshold, distance=k)
            for peak in peaks + start:
                onset, offset = max(0, int(peak) - k), min(len(smoothed) - 1, int(peak) + k)
                kind = "micro" if offset - onset + 1 <= micro_max_seconds * fps + 1e-9 else "macro"
                rows.append({"onset": onset, "offset": offset, "type": kind, "score": float(smoothed[peak])})
    return pd.DataFrame(rows, columns=SPOT_COLUMNS).astype({"onset": "int64", "offset": "int64", "type": "object",
                                                            "score": "float64"})


def softnet_intervals(video: str, numbers: np.ndarray, curves: Mapping[str, np.ndarray], fps: float,
                      spotter: SoftNetSpotter) -> pd.DataFrame:
    """The intervals of one video from its micro and macro curves (spot.video_intervals: frame numbers inclusive,
    each pass keeping the intervals of its own type)."""
    return video_intervals(video, numbers, {
        kind: spot_from_curve(curve, k=spotter.k(kind, fps), p=spotter.p, fps=fps,
                              micro_max_seconds=spotter.micro_max_seconds) for kind, curve in curves.items()})


@dataclass
class SoftNetResult:
    """What `softnet_spot_videos` found: the intervals of every video, and its curves (kind -> video -> curve)."""
    intervals: pd.DataFrame
    curves: dict[str, dict[str, np.ndarray]] = field(default_factory=dict)


def softnet_spot_videos(videos: Sequence[tuple[str, str, h5py.Group]], truth: pd.DataFrame, spotter: SoftNetSpotter,
                        on_fold: Callable[[str, list[str]], None] | None = None) -> SoftNetResult:
    """Spot every (video id, subject, aligned cache group) leave-one-subject-out, a micro and a macro pass, with
    `truth` (video, onset, offset, type: inclusive frame numbers) giving the pseudo-labels of the training folds."""
    result = SoftNetResult(intervals=pd.DataFrame(columns=INTERVAL_COLUMNS))
    for kind in ("micro", "macro"):
        prepared, labels = [], {}
        for video, subject, group in videos:
            k = spotter.k(kind, float(group.attrs["fps"]))
            inputs, positions = softnet_inputs(group, k, spotter.flow)
            true = truth[(truth["video"] == video) & (truth["type"] == kind)]
            labels[video] = pseudo_labels(group["number"][()], true, k)
            prepared.append(SoftNetVideo(video, subject, inputs, positions, len(group["number"])))
        result.curves[kind] = loso_curves(
            prepared, labels, epochs=spotter.epochs, batch_size=spotter.batch_size, lr=spotter.lr, seed=spotter.seed,
            threads=spotter.threads, augment=spotter.augment_micro and kind == "micro", on_fold=on_fold)
    tables = []
    for video, _, group in videos:
        curves = {kind: result.curves[kind][video] for kind in result.curves}
        table = softnet_intervals(video, group["number"][()], curves, float(group.attrs["fps"]), spotter)
        if len(table):
            tables.append(table)
    if tables:
        result.intervals = pd.concat(tables, ignore_index=True)
    return result
