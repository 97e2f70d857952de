"""The classifier of the hand-crafted baselines, and their per-fold outputs in training's format.

Every hand-crafted row of Table 2 (LBP-TOP, LBP-SIP, TICS, MDMO) is a fixed-length feature per clip
followed by a linear SVM, as in the papers that introduced them. Features are standardised with the
training clips' mean and std (histogram bins and flow magnitudes have very different scales), then
libsvm's linear SVC (one-vs-one) is fitted; p_<class> are its Platt-scaled (sigmoid) probabilities,
calibrated by cross-validation within the training clips, and the predicted class is the class with
the highest probability, as for the RCNN, so that the confusion matrix and p_<class> never disagree.

The outputs are those of pipeline.train, so pipeline.aggregate aggregates them unchanged:
predictions.csv (clip_id, subject, true, predicted, p_<class>...) and metrics.json (accuracy, uf1,
uar, confusion, n_test, ...).
"""

from __future__ import annotations

import json
import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from pipeline import metrics
from pipeline.artifacts import atomic_output
from pipeline.composite import confusion_by_source
from pipeline.errors import MerflowError
from pipeline.protocols import repeat_of_fold


def split_by_fold(clips: pd.DataFrame, folds: pd.DataFrame, fold: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Row positions in `clips` (clip_id, subject, label) of the training and the test clips of `fold`.

    Every clip must be in the folds file with the same subject and label, and vice versa, so that a
    baseline is scored on exactly the clips the RCNN is scored on. With repeated folds, the training
    clips are the others of the fold's repeat.
    """
    folds = repeat_of_fold(folds, fold)
    problems = []
    missing = sorted(set(clips["clip_id"]) - set(folds["clip_id"]))
    extra = sorted(set(folds["clip_id"]) - set(clips["clip_id"]))
    if missing:
        problems.append(f"{len(missing)} clips of {source} have no fold: {missing[:10]}")
    if extra:
        problems.append(f"{len(extra)} clips of the folds are not in {source}: {extra[:10]}")
    if problems:
        raise MerflowError(f"{source} and folds disagree:\n" + "\n".join(f"  - {p}" for p in problems))
    joined = clips.merge(folds, on="clip_id", how="left", suffixes=("", "_folds"), validate="one_to_one")
    for column in ("subject", "label"):
        differ = joined.loc[joined[column] != joined[f"{column}_folds"], "clip_id"].tolist()
        if differ:
            raise MerflowError(f"{source} and folds give different {column}s for clips {differ[:10]} "
                               "(stale artifact?)")
    is_test = (joined["fold"] == fold).to_numpy()
    train_rows, test_rows = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if len(test_rows) == 0 or len(train_rows) == 0:
        raise MerflowError(f"fold {fold}: {len(train_rows)} training and {len(test_rows)} test clips")
    return train_rows, test_rows


def svm_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int, *,
                c: float, seed: int) -> np.ndarray:
    """(len(x_test), n_classes) class probabilities from a standardised linear SVM fitted on the
    training features; classes absent from the training set get probability 0."""
    present = np.unique(y_train)
    probabilities = np.zeros((len(x_test), n_classes))
    if len(present) == 1:           # nothing to separate: the one class seen is the answer
        probabilities[:, present[0]] = 1.0
        return probabilities
    # Platt scaling on held-out scores: up to 5 stratified splits of the training clips, fewer when a
    # class has fewer clips (the tiny test config has 4 per class).
    splits = int(np.clip(np.bincount(y_train)[present].min(), 2, 5))
    svm = CalibratedClassifierCV(SVC(kernel="linear", C=c), method="sigmoid", ensemble=False,
                                 cv=StratifiedKFold(splits, shuffle=True, random_state=seed))
    model = make_pipeline(StandardScaler(), svm)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)   # "least populated class has only 1 member"
        model.fit(x_train, y_train)
    probabilities[:, model.classes_] = model.predict_proba(x_test)
    return probabilities


def write_fold_outputs(out_dir: Path, test: pd.DataFrame, probabilities: np.ndarray, classes: Sequence[str],
                       extra: Mapping[str, Any]) -> None:
    """predictions.csv and metrics.json of one fold, as pipeline.train writes them (atomically)."""
    class_index = {name: i for i, name in enumerate(classes)}
    y_true = np.array([class_index[label] for label in test["label"]])
    y_pred = probabilities.argmax(axis=1)
    predictions = pd.DataFrame({"clip_id": test["clip_id"].to_numpy(), "subject": test["subject"].to_numpy(),
                                "true": test["label"].to_numpy(), "predicted": [classes[i] for i in y_pred]})
    for c, name in enumerate(classes):
        predictions[f"p_{name}"] = probabilities[:, c]
    scores = {
        "accuracy": metrics.accuracy(y_true, y_pred),
        "uf1": metrics.uf1(y_true, y_pred, len(classes)),
        "uar": metrics.uar(y_true, y_pred, len(classes)),
        "confusion": metrics.confusion(y_true, y_pred, len(classes)).tolist(),
        "classes": list(classes),
        "n_test": len(test),
        **extra,
    }
    if "source" in test:        # a composite: scored per source dataset too, as pipeline.train does
        scores["by_source"] = confusion_by_source(test["source"].to_numpy(), y_true, y_pred, len(classes))
    out_dir = Path(out_dir)
    with atomic_output(out_dir / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_output(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(scores, indent=2) + "\n")


def classify_fold(features: np.ndarray, clips: pd.DataFrame, folds_csv: Path, fold: int, out_dir: Path, *,
                  classes: Sequence[str], c: float, seed: int, method: str, source: str,
                  started: float | None = None, provenance: Mapping[str, str] | None = None) -> None:
    """Fit the SVM on the training clips' features, score the test clips of `fold`, write the outputs.

    `features` is (n_clips, n_features), row i belonging to clips.iloc[i] (clip_id, subject, label);
    `provenance` (pipeline.artifacts.provenance: params, code version, input checksums) goes into
    metrics.json, since a baseline has no model file to carry it.
    """
    fold = int(fold)                # Snakemake wildcards arrive as strings
    unknown = sorted(set(clips["label"]) - set(classes))
    if unknown:
        raise MerflowError(f"{source}: labels {unknown} are not among the classes {list(classes)}")
    folds = pd.read_csv(folds_csv, dtype={"clip_id": str, "subject": str, "label": str})
    train_rows, test_rows = split_by_fold(clips, folds, fold, source)
    labels = clips["label"].map({name: i for i, name in enumerate(classes)}).to_numpy()
    probabilities = svm_predict(features[train_rows], labels[train_rows], features[test_rows], len(classes),
                                c=c, seed=seed)
    extra = {"n_train_clips": len(train_rows), "n_features": int(features.shape[1]), "method": method,
             "fold": fold}
    if started is not None:
        extra["seconds"] = round(time.perf_counter() - started, 3)
    if provenance is not None:
        extra["provenance"] = dict(provenance)
    write_fold_outputs(out_dir, clips.iloc[test_rows], probabilities, classes, extra)
