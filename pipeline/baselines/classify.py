"""The classifier of the hand-crafted baselines: a linear SVM on one fold.

Every hand-crafted row of Table 2 (LBP-TOP, LBP-SIP, TICS, MDMO) is a fixed-length feature per clip
followed by a linear SVM, as in the papers that introduced them. Features are standardised with the
training clips' mean and std (histogram bins and flow magnitudes have very different scales), then
libsvm's linear SVC is fitted. A clip's predicted class is the SVC's own decision, libsvm's one-vs-one
vote, as LIBSVM and the papers' MATLAB code decide. The p_<class> columns of predictions.csv are
Platt-scaled (sigmoid) probabilities from a second fit, calibrated by cross-validation within the
training clips, for the report's per-clip output only: their argmax leans toward the majority class
and may disagree with the vote, so they decide nothing.

The outputs are every method's (pipeline.fold_results): predictions.csv and metrics.json.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.calibration import CalibratedClassifierCV
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

from pipeline.fold_results import class_indices, split_fold, write_fold_outputs


def svm_predict(x_train: np.ndarray, y_train: np.ndarray, x_test: np.ndarray, n_classes: int, *,
                c: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """The predicted class index of every test clip, by a standardised linear SVM's one-vs-one vote
    (libsvm's decision), and (len(x_test), n_classes) Platt-scaled class probabilities beside it (classes
    absent from the training set get probability 0)."""
    present = np.unique(y_train)
    probabilities = np.zeros((len(x_test), n_classes))
    if len(present) == 1:           # nothing to separate: the one class seen is the answer
        probabilities[:, present[0]] = 1.0
        return np.full(len(x_test), present[0], dtype=np.int64), probabilities
    vote = make_pipeline(StandardScaler(), SVC(kernel="linear", C=c)).fit(x_train, y_train)
    predicted = vote.predict(x_test).astype(np.int64)
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
    return predicted, probabilities


def classify_fold(features: np.ndarray, clips: pd.DataFrame, folds_csv: Path, fold: int, out_dir: Path, *,
                  classes: Sequence[str], c: float, seed: int, method: str, source: str,
                  started: float | None = None, provenance: Mapping[str, str] | None = None) -> None:
    """Fit the SVM on the training clips' features, score the test clips of `fold`, write the outputs.

    `features` is (n_clips, n_features), row i belonging to clips.iloc[i] (clip_id, subject, label);
    `provenance` (pipeline.artifacts.provenance: params, code version, input checksums) goes into
    metrics.json, since a baseline has no model file to carry it.
    """
    fold = int(fold)                # Snakemake wildcards arrive as strings
    labels = class_indices(clips["label"].tolist(), classes, source)
    folds = pd.read_csv(folds_csv, dtype={"clip_id": str, "subject": str, "label": str})
    train_rows, test_rows = split_fold(clips, folds, fold, source)
    predicted, probabilities = svm_predict(features[train_rows], labels[train_rows], features[test_rows],
                                           len(classes), c=c, seed=seed)
    extra = {"n_train_clips": len(train_rows), "n_features": int(features.shape[1]), "method": method,
             "fold": fold}
    if started is not None:
        extra["seconds"] = round(time.perf_counter() - started, 3)
    if provenance is not None:
        extra["provenance"] = dict(provenance)
    write_fold_outputs(out_dir, clips.iloc[test_rows], probabilities, classes, extra, predicted=predicted)
