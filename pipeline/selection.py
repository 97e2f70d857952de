"""Epoch selection: which epoch of a trained network scores a fold's test clips (params' `selection`).

- `last` (the default): the network after the last epoch of its fixed schedule. Reads nothing of the test
  fold; the number every Table 2 row of a network reports unless asked otherwise.
- `inner`: the epoch chosen on validation subjects drawn from the fold's own training clips
  (`validation_subjects`: a share of the training subjects, stratified as far as the classes allow; on
  k-fold, whose outer split is by clip, whole subjects of the training part). The network trains on the
  other training clips; after every epoch it scores the validation clips and the test clips; the epoch
  with the best validation score is chosen and the test clips get the predictions that network made at
  that epoch (the network kept at that epoch, not retrained). The choice reads no test clip.
- `test`: the field's practice, for audits only. The epoch whose predictions score best on the fold's own
  test clips, as HTNet's `main_HTNet.py` (accuracy, `<=`: the latest best) and CausalNet's `main_train.py`
  (accuracy, `<`: the earliest best) choose it. It reads the test labels; Table 2 marks its rows, never
  makes them by default, and the report prints them only beside the same method's `last` rows. It needs
  no training of its own: the `last` run records every epoch's test predictions (`epochs.h5`).

A network's fold run with selection writes epochs.h5 beside its predictions.csv and metrics.json::

    /test_clip_id, /test_subject, /test_label (/test_source on a composite)   str (n,)
    /test_probabilities        float32 (epochs, n, classes)   after every epoch, in eval mode
    /losses                    float64 (epochs,)              mean training loss of each epoch
    /validation_clip_id, /validation_label, /validation_probabilities, /validation_scores   (inner only)
    attrs: selection, classes, chosen_epoch (1-based; inner: by validation, last: the last), metric, ties
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import h5py
import numpy as np
import pandas as pd

from pipeline import metrics
from pipeline.artifacts import atomic_output, attr_value, open_h5_for_write, provenance, write_array, write_provenance
from pipeline.errors import BadInputError
from pipeline.fold_results import class_indices, split_fold, write_fold_outputs

METRICS = ("accuracy", "uf1")
TIES = ("latest", "earliest")   # latest: a later epoch as good replaces the best (HTNet's <=); earliest: CausalNet's <
TEST_NOTE = ("selection = test: the epoch was chosen on this fold's own test labels (the practice of HTNet's and "
             "CausalNet's published code); an audit number, not an estimate of accuracy on unseen subjects")


def epoch_scores(probabilities: np.ndarray, labels: np.ndarray, metric: str) -> np.ndarray:
    """The score of each epoch's predictions (probabilities: epochs x clips x classes) against `labels`."""
    if metric not in METRICS:
        raise ValueError(f"epoch_selection.metric must be one of {METRICS}, got {metric!r}")
    predicted = probabilities.argmax(axis=2)
    n_classes = probabilities.shape[2]
    if metric == "accuracy":
        return (predicted == labels[None]).mean(axis=1)
    return np.array([metrics.uf1(labels, p, n_classes) for p in predicted])


def choose_epoch(scores: Sequence[float], ties: str) -> int:
    """The 1-based epoch of the best score; among equal scores the latest or the earliest (`ties`)."""
    if ties not in TIES:
        raise ValueError(f"epoch_selection.ties must be one of {TIES}, got {ties!r}")
    scores = np.asarray(scores, dtype=np.float64)
    best = np.flatnonzero(scores == scores.max())
    return int(best[-1] if ties == "latest" else best[0]) + 1


def validation_subjects(subjects: Sequence[str], labels: Sequence[str], fraction: float, seed: int) -> list[str]:
    """The training subjects held out to choose the epoch (`inner`): round(fraction x subjects), at least one
    and at most all but one; first one subject per class, rarest class first, while another training
    subject keeps that class; then the rest in a seeded random order, skipping a subject that would take a
    class's last training subject where another can be taken."""
    subjects, labels = np.asarray(subjects, dtype=str), np.asarray(labels, dtype=str)
    unique = sorted(set(subjects.tolist()))
    if len(unique) < 2:
        raise ValueError(f"inner selection needs at least 2 training subjects, the fold has {len(unique)}")
    wanted = min(max(1, round(fraction * len(unique))), len(unique) - 1)
    order = [unique[i] for i in np.random.default_rng(seed).permutation(len(unique))]
    classes_of = {s: set(labels[subjects == s].tolist()) for s in unique}
    chosen: list[str] = []

    def keeps_classes(subject: str) -> bool:
        left = [s for s in unique if s not in chosen and s != subject]
        return all(any(c in classes_of[s] for s in left) for c in classes_of[subject])

    per_class = Counter(c for s in unique for c in classes_of[s])
    for label in sorted(per_class, key=lambda c: (per_class[c], c)):
        if len(chosen) == wanted or any(label in classes_of[s] for s in chosen):
            continue
        candidate = next((s for s in order if s not in chosen and label in classes_of[s] and keeps_classes(s)), None)
        if candidate is not None:
            chosen.append(candidate)
    for keep_only in (True, False):
        for subject in order:
            if len(chosen) < wanted and subject not in chosen and (keeps_classes(subject) or not keep_only):
                chosen.append(subject)
    return sorted(chosen)


@dataclass(frozen=True)
class FoldRows:
    """A fold's rows in a method's store: trained on, validation (inner selection; else none) and test."""
    train: np.ndarray
    validation: np.ndarray
    test: np.ndarray

    @property
    def watched(self) -> np.ndarray:
        """The rows scored after every epoch: validation first, then test."""
        return np.concatenate([self.validation, self.test])


def fold_rows(clips: pd.DataFrame, folds: pd.DataFrame, fold: int, source: str, selection: str = "last",
              inner: Mapping[str, Any] | None = None) -> FoldRows:
    """`split_fold`'s training and test rows; with selection `inner` the validation subjects (params'
    epoch_selection) taken out of the training rows."""
    train, test = split_fold(clips[["clip_id", "subject", "label"]], folds, fold, source)
    validation = np.zeros(0, dtype=np.int64)
    if selection == "inner":
        if not inner:
            raise ValueError("inner selection needs params' epoch_selection")
        train, validation = inner_split(clips, train, fraction=float(inner["validation_subjects"]),
                                        seed=int(inner["split_seed"]), fold=int(fold))
    elif selection != "last":
        raise ValueError(f"a network trains with selection last or inner, not {selection!r}")
    return FoldRows(train, validation, test)


def inner_split(clips: pd.DataFrame, train_rows: np.ndarray, *, fraction: float, seed: int,
                fold: int) -> tuple[np.ndarray, np.ndarray]:
    """A fold's training rows split into (rows trained on, validation rows) by `validation_subjects`, its seed
    `seed` and the fold number: the same split for every method and network seed."""
    part = clips.iloc[train_rows]
    held = set(validation_subjects(part["subject"].astype(str).tolist(), part["label"].astype(str).tolist(),
                                   fraction, int(np.random.SeedSequence([seed, fold]).generate_state(1)[0])))
    is_validation = part["subject"].astype(str).isin(held).to_numpy()
    return train_rows[~is_validation], train_rows[is_validation]


# --- a fold's epochs ----------------------------------------------------------------------------------


def write_epochs(path: str | os.PathLike, test: pd.DataFrame, test_probabilities: np.ndarray, losses: Sequence[float],
                 *, classes: Sequence[str], selection: str, chosen_epoch: int, metric: str, ties: str,
                 validation: pd.DataFrame | None = None, validation_probabilities: np.ndarray | None = None,
                 validation_scores: np.ndarray | None = None, record: Mapping[str, Any] | None = None,
                 n_train_clips: int | None = None, every_epoch: bool = True) -> None:
    """A fold's epochs.h5 (module docstring), atomically; `every_epoch` false: only the last epoch's test
    predictions were recorded (a network that records every epoch only when asked: the RCNN)."""
    with atomic_output(path) as tmp, open_h5_for_write(tmp) as h5:
        if record:
            write_provenance(h5, record)
        h5.attrs.update({"selection": selection, "classes": list(classes), "chosen_epoch": int(chosen_epoch),
                         "metric": metric, "ties": ties, "every_epoch": bool(every_epoch)})
        if n_train_clips is not None:
            h5.attrs["n_train_clips"] = int(n_train_clips)
        for column in ("clip_id", "subject", "label", "source"):
            if column in test:
                write_array(h5, f"test_{column}", test[column].astype(str).to_numpy().astype("S"))
        write_array(h5, "test_probabilities", np.asarray(test_probabilities, dtype=np.float32))
        write_array(h5, "losses", np.asarray(losses, dtype=np.float64))
        if validation is not None:
            write_array(h5, "validation_clip_id", validation["clip_id"].astype(str).to_numpy().astype("S"))
            write_array(h5, "validation_label", validation["label"].astype(str).to_numpy().astype("S"))
            write_array(h5, "validation_probabilities", np.asarray(validation_probabilities, dtype=np.float32))
            write_array(h5, "validation_scores", np.asarray(validation_scores, dtype=np.float64))


def selection_rule(inner: Mapping[str, Any] | None) -> tuple[str, str]:
    """The metric and tie rule an epoch is chosen by (params' epoch_selection; the defaults without it)."""
    return (inner or {}).get("metric", "accuracy"), (inner or {}).get("ties", "latest")


def record_epochs(path: str | os.PathLike, clips: pd.DataFrame, test_rows: np.ndarray, validation_rows: np.ndarray,
                  watched: np.ndarray, losses: Sequence[float], *, classes: Sequence[str], selection: str,
                  inner: Mapping[str, Any] | None, epochs: int | None = None, every_epoch: bool = True,
                  record: Mapping[str, Any] | None = None,
                  n_train_clips: int | None = None) -> tuple[np.ndarray, dict[str, Any]]:
    """Choose a trained fold's scored epoch and write its epochs.h5. `watched`: the class probabilities of
    the validation rows, then the test rows, after each recorded epoch (epochs x rows x classes); `epochs`:
    the schedule's (default: the epochs recorded); `every_epoch` false: only the last epoch was recorded.
    The epoch is the last, or (inner) the one that scores best on the validation clips: only validation
    labels are read. Returns the test clips' probabilities at that epoch and what metrics.json says of it."""
    epochs = epochs or len(watched)
    metric, ties = selection_rule(inner)
    n_validation = len(validation_rows)
    validation, validation_probabilities, scores = None, None, None
    chosen = epochs
    if selection == "inner":
        validation, validation_probabilities = clips.iloc[validation_rows], watched[:, :n_validation]
        labels = class_indices(validation["label"].tolist(), classes, "the validation clips")
        scores = epoch_scores(validation_probabilities, labels, metric)
        chosen = choose_epoch(scores, ties)
    test_probabilities = watched[:, n_validation:]
    write_epochs(path, clips.iloc[test_rows], test_probabilities, losses, classes=classes, selection=selection,
                 chosen_epoch=chosen, metric=metric, ties=ties, validation=validation,
                 validation_probabilities=validation_probabilities, validation_scores=scores, record=record,
                 n_train_clips=n_train_clips, every_epoch=every_epoch)
    said: dict[str, Any] = {"selection": selection, "selected_epoch": chosen, "epochs": epochs}
    if validation is not None:
        said |= {"selected_by": f"validation {metric}, {ties} best", "n_validation_clips": n_validation,
                 "validation_subjects": sorted(set(validation["subject"].astype(str))),
                 f"validation_{metric}_by_epoch": [round(float(s), 6) for s in scores]}
    return np.asarray(test_probabilities[chosen - 1 if every_epoch else -1], dtype=np.float64), said


def write_fold_with_epochs(out_dir: str | os.PathLike, clips: pd.DataFrame, test_rows: np.ndarray,
                           validation_rows: np.ndarray, watched: np.ndarray, losses: Sequence[float], *,
                           classes: Sequence[str], selection: str, inner: Mapping[str, Any] | None,
                           extra: Mapping[str, Any], record: Mapping[str, Any] | None = None,
                           epochs: int | None = None, every_epoch: bool = True) -> None:
    """A trained fold's three files: epochs.h5 (`record_epochs`), and predictions.csv and metrics.json at the
    chosen epoch."""
    probabilities, said = record_epochs(Path(out_dir) / "epochs.h5", clips, test_rows, validation_rows, watched,
                                        losses, classes=classes, selection=selection, inner=inner, epochs=epochs,
                                        every_epoch=every_epoch, record=record,
                                        n_train_clips=extra.get("n_train_clips"))
    write_fold_outputs(out_dir, clips.iloc[test_rows], probabilities, classes, {**extra, **said})


def read_epochs(path: str | os.PathLike) -> tuple[pd.DataFrame, np.ndarray, dict[str, Any]]:
    """A fold's test clips (clip_id, subject, label[, source]), their probabilities after every epoch
    (epochs x clips x classes) and the file's attributes."""
    with h5py.File(path, "r") as h5:
        if "test_probabilities" not in h5:
            raise BadInputError("(fold)", path, "has no per-epoch test predictions (not an epochs.h5?)")
        test = pd.DataFrame({column: [v.decode() for v in h5[f"test_{column}"][()]]
                             for column in ("clip_id", "subject", "label", "source") if f"test_{column}" in h5})
        attrs = {key: attr_value(value) for key, value in h5.attrs.items()}
        return test, h5["test_probabilities"][()], attrs


def select_on_test_stage(epochs_h5: Path, out_dir: Path, fold: int, *, classes: Sequence[str], metric: str,
                         ties: str) -> None:
    """selection = test (audit only): the fold's predictions at the epoch that scores best on its own test
    labels (`metric`, `ties`), read from the `last` run's epochs.h5; metrics.json says so."""
    test, probabilities, attrs = read_epochs(epochs_h5)
    if not attrs.get("every_epoch", True):
        raise BadInputError(f"fold {fold}", epochs_h5, "holds only the last epoch's predictions: the network was "
                            "trained without `test` in params' selection; rerun its training")
    trained_classes = [str(c) for c in attrs["classes"]]
    if trained_classes != list(classes):
        raise BadInputError(f"fold {fold}", epochs_h5,
                            f"was trained on the classes {trained_classes}, not {list(classes)}")
    labels = class_indices(test["label"].tolist(), classes, os.fspath(epochs_h5))
    scores = epoch_scores(probabilities, labels, metric)
    epoch = choose_epoch(scores, ties)
    extra = {"selection": "test", "selected_epoch": epoch, "epochs": len(scores), "selected_by": metric,
             "ties": ties, f"test_{metric}_by_epoch": [round(float(s), 6) for s in scores],
             "last_epoch_test_score": round(float(scores[-1]), 6), "note": TEST_NOTE, "fold": int(fold),
             **({"n_train_clips": int(attrs["n_train_clips"])} if "n_train_clips" in attrs else {}),
             "provenance": provenance("test_selection", {"metric": metric, "ties": ties, "fold": int(fold)},
                                      {"epochs": epochs_h5})}
    write_fold_outputs(out_dir, test, probabilities[epoch - 1].astype(np.float64), classes, extra)
