"""Train the RCNN (or its ablation without recurrence) on the training folds and test it on one held-out fold.

The schedule is the paper's (Sec. III-A): SGD with momentum 0.9 and weight decay 5e-4, mini-batches
of 64, learning rate 1e-3 multiplied by 0.5 after every epoch ("when all minibatches are traversed
and re-allocated randomly"), training stops when the rate falls below 1e-4, i.e. after 4 epochs.
Nothing about the test fold is used in training: no early stopping, no epoch picking, and the input
normalisation comes from the training clips only. The scored network is the last epoch's; params'
`selection` adds rows whose epoch is chosen otherwise (pipeline/selection.py).

Input, tensors.h5 (the tensors stage)::

    /x            uint8 (N, V, 3, pixels, frames)  N clips x V temporal-jitter variants, one chunk per clip
    /clip_id, /subject, /label   str (N,)
    /label_index  int64 (N,)                       index into the root attribute `classes` (JSON list)

and folds.csv (clip_id, subject, label, fold; and repeat with repeated k-fold). A clip's V variants
are one row of /x, so they are on the same side of the split by construction (asserted in
`pipeline.fold_results.split_fold`).

Output in out_dir, each file written atomically: model.pt (state_dict, config, classes, input
normalisation, params, provenance), predictions.csv (clip_id, subject, true, predicted, p_<class>),
metrics.json, train_log.csv (epoch, lr, loss, train_accuracy, seconds) and epochs.h5 (the test clips'
probabilities after every epoch when params' selection has `test`, else after the last). A test clip is
scored by its mean softmax over its V views; metrics.json also scores its unjittered view alone
(`unjittered`).

Resume: after every epoch the fold's whole training state (model, optimizer, epoch, numpy and torch
RNG states, log) is written atomically to out_dir/checkpoint.pt, which is not a rule output, so
Snakemake keeps it when it cleans up a killed job. A rerun with the same params, inputs and code
continues after the last finished epoch (pipeline/checkpoints.py) and, on CPU, ends with the same
predictions as an uninterrupted run; the checkpoint is removed once the fold's outputs are written.

Input normalisation: one pass over the training clips before training counts each channel's grey
levels; their mean and std (in [0, 1] units) are stored in the model as buffers and in model.pt.

Memory: the store is streamed (pipeline/loader.py). Training reads whole clips (one HDF5 chunk = V
variants) into a shuffle buffer of about SHUFFLE_BUFFER_BYTES, shuffles samples within it and cuts
mini-batches; one more buffer is read ahead by a thread, so host memory holds at most two buffers plus
one batch.
Testing reads one clip at a time. (The activations add ~3 GB at M = 32, batch 64: 3.1 GB peak RSS
measured on CPU.)
"""

from __future__ import annotations

import json
import math
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from tqdm import tqdm

from pipeline import metrics
from pipeline.artifacts import atomic_output, provenance
from pipeline.checkpoints import CHECKPOINT_NAME, resume_from_checkpoint, resume_key, save_epoch_checkpoint
from pipeline.devices import (
    autocast,
    check_precision,
    keep_freed_memory,
    resolve_device,
    set_determinism,
    to_device,
    to_device_images,
)
from pipeline.errors import MerflowError
from pipeline.fold_results import fold_scores, predictions_table, split_fold, write_fold_results
from pipeline.jitter import UNJITTERED_VIEW, unjittered_variant
from pipeline.loader import SHUFFLE_BUFFER_BYTES, channel_histograms, mean_std_from_histograms, shuffled_batches
from pipeline.model import RCNN, RCNNConfig
from pipeline.selection import inner_split, record_epochs

# "rcnn_feedforward": the same network with only the recurrence removed (pipeline/model.py)
METHODS = ("rcnn", "rcnn_feedforward")


# --- the split ------------------------------------------------------------------------------------

def read_clip_table(h5: h5py.File) -> pd.DataFrame:
    """One row per clip of the store, in the order of /x: clip_id, subject, label, label_index, and
    source when the store is a composite of several datasets (pipeline/composite.py)."""
    table = pd.DataFrame({
        "clip_id": h5["clip_id"].asstr()[()],
        "subject": h5["subject"].asstr()[()],
        "label": h5["label"].asstr()[()],
        "label_index": h5["label_index"][()].astype(np.int64),
    })
    if "source" in h5:
        table["source"] = h5["source"].asstr()[()]
    return table


def lr_schedule(lr: float, lr_decay: float, min_lr: float, max_epochs: int) -> list[float]:
    """The learning rate of each epoch: lr, lr * decay, ... while >= min_lr, at most max_epochs."""
    rates = []
    while lr >= min_lr and len(rates) < max_epochs:
        rates.append(lr)
        lr *= lr_decay
    return rates


# --- training and testing ---------------------------------------------------------------------------

def sgd_step(model: RCNN, optimizer: torch.optim.Optimizer, samples: np.ndarray, labels: np.ndarray,
             device: torch.device, precision: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """One SGD step on a host batch: (loss, logits, targets on the device). bench/train.py times this."""
    inputs, targets = to_device_images(samples, device), to_device(labels, device)
    with autocast(device, precision):
        logits = model(inputs)
    loss = F.cross_entropy(logits.float(), targets)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    optimizer.step()
    return loss, logits, targets


def train_one_epoch(model: RCNN, optimizer: torch.optim.Optimizer, batches, n_batches: int,
                    device: torch.device, description: str, precision: str = "fp32"
                    ) -> tuple[float, float, int]:
    """Mean loss, accuracy on the training batches (as seen during the epoch) and samples seen."""
    model.train()
    loss_sum = torch.zeros((), device=device)     # summed on the device: no GPU sync per batch
    correct = torch.zeros((), dtype=torch.int64, device=device)
    seen = 0
    progress = tqdm(batches, total=n_batches, desc=description, unit="batch", file=sys.stderr)
    for step, (samples, labels, _) in enumerate(progress, start=1):
        loss, logits, targets = sgd_step(model, optimizer, samples, labels, device, precision)
        loss_sum += loss.detach() * len(labels)
        correct += (logits.argmax(dim=1) == targets).sum()
        seen += len(labels)
        if step % 10 == 0:
            progress.set_postfix(loss=f"{loss_sum.item() / seen:.4f}", acc=f"{correct.item() / seen:.3f}")
    return loss_sum.item() / seen, correct.item() / seen, seen


@torch.inference_mode()
def view_softmax(model: torch.nn.Module, variants: np.ndarray, batch_size: int, device: torch.device,
                 precision: str) -> torch.Tensor:
    """Class probabilities (V, C), float32 on the CPU, of each of one clip's V jitter variants."""
    model.eval()
    softmax = []
    for start in range(0, len(variants), batch_size):
        with autocast(device, precision):
            logits = model(to_device_images(np.ascontiguousarray(variants[start:start + batch_size]), device))
        softmax.append(logits.float().softmax(dim=1))
    return torch.cat(softmax).cpu()


def clip_softmax(model: torch.nn.Module, variants: np.ndarray, batch_size: int, device: torch.device,
                 precision: str) -> np.ndarray:
    """Class probabilities (C,) of one clip: the mean of the softmax over its V jitter variants
    (test-time averaging over the temporal-jitter copies of Sec. II-D). The stage's testing and
    `merflow predict` both call this, in the precision and batch size the model was trained with, so
    a checkpoint reproduces its predictions.csv on the machine that wrote it."""
    return mean_over_views(view_softmax(model, variants, batch_size, device, precision))


def mean_over_views(views: torch.Tensor) -> np.ndarray:
    return views.mean(dim=0).numpy().astype(np.float64)


def predict_clips(model: torch.nn.Module, x: h5py.Dataset | np.ndarray, rows: np.ndarray, batch_size: int,
                  device: torch.device, precision: str = "fp32",
                  unjittered: int | None = None) -> tuple[np.ndarray, np.ndarray | None]:
    """Class probabilities (len(rows), C) per clip, one clip (one HDF5 chunk) at a time: the mean over
    its views (`clip_softmax`), and those of its unjittered view alone (variant `unjittered`; None
    when the store has none)."""
    means, plain = [], []
    for row in tqdm(rows, desc="test clips", unit="clip", file=sys.stderr):
        views = view_softmax(model, x[row], batch_size, device, precision)
        means.append(mean_over_views(views))
        if unjittered is not None:
            plain.append(views[unjittered].numpy().astype(np.float64))
    return np.stack(means), (np.stack(plain) if unjittered is not None else None)


WATCHED = "watched"      # a log entry's test (and validation) probabilities of that epoch, kept in the checkpoint

# --- the stage --------------------------------------------------------------------------------------

def check_train_params(method: str, lr: float, lr_decay: float, min_lr: float, max_epochs: int) -> list[float]:
    """The learning rate of every epoch, after checking the method and that there is an epoch to run."""
    if method not in METHODS:
        raise MerflowError(f"train: unknown method {method!r}, expected one of {METHODS}")
    rates = lr_schedule(lr, lr_decay, min_lr, max_epochs)
    if not rates:
        raise MerflowError(f"train: lr {lr} is below min_lr {min_lr} (or max_epochs is 0): no epoch to run")
    return rates


def model_config(method: str, maps: int, recurrent_steps: int, *, n_classes: int, pixels: int,
                 frames: int) -> RCNNConfig:
    """The network a method trains: the RCNN, or for rcnn_feedforward its RCLs with each 3x3 conv
    applied once, feed-forward (recurrent_steps does not apply to it)."""
    feedforward = method == "rcnn_feedforward"
    return RCNNConfig(maps=maps, recurrent_steps=1 if feedforward else recurrent_steps, n_classes=n_classes,
                      pixels=pixels, frames=frames, recurrent=not feedforward)


def set_up_torch(device: str, precision: str, threads: int, deterministic: bool,
                 seed: int) -> tuple[torch.device, np.random.Generator]:
    """The torch device, with torch's threads, determinism and seed set; the NumPy generator that
    shuffles the batches."""
    torch_device = resolve_device(device)
    check_precision(torch_device, precision)
    torch.set_num_threads(threads)
    keep_freed_memory()
    set_determinism(deterministic)
    torch.manual_seed(seed)
    return torch_device, np.random.default_rng(seed)


@dataclass(frozen=True)
class FoldData:
    """The clips of a tensors store and the rows of /x that train and test one fold."""
    clips: pd.DataFrame              # `read_clip_table`
    classes: list[str]
    train_rows: np.ndarray
    test_rows: np.ndarray
    n_variants: int
    pixels: int
    frames: int
    unjittered: int | None = None    # the variant that is the clip unjittered (`jitter.unjittered_variant`)


def read_fold(h5: h5py.File, tensors_h5: Path, folds: pd.DataFrame, fold: int) -> FoldData:
    """The clips of the open store `h5` (tensors_h5, named in errors), checked, split by `fold`."""
    clips = read_clip_table(h5)
    classes = list(json.loads(h5.attrs["classes"]))
    x = h5["x"]
    if x.ndim != 5 or x.shape[2] != 3 or x.dtype != np.uint8 or x.shape[0] != len(clips):
        raise MerflowError(f"{tensors_h5}: /x must be uint8 (clips, variants, 3, pixels, frames) with "
                           f"one row per clip id, got {x.dtype} {x.shape} for {len(clips)} clip ids")
    named = [classes[i] for i in clips["label_index"]]
    if named != clips["label"].tolist():
        raise MerflowError(f"{tensors_h5}: /label_index does not match /label under classes {classes}")
    train_rows, test_rows = split_fold(clips, folds, fold, str(tensors_h5))
    unjittered = None
    if "keep_ratio" in h5 and "kernel" in h5:
        unjittered = unjittered_variant(h5["keep_ratio"][()].tolist(), h5["kernel"].asstr()[()].tolist())
    return FoldData(clips, classes, train_rows, test_rows, n_variants=x.shape[1], pixels=x.shape[3],
                    frames=x.shape[4], unjittered=unjittered)


def build_model(config: RCNNConfig, mean: list[float], std: list[float], device: torch.device, *, lr: float,
                momentum: float, weight_decay: float,
                compile: bool) -> tuple[RCNN, torch.nn.Module, torch.optim.Optimizer]:
    """The network with the training clips' input normalisation, on `device`; the module to run
    forward (torch.compile'd when asked, sharing the parameters); its SGD optimizer."""
    model = RCNN(config)
    model.set_input_normalisation(mean, std)
    model = model.to(device, memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=lr, momentum=momentum, weight_decay=weight_decay)
    # The compiled module shares the parameters; `model` stays the plain one that is saved.
    forward_model = torch.compile(model) if compile else model
    return model, forward_model, optimizer


@dataclass(frozen=True)
class Fit:
    """What training a fold did: the epoch log, the epochs restored from a checkpoint, and the time
    and samples of training (the resumed epochs' included)."""
    log: list[dict]
    resumed_after_epoch: int
    train_seconds: float
    train_samples: int


def fit_or_resume(model: RCNN, forward_model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                  x: h5py.Dataset, data: FoldData, rates: list[float], rng: np.random.Generator, *,
                  batch_size: int, device: torch.device, precision: str, checkpoint_path: Path, key: str,
                  name: str, on_epoch: Callable[[int, dict], None] | None = None) -> Fit:
    """Train one epoch per rate on the fold's training clips, after the epochs a checkpoint made from
    `key` already holds; the checkpoint is rewritten after every epoch. `on_epoch(epoch, log entry)` runs
    after each epoch, before the checkpoint: what it adds to the entry is kept with it."""
    clips_per_buffer = max(1, SHUFFLE_BUFFER_BYTES // (x.dtype.itemsize * math.prod(x.shape[1:])))
    n_batches = math.ceil(len(data.train_rows) * data.n_variants / batch_size)
    labels = data.clips["label_index"].to_numpy()
    epochs_done, log, train_seconds, train_samples = resume_from_checkpoint(checkpoint_path, key, model,
                                                                            optimizer, rng)
    for epoch, epoch_lr in enumerate(rates, start=1):
        if epoch <= epochs_done:
            continue
        epoch_started = time.perf_counter()
        for group in optimizer.param_groups:
            group["lr"] = epoch_lr
        batches = shuffled_batches(x, data.train_rows, labels, batch_size, rng, clips_per_buffer)
        loss, train_accuracy, seen = train_one_epoch(forward_model, optimizer, batches, n_batches, device,
                                                     f"{name} epoch {epoch}/{len(rates)}", precision)
        seconds = time.perf_counter() - epoch_started
        train_seconds += seconds
        train_samples += seen
        log.append({"epoch": epoch, "lr": epoch_lr, "loss": loss, "train_accuracy": train_accuracy,
                    "seconds": round(seconds, 3)})
        if on_epoch is not None:
            on_epoch(epoch, log[-1])
        save_epoch_checkpoint(checkpoint_path, key, epoch, model, optimizer, rng, log, train_seconds,
                              train_samples)
    return Fit(log, epochs_done, train_seconds, train_samples)


def fold_metrics(data: FoldData, probabilities: np.ndarray, fit: Fit, *, epochs: int, seconds: float,
                 device: torch.device, precision: str, method: str, fold: int,
                 unjittered: np.ndarray | None = None) -> dict:
    """metrics.json: the test fold's scores (on the mean over each clip's views; `unjittered`: on its
    unjittered view alone), what was trained on, and how long it took."""
    n_classes = len(data.classes)
    y_true, y_pred = data.clips["label_index"].to_numpy()[data.test_rows], probabilities.argmax(axis=1)
    plain = None
    if unjittered is not None:
        plain_pred = unjittered.argmax(axis=1)
        plain = {"keep_ratio": UNJITTERED_VIEW[0], "kernel": UNJITTERED_VIEW[1],
                 "accuracy": metrics.accuracy(y_true, plain_pred), "uf1": metrics.uf1(y_true, plain_pred, n_classes),
                 "uar": metrics.uar(y_true, plain_pred, n_classes)}
    scores = {
        **fold_scores(data.clips.iloc[data.test_rows], y_pred, data.classes),
        "test_views": data.n_variants,      # the scores above: each clip's mean softmax over these views
        "unjittered": plain,                # the scores on each clip's unjittered view alone (None: no such view)
        "n_train_clips": len(data.train_rows),
        "n_train_samples": len(data.train_rows) * data.n_variants,
        "epochs": epochs,
        "seconds": seconds,
        "train_seconds": round(fit.train_seconds, 3),
        "samples_per_second": round(fit.train_samples / fit.train_seconds, 2),
        "device": str(device),
        "precision": precision,
        "method": method,
        "fold": fold,
        "resumed_after_epoch": fit.resumed_after_epoch,
    }
    return scores


def write_fold_outputs(out_dir: Path, model: RCNN, mean: list[float], std: list[float], params: dict,
                       inputs: dict[str, Path], predictions: pd.DataFrame, log: list[dict], scores: dict) -> None:
    """model.pt, predictions.csv, train_log.csv and metrics.json, each atomically; then the epoch
    checkpoint is removed (model.pt is the fold's result)."""
    checkpoint = {
        "state_dict": {k: v.detach().cpu() for k, v in model.state_dict().items()},
        "config": asdict(model.config),
        "classes": scores["classes"],
        "normalisation": {"mean": mean, "std": std, "units": "pixel value / 255, per RGB channel"},
        "params": params,
        "provenance": provenance("train", params, inputs),
    }
    # Saved through a handle: given a path, torch names the archive's records after the (random)
    # temporary file, and model.pt would differ byte for byte between identical runs.
    with atomic_output(out_dir / "model.pt") as tmp, open(tmp, "wb") as handle:
        torch.save(checkpoint, handle)
    with atomic_output(out_dir / "train_log.csv") as tmp:
        pd.DataFrame([{k: v for k, v in entry.items() if k != WATCHED} for entry in log]).to_csv(tmp, index=False)
    write_fold_results(out_dir, predictions, scores)
    (out_dir / CHECKPOINT_NAME).unlink(missing_ok=True)


def train_fold_stage(tensors_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, method: str,
                     maps: int, recurrent_steps: int, batch_size: int, lr: float, lr_decay: float,
                     min_lr: float, max_epochs: int, momentum: float, weight_decay: float, seed: int,
                     device: str, threads: int, precision: str = "fp32", compile: bool = False,
                     deterministic: bool = True, selections: Sequence[str] = ("last",), selection: str = "last",
                     inner: Mapping[str, Any] | None = None) -> None:
    """Train on every variant of every clip outside `fold`, test on the clips of `fold`.

    precision: "fp32" or "bf16" (autocast), on CPU and CUDA alike (see `autocast`). deterministic: see
    `set_determinism`. compile: run the
    model through torch.compile (on a 2-core CPU it did not speed up training, bench/README.md; on
    CUDA it has not been measured). Epoch selection (pipeline/selection.py): with `test` among params'
    `selections` the test clips are scored after every epoch (a test pass per epoch) for the audit row;
    `selection` inner (`train_inner`) trains without the fold's validation subjects and scores the test
    clips at the epoch best on them. epochs.h5 holds what was recorded."""
    started = time.perf_counter()
    fold = int(fold)                    # Snakemake wildcards arrive as strings
    params = {"method": method, "fold": fold, "maps": maps, "recurrent_steps": recurrent_steps,
              "batch_size": batch_size, "lr": lr, "lr_decay": lr_decay, "min_lr": min_lr,
              "max_epochs": max_epochs, "momentum": momentum, "weight_decay": weight_decay,
              "seed": seed, "device": device, "threads": threads, "precision": precision, "compile": compile,
              "deterministic": deterministic,     # as the stage's params: the train stage's or train_inner's
              **({"inner": dict(inner or {})} if selection == "inner" else {"selections": list(selections)})}
    rates = check_train_params(method, lr, lr_decay, min_lr, max_epochs)
    torch_device, rng = set_up_torch(device, precision, threads, deterministic, seed)
    out_dir = Path(out_dir)
    folds = pd.read_csv(folds_csv, dtype={"clip_id": str, "subject": str, "label": str})
    every_epoch = selection == "inner" or "test" in selections

    with h5py.File(tensors_h5, "r") as h5:
        data, x = read_fold(h5, tensors_h5, folds, fold), h5["x"]
        validation_rows = np.zeros(0, dtype=np.int64)
        if selection == "inner":
            train_rows, validation_rows = inner_split(data.clips, data.train_rows, seed=int(inner["split_seed"]),
                                                      fraction=float(inner["validation_subjects"]), fold=fold)
            data = replace(data, train_rows=train_rows)
        watched = np.concatenate([validation_rows, data.test_rows])
        mean, std = mean_std_from_histograms(channel_histograms(x, data.train_rows))
        config = model_config(method, maps, recurrent_steps, n_classes=len(data.classes), pixels=data.pixels,
                              frames=data.frames)
        model, forward_model, optimizer = build_model(config, mean, std, torch_device, lr=rates[0],
                                                      momentum=momentum, weight_decay=weight_decay, compile=compile)

        def record(epoch: int, entry: dict) -> None:       # every epoch but the last, scored below
            if every_epoch and epoch < len(rates):
                probabilities = predict_clips(forward_model, x, watched, batch_size, torch_device, precision)[0]
                entry[WATCHED] = torch.from_numpy(probabilities)     # a tensor: checkpoints load weights_only

        fit = fit_or_resume(model, forward_model, optimizer, x, data, rates, rng, batch_size=batch_size,
                            device=torch_device, precision=precision, checkpoint_path=out_dir / CHECKPOINT_NAME,
                            key=resume_key(params, tensors_h5, folds_csv), name=f"{method} fold {fold}",
                            on_epoch=record)
        last, unjittered = predict_clips(forward_model, x, watched, batch_size, torch_device, precision,
                                         data.unjittered)

    by_epoch = np.stack([*(np.asarray(entry[WATCHED]) for entry in fit.log if WATCHED in entry), last])
    if every_epoch and len(by_epoch) != len(rates):
        raise MerflowError(f"{out_dir}: {len(by_epoch)} epochs recorded of {len(rates)} (a checkpoint from another "
                           f"run?): remove {out_dir / CHECKPOINT_NAME} and rerun")
    probabilities, said = record_epochs(
        out_dir / "epochs.h5", data.clips, data.test_rows, validation_rows, by_epoch, [e["loss"] for e in fit.log],
        classes=data.classes, selection=selection, inner=inner, epochs=len(rates), every_epoch=every_epoch,
        record=provenance("train", params, {"tensors": tensors_h5, "folds": folds_csv}),
        n_train_clips=len(data.train_rows))
    scored_last = said["selected_epoch"] == len(rates)     # the unjittered views were scored after the last epoch
    unjittered = unjittered[len(validation_rows):] if unjittered is not None and scored_last else None
    predictions = predictions_table(data.clips.iloc[data.test_rows], probabilities, data.classes)
    scores_json = fold_metrics(data, probabilities, fit, epochs=len(rates),
                               seconds=round(time.perf_counter() - started, 3), device=torch_device,
                               precision=precision, method=method, fold=fold, unjittered=unjittered) | said
    write_fold_outputs(out_dir, model, mean, std, params, {"tensors": tensors_h5, "folds": folds_csv}, predictions,
                       fit.log, scores_json)


def train_inner_fold_stage(tensors_h5: Path, folds_csv: Path, fold: int, out_dir: Path, **params: Any) -> None:
    """The RCNN on one fold, scored at the epoch best on validation subjects of its training clips (model.pt:
    the last epoch's network)."""
    train_fold_stage(tensors_h5, folds_csv, fold, out_dir, selection="inner", **params)
