"""The onset-apex flow networks: STSTNet and OFF-ApexNet, each a Table 2 row trained per fold on the flow
stage's u, v and strain (data/{ds}/flow.h5, pipeline/flow.py) with a fixed schedule.

STSTNet (Liong, Gan, See, Khor & Huang, "Shallow Triple Stream Three-dimensional CNN (STSTNet) for
Micro-expression Recognition", FG 2019; the authors' code: christy1206/STSTNet, main.py):
  input 28 x 28 x 3 (optical strain, horizontal and vertical flow of onset -> apex, TV-L1); three
  parallel streams of one 3 x 3 convolution each, with 3, 5 and 8 filters (padding 2, so 30 x 30),
  each followed by ReLU, batch normalisation, 3 x 3 max pooling of stride 3 (padding 1: 10 x 10) and
  dropout 0.5; the 16 maps concatenated, 2 x 2 average pooling (5 x 5 x 16 = 400), one fully
  connected layer to the classes. Adam, learning rate 5e-5, batch 256, cross-entropy; 500 epochs in
  the paper (the authors' PyTorch port runs 800). 1,683 parameters for 3 classes
  (448 conv + 32 batch norm + 1,203 fully connected).
OFF-ApexNet (Gan, Liong, Yau, Huang & Tan, "OFF-ApexNet on micro-expression recognition system",
Signal Processing: Image Communication 74, 2019):
  two streams, one on the horizontal and one on the vertical onset -> apex flow, 28 x 28 each; per
  stream a 5 x 5 convolution of 6 filters, 2 x 2 max pooling, a 5 x 5 convolution of 16 filters,
  2 x 2 max pooling ("same" padding: 7 x 7 x 16); the two streams flattened and concatenated
  (1,568), fully connected layers of 1,024 and 1,024 units (ReLU), and one to the classes. Adam,
  learning rate 1e-4, cross-entropy. 2,664,475 parameters for 3 classes.

Where the papers are silent or could not be checked here, and what merflow does:
- input scaling: both papers' code reads the flow as 8-bit images, each channel of a clip min-max
  normalised; merflow normalises each channel of each clip to [0, 255] the same way (float, not
  rounded);
- OFF-ApexNet's epoch count, batch size and dropout: not established from the paper here; merflow
  trains `epochs` (params.yaml, 3000 by default) in batches of `batch_size` (256, as STSTNet's code),
  with dropout 0.5 after each 1,024-unit layer (`dropout`);
- initialisation: PyTorch's defaults, seeded (`seed`); training clips are shuffled every epoch;
- no early stopping: by default (selection `last`) the network after the last epoch predicts the test
  clips (the schedule is fixed before any test clip is seen, as the authors' STSTNet code also scores its
  last epoch). Nothing of the test fold is read during training. The test clips are scored after every
  epoch and kept in epochs.h5, from which `selection: test` (audits only) and the inner-validation
  selection are made (pipeline/selection.py).

Per fold, `flownet_fold` writes predictions.csv and metrics.json (pipeline/fold_results.py), the files of
every other Table 2 row, epochs.h5, and no model file; the fold stages (pipeline/baselines/flownet_folds.py) call it,
or read the fold from every fold trained together (pipeline/baselines/stacked.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pipeline.artifacts import provenance
from pipeline.devices import keep_freed_memory
from pipeline.flow import read_flow
from pipeline.fold_results import class_indices
from pipeline.selection import fold_rows, write_fold_with_epochs

U, V, STRAIN = 0, 1, 2           # channels of a flow store's flow_<size>


class STSTNet(nn.Module):
    """Three one-layer streams (3, 5 and 8 filters of 3 x 3) on strain, u and v; concatenated; one FC."""

    STREAMS = (3, 5, 8)

    def __init__(self, n_classes: int, input_size: int = 28, in_channels: int = 3, dropout: float = 0.5):
        super().__init__()
        self.streams = nn.ModuleList(nn.Sequential(
            nn.Conv2d(in_channels, width, kernel_size=3, padding=2), nn.ReLU(), nn.BatchNorm2d(width),
            nn.MaxPool2d(kernel_size=3, stride=3, padding=1), nn.Dropout(dropout)) for width in self.STREAMS)
        self.pool = nn.AvgPool2d(kernel_size=2, stride=2)
        side = ((input_size + 2 * 2 - 3 + 1) + 2 * 1 - 3) // 3 + 1     # conv (padding 2), then max pool
        self.features = sum(self.STREAMS) * (side // 2) ** 2
        self.fc = nn.Linear(self.features, n_classes)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = torch.cat([stream(x) for stream in self.streams], dim=1)
        return self.fc(torch.flatten(self.pool(x), 1))


class OFFApexNet(nn.Module):
    """Two streams (u, v) of conv 5x5/6, pool, conv 5x5/16, pool; concatenated; FC 1024, 1024, classes."""

    def __init__(self, n_classes: int, input_size: int = 28, hidden: int = 1024, dropout: float = 0.5):
        super().__init__()
        self.streams = nn.ModuleList(nn.Sequential(
            nn.Conv2d(1, 6, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2),
            nn.Conv2d(6, 16, kernel_size=5, padding=2), nn.ReLU(), nn.MaxPool2d(2)) for _ in range(2))
        self.features = 2 * 16 * (input_size // 4) ** 2
        self.classifier = nn.Sequential(
            nn.Linear(self.features, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, hidden), nn.ReLU(), nn.Dropout(dropout),
            nn.Linear(hidden, n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        streams = [torch.flatten(stream(x[:, i:i + 1]), 1) for i, stream in enumerate(self.streams)]
        return self.classifier(torch.cat(streams, dim=1))


def parameter_count(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters() if p.requires_grad)


def normalise_channels(flow: np.ndarray) -> np.ndarray:
    """(n, C, H, W) float32 with each channel of each clip min-max scaled to [0, 255] (a flat one to 0),
    as the flow images the papers' code reads."""
    flow = np.asarray(flow, dtype=np.float32)
    low = flow.min(axis=(2, 3), keepdims=True)
    span = flow.max(axis=(2, 3), keepdims=True) - low
    return np.where(span > 0, (flow - low) / np.where(span > 0, span, 1) * 255, 0).astype(np.float32)


def network_inputs(method: str, flow: np.ndarray) -> np.ndarray:
    """The channels a method reads, in its order: STSTNet strain, u, v; OFF-ApexNet u, v."""
    order = {"ststnet": [STRAIN, U, V], "off_apexnet": [U, V]}[method]
    return normalise_channels(flow[:, order])


def build_network(method: str, n_classes: int, input_size: int, dropout: float) -> nn.Module:
    if method == "ststnet":
        return STSTNet(n_classes, input_size, dropout=dropout)
    if method == "off_apexnet":
        return OFFApexNet(n_classes, input_size, dropout=dropout)
    raise ValueError(f"unknown flow network {method!r}")


def fit_network(model: nn.Module, x: torch.Tensor, y: torch.Tensor, *, epochs: int, lr: float, batch_size: int,
                seed: int, desc: str = "train", on_epoch: Callable[[nn.Module], None] | None = None) -> list[float]:
    """Adam on cross-entropy for a fixed number of epochs, shuffled batches; the mean loss of each epoch.
    `on_epoch` is called with the model after every epoch (and must leave it in training mode)."""
    optimizer = torch.optim.Adam(model.parameters(), lr=lr)
    generator = torch.Generator().manual_seed(seed)
    losses = []
    model.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", mininterval=5):
        total = 0.0
        for batch in torch.randperm(len(x), generator=generator).split(batch_size):
            if len(batch) < 2 and any(isinstance(m, nn.BatchNorm2d) for m in model.modules()):
                continue            # batch norm cannot train on a single clip
            loss = F.cross_entropy(model(x[batch]), y[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += float(loss.detach()) * len(batch)
        losses.append(total / len(x))
        if on_epoch is not None:
            on_epoch(model)
    return losses


class EpochRecorder:
    """An `on_epoch` that scores fixed inputs after every epoch, in eval mode (no dropout, batch norm's
    running statistics, no random draw: training goes on exactly as without it)."""

    def __init__(self, x: torch.Tensor, batch_size: int = 256):
        self.x, self.batch_size, self.epochs = x, batch_size, []

    @torch.inference_mode()
    def __call__(self, model: nn.Module) -> None:
        model.eval()
        parts = [model(part).softmax(dim=1).float().cpu() for part in self.x.split(self.batch_size)]
        self.epochs.append(torch.cat(parts).numpy() if parts else np.zeros((0, 0), dtype=np.float32))
        model.train()

    def probabilities(self) -> np.ndarray:
        """(epochs, inputs, classes)."""
        return np.stack(self.epochs)


def flownet_fold(method: str, flow_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, classes: Sequence[str],
                 input_size: int, epochs: int, lr: float, batch_size: int, dropout: float, seed: int,
                 threads: int, selection: str = "last", inner: Mapping[str, Any] | None = None) -> None:
    """Train `method` on the training clips of `fold` (fixed schedule; with selection inner, without its
    validation subjects), score its test clips after every epoch, write the outputs."""
    started = time.perf_counter()
    fold = int(fold)
    params = dict(input_size=input_size, epochs=epochs, lr=lr, batch_size=batch_size, dropout=dropout, seed=seed)
    torch.set_num_threads(threads)
    keep_freed_memory()
    flow, clips = read_flow(flow_h5, input_size)
    labels = torch.from_numpy(class_indices(clips["label"].tolist(), classes, os.fspath(flow_h5)))
    folds = pd.read_csv(folds_csv, dtype={"clip_id": str, "subject": str, "label": str})
    rows = fold_rows(clips, folds, fold, os.fspath(flow_h5), selection, inner)
    inputs = torch.from_numpy(network_inputs(method, flow))

    torch.manual_seed(seed)
    model = build_network(method, len(classes), input_size, dropout)
    recorder = EpochRecorder(inputs[rows.watched])
    losses = fit_network(model, inputs[rows.train], labels[rows.train], epochs=epochs, lr=lr, batch_size=batch_size,
                         seed=seed, desc=f"{method} fold {fold}", on_epoch=recorder)
    record = provenance(method, {**params, "fold": fold, "selection": selection}, {"flow": flow_h5, "folds": folds_csv})
    extra = {"n_train_clips": len(rows.train), "method": method, "fold": fold, "parameters": parameter_count(model),
             "final_train_loss": round(losses[-1], 6) if losses else None,
             "seconds": round(time.perf_counter() - started, 3), "provenance": record}
    write_fold_with_epochs(out_dir, clips, rows.test, rows.validation, recorder.probabilities(), losses,
                           classes=classes, selection=selection, inner=inner, extra=extra, record=record)
