"""The hand-crafted baselines as fold stages: aligned clips + folds -> one fold's predictions and metrics.

Each stage reads every clip of data/{ds}/aligned.h5 (the aligned, not magnified, faces), computes its
feature per clip, fits the linear SVM on the training clips of the fold (pipeline.baselines.classify)
and writes results/{ds}/{protocol}/{method}/fold{k}/predictions.csv and metrics.json, the files the
RCNN's training writes, so Table 2 aggregates every method the same way.

Why per fold and not one feature file per dataset: it keeps one rule per Table 2 row with the
RCNN's wiring; LBP-TOP, LBP-SIP and MDMO recompute their (fold-independent) features in every fold,
which costs seconds on CASME II-sized data, while TICS must learn its colour space on the training
clips of each fold anyway.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline.artifacts import provenance
from pipeline.baselines.classify import classify_fold
from pipeline.baselines.clips import (
    AlignedClip,
    clip_row,
    grey,
    grey_volume,
    iter_aligned_clips,
    resample_frames,
    resize_frames,
    scale_landmarks,
)
from pipeline.baselines.lbpsip import lbpsip_features
from pipeline.baselines.lbptop import lbptop_features
from pipeline.baselines.mdmo import mdmo_features
from pipeline.baselines.tics import fit_colour_space, sample_pixels, tics_features
from pipeline.errors import BadInputError
from pipeline.protocols import repeat_of_fold


def clip_features(aligned_h5: Path, feature: Callable[[AlignedClip], np.ndarray]) -> tuple[np.ndarray, pd.DataFrame]:
    """(n_clips, n_features) features of every clip of the store, and the clips' ids, subjects, labels."""
    rows, table = [], []
    for clip in iter_aligned_clips(aligned_h5):
        try:
            vector = np.asarray(feature(clip), dtype=np.float32)
        except ValueError as error:           # e.g. a clip too short or small for the descriptor
            raise BadInputError(clip.clip_id, aligned_h5, str(error)) from None
        if rows and vector.shape != rows[0].shape:
            raise BadInputError(clip.clip_id, aligned_h5, f"feature of length {vector.shape}, others {rows[0].shape}")
        if not np.all(np.isfinite(vector)):
            raise BadInputError(clip.clip_id, aligned_h5, "feature is not finite")
        rows.append(vector)
        table.append(clip_row(clip))
    if not rows:
        raise BadInputError("(all)", aligned_h5, "the aligned store has no clips")
    return np.stack(rows), pd.DataFrame(table)


def _classify(method: str, features: np.ndarray, clips: pd.DataFrame, aligned_h5: Path, folds_csv: Path,
              fold: int, out_dir: Path, classes: Sequence[str], svm_c: float, svm_seed: int, params: dict,
              started: float) -> None:
    classify_fold(features, clips, folds_csv, fold, out_dir, classes=classes, c=svm_c, seed=svm_seed,
                  method=method, source=os.fspath(aligned_h5), started=started,
                  provenance=provenance(method, {**params, "fold": int(fold), "svm_c": svm_c, "svm_seed": svm_seed},
                                        {"aligned": aligned_h5, "folds": folds_csv}))


def lbptop_fold_stage(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, classes: Sequence[str],
                      svm_c: float, svm_seed: int, height: int, width: int, frames: int, points: Sequence[int],
                      radii: Sequence[float], blocks: Sequence[int]) -> None:
    """LBP-TOP + linear SVM on one fold."""
    started = time.perf_counter()
    params = dict(height=height, width=width, frames=frames, points=list(points), radii=list(radii),
                  blocks=list(blocks))
    features, clips = clip_features(aligned_h5, lambda clip: lbptop_features(
        grey_volume(clip.frames, height=height, width=width, n_frames=frames),
        points=points, radii=radii, blocks=blocks))
    _classify("lbptop", features, clips, aligned_h5, folds_csv, fold, out_dir, classes, svm_c, svm_seed, params,
              started)


def lbpsip_fold_stage(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, classes: Sequence[str],
                      svm_c: float, svm_seed: int, height: int, width: int, frames: int, radius_xy: int,
                      radius_t: int, blocks: Sequence[int]) -> None:
    """LBP-SIP + linear SVM on one fold."""
    started = time.perf_counter()
    params = dict(height=height, width=width, frames=frames, radius_xy=radius_xy, radius_t=radius_t,
                  blocks=list(blocks))
    features, clips = clip_features(aligned_h5, lambda clip: lbpsip_features(
        grey_volume(clip.frames, height=height, width=width, n_frames=frames),
        radius_xy=radius_xy, radius_t=radius_t, blocks=blocks))
    _classify("lbpsip", features, clips, aligned_h5, folds_csv, fold, out_dir, classes, svm_c, svm_seed, params,
              started)


def tics_fold_stage(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, classes: Sequence[str],
                    svm_c: float, svm_seed: int, height: int, width: int, frames: int, points: Sequence[int],
                    radii: Sequence[float], blocks: Sequence[int], pixels_per_clip: int) -> None:
    """TICS + linear SVM on one fold: the colour space is learnt from this fold's training clips only."""
    started = time.perf_counter()
    params = dict(height=height, width=width, frames=frames, points=list(points), radii=list(radii),
                  blocks=list(blocks), pixels_per_clip=pixels_per_clip)
    folds = repeat_of_fold(pd.read_csv(folds_csv, dtype={"clip_id": str}), int(fold))
    training = set(folds.loc[folds["fold"] != int(fold), "clip_id"])
    rng = np.random.default_rng(svm_seed)

    def colour_clip(clip: AlignedClip) -> np.ndarray:
        return resample_frames(resize_frames(clip.frames, height, width), frames)

    pixels = [sample_pixels(colour_clip(clip), pixels_per_clip, rng)
              for clip in iter_aligned_clips(aligned_h5) if clip.clip_id in training]
    if not pixels:
        raise BadInputError("(all)", aligned_h5, f"no training clip of fold {fold} in the aligned store")
    unmixing, mean = fit_colour_space(np.concatenate(pixels), seed=svm_seed)
    features, clips = clip_features(aligned_h5, lambda clip: tics_features(
        colour_clip(clip), unmixing, mean, points=points, radii=radii, blocks=blocks))
    _classify("tics", features, clips, aligned_h5, folds_csv, fold, out_dir, classes, svm_c, svm_seed, params,
              started)


def mdmo_fold_stage(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, classes: Sequence[str],
                    svm_c: float, svm_seed: int, height: int, width: int, bins: int, pyr_scale: float, levels: int,
                    winsize: int, iterations: int, poly_n: int, poly_sigma: float) -> None:
    """MDMO + linear SVM on one fold (every frame of the clip, no temporal normalisation)."""
    started = time.perf_counter()
    flow = dict(pyr_scale=pyr_scale, levels=levels, winsize=winsize, iterations=iterations, poly_n=poly_n,
                poly_sigma=poly_sigma)
    params = dict(height=height, width=width, bins=bins, **flow)

    def feature(clip: AlignedClip) -> np.ndarray:
        landmarks = scale_landmarks(clip.landmarks, clip.frames.shape[1:3], (height, width))
        return mdmo_features(grey(resize_frames(clip.frames, height, width)), landmarks, bins=bins, **flow)

    features, clips = clip_features(aligned_h5, feature)
    _classify("mdmo", features, clips, aligned_h5, folds_csv, fold, out_dir, classes, svm_c, svm_seed, params,
              started)
