"""The per-fold result contract: what every method writes for one fold, and how Table 2 reads it back.

Each fold job of every method (the RCNN and its ablation, the single-frame CNNs, the hand-crafted
baselines, the flow networks) writes, in results/{ds}/{protocol}/{method}/seed{s}/fold{k}/ (paths.FOLD_DIR):

- predictions.csv: one row per test clip: clip_id, subject, true, predicted, then p_<class> per class;
- metrics.json: the fold's test scores (accuracy, uf1, uar), its confusion matrix (rows truth, columns
  prediction) and classes, n_test, n_train_clips, one confusion matrix per test subject (`by_subject`,
  what a subject bootstrap resamples), per source dataset on a composite (`by_source`, with each
  subject's source in `subject_sources`), and whatever the method adds (epochs, seconds, provenance).

`split_fold` gives every method the same training and test clips of a fold; `write_fold_outputs` (or
`fold_scores` and `write_fold_results`, for a method that writes more) writes the two files, atomically;
`fold_table` reads a set of them back, keyed by dataset, protocol, method, seed and fold.
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.artifacts import atomic_output
from pipeline.errors import MerflowError
from pipeline.protocols import repeat_of_fold

FOLD_TABLE_COLUMNS = ["dataset", "protocol", "method", "seed", "fold", "accuracy", "uf1", "uar", "n_test", "n_train",
                      "confusion", "by_source", "by_subject", "subject_sources"]


def split_fold(clips: pd.DataFrame, folds: pd.DataFrame, fold: int, source: str) -> tuple[np.ndarray, np.ndarray]:
    """Row positions in `clips` (clip_id, subject, label, in the order of the method's store) of the training
    clips (fold != `fold`, within the fold's repeat) and the test clips (fold == `fold`).

    Every clip of the store must be in the folds file with the same subject and label, and vice versa, so
    that every method is scored on exactly the same clips; `source` (the store's path) names the store in
    the error.
    """
    folds = repeat_of_fold(folds, fold)
    problems = []
    for name, table in ((source, clips), ("the folds", folds)):
        duplicated = table["clip_id"][table["clip_id"].duplicated()].tolist()
        if duplicated:
            problems.append(f"{name}: clip ids listed twice: {duplicated[:10]}")
    missing = sorted(set(clips["clip_id"]) - set(folds["clip_id"]))
    if missing:
        problems.append(f"{len(missing)} clips of {source} have no fold: {missing[:10]}")
    extra = sorted(set(folds["clip_id"]) - set(clips["clip_id"]))
    if extra:
        problems.append(f"{len(extra)} clips of the folds are not in {source}: {extra[:10]}")
    if problems:
        raise MerflowError(f"{source} and folds disagree:\n" + "\n".join(f"  - {p}" for p in problems))
    joined = clips.merge(folds, on="clip_id", how="left", suffixes=("", "_folds"), validate="one_to_one")
    for column in ("subject", "label"):
        differ = joined.loc[joined[column] != joined[f"{column}_folds"], "clip_id"].tolist()
        if differ:
            raise MerflowError(f"{source} and folds give different {column}s for clips {differ[:10]} (stale artifact?)")
    is_test = (joined["fold"] == fold).to_numpy()
    train_rows, test_rows = np.flatnonzero(~is_test), np.flatnonzero(is_test)
    if len(test_rows) == 0 or len(train_rows) == 0:
        raise MerflowError(f"fold {fold}: {len(train_rows)} training and {len(test_rows)} test clips "
                           f"(folds present: {sorted(folds['fold'].unique().tolist())})")
    assert not set(clips["clip_id"].iloc[train_rows]) & set(clips["clip_id"].iloc[test_rows])
    return train_rows, test_rows


def class_indices(labels: Sequence[str], classes: Sequence[str], source: str) -> np.ndarray:
    """The class index of each label; a label outside the classes is an error naming the store."""
    index = {name: i for i, name in enumerate(classes)}
    unknown = sorted(set(labels) - set(index))
    if unknown:
        raise MerflowError(f"{source}: labels {unknown} are not among the classes {list(classes)}")
    return np.array([index[label] for label in labels], dtype=np.int64)


def predictions_table(test: pd.DataFrame, probabilities: np.ndarray, classes: Sequence[str],
                      predicted: np.ndarray | None = None) -> pd.DataFrame:
    """One row per test clip: clip_id, subject, true, predicted, then p_<class> for each class. The
    prediction is the most probable class unless the method decides otherwise (`predicted`: class indices,
    e.g. an SVM's one-vs-one vote)."""
    predicted = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    table = pd.DataFrame({"clip_id": test["clip_id"].to_numpy(), "subject": test["subject"].to_numpy(),
                          "true": test["label"].to_numpy(), "predicted": [classes[i] for i in predicted]})
    for c, name in enumerate(classes):
        table[f"p_{name}"] = probabilities[:, c]
    return table


def fold_scores(test: pd.DataFrame, predicted: np.ndarray, classes: Sequence[str]) -> dict[str, Any]:
    """metrics.json's scores of one fold's test clips (`test`: clip_id, subject, label, and source on a
    composite; `predicted`: class indices in the same order)."""
    n_classes = len(classes)
    y_true = class_indices(test["label"].tolist(), classes, "the test clips")
    y_pred = np.asarray(predicted, dtype=np.int64)
    subjects = test["subject"].astype(str).to_numpy()
    scores: dict[str, Any] = {
        "accuracy": metrics.accuracy(y_true, y_pred),
        "uf1": metrics.uf1(y_true, y_pred, n_classes),
        "uar": metrics.uar(y_true, y_pred, n_classes),
        "confusion": metrics.confusion(y_true, y_pred, n_classes).tolist(),
        "classes": list(classes),
        "n_test": len(test),
        "by_subject": metrics.confusion_by_group(subjects, y_true, y_pred, n_classes),
    }
    if "source" in test:        # a composite: MEGC scores each source dataset apart too
        sources = test["source"].astype(str).to_numpy()
        scores["by_source"] = metrics.confusion_by_group(sources, y_true, y_pred, n_classes)
        scores["subject_sources"] = dict(sorted(zip(subjects.tolist(), sources.tolist(), strict=True)))
    return scores


def write_fold_results(out_dir: str | os.PathLike, predictions: pd.DataFrame, scores: Mapping[str, Any]) -> None:
    """predictions.csv and metrics.json of one fold, each atomically."""
    out_dir = Path(out_dir)
    with atomic_output(out_dir / "predictions.csv") as tmp:
        predictions.to_csv(tmp, index=False, float_format="%.6f")
    with atomic_output(out_dir / "metrics.json") as tmp:
        tmp.write_text(json.dumps(dict(scores), indent=2) + "\n")


def write_fold_outputs(out_dir: str | os.PathLike, test: pd.DataFrame, probabilities: np.ndarray,
                       classes: Sequence[str], extra: Mapping[str, Any], predicted: np.ndarray | None = None) -> None:
    """A fold's predictions.csv and metrics.json from its test clips and their class probabilities (the
    prediction: `predicted`, or the most probable class); `extra` joins metrics.json."""
    predicted = probabilities.argmax(axis=1) if predicted is None else np.asarray(predicted)
    write_fold_results(out_dir, predictions_table(test, probabilities, classes, predicted),
                       {**fold_scores(test, predicted, classes), **extra})


# --- reading them back -----------------------------------------------------------------------------------

def fold_key(path: str | os.PathLike) -> dict[str, str | int]:
    """(dataset, protocol, method, seed, fold) from results/{ds}/{protocol}/{method}/seed{s}/fold{k}/<file>."""
    fold_dir = Path(path).parent
    seed_dir = fold_dir.parent
    method_dir = seed_dir.parent
    return {"dataset": method_dir.parent.parent.name, "protocol": method_dir.parent.name, "method": method_dir.name,
            "seed": int(seed_dir.name.removeprefix("seed")), "fold": int(fold_dir.name.removeprefix("fold"))}


def fold_table(metrics_paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per fold's metrics.json: its key, its scores and its confusion matrices."""
    rows = []
    for path in metrics_paths:
        with open(path) as handle:
            scores = json.load(handle)
        rows.append({**fold_key(path), "accuracy": scores["accuracy"], "uf1": scores["uf1"], "uar": scores["uar"],
                     "n_test": scores["n_test"], "n_train": scores.get("n_train_clips"),
                     "confusion": scores.get("confusion"), "by_source": scores.get("by_source"),
                     "by_subject": scores.get("by_subject"), "subject_sources": scores.get("subject_sources")})
    return pd.DataFrame(rows, columns=FOLD_TABLE_COLUMNS).sort_values(
        ["dataset", "protocol", "method", "seed", "fold"], ignore_index=True)
