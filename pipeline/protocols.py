"""Evaluation protocols: which clips are tested in which fold, computed once and shared by every method.

kfold5 is the paper's protocol (Sec. III-C): the samples are randomly split into five parts, four
train and one tests, in turn; kfold<k> is the same with k parts (kfold10), so the number of folds is
in the protocol's name and in every path under it. Clips of one subject can fall on both sides of such
a split, so we also provide leave-one-subject-out (loso), the subject-independent protocol of later
MER work.

A folds file (data/{ds}/folds/{protocol}.csv) has one row per clip: clip_id, subject, label, fold;
fold k's test set is the clips with fold == k, its training set all the others.

Repeated k-fold (`folds.repeats` R > 1): the k-fold split is drawn R times, repeat r with seed
folds.seed + r (repeat 0 is the single split's), and the file has one row per clip and repeat:
clip_id, subject, label, repeat, fold, with fold = r * k + i, so every fold number names one job and
every method runs on the same R x k folds. Fold k's training set is the other clips of its own
repeat (`repeat_of_fold`). Leave-one-subject-out has one split whatever R is.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
from sklearn.model_selection import KFold, StratifiedKFold

from pipeline.artifacts import atomic_output
from pipeline.errors import MerflowError, ParamsError

PROTOCOL_NAMES = "kfold<k> (k >= 2; kfold5 is the paper's) or loso"
SUBJECT_PROTOCOLS = ("loso",)        # one fold per subject: the fold count comes from the data


def kfold_k(protocol: str) -> int | None:
    """k of a k-fold protocol's name (kfold5 -> 5); None for any other name."""
    match = re.fullmatch(r"kfold([1-9]\d*)", protocol)
    return int(match.group(1)) if match and int(match.group(1)) >= 2 else None


def check_protocol(protocol: str) -> None:
    if kfold_k(protocol) is None and protocol not in SUBJECT_PROTOCOLS:
        raise ParamsError(f"unknown protocol {protocol!r}; valid: {PROTOCOL_NAMES}")


def kfold_folds(index: pd.DataFrame, k: int, seed: int) -> pd.DataFrame:
    """The paper's random k-fold split over clips, stratified by label, in the index's row order."""
    _check_clip_ids(index)
    index = index.reset_index(drop=True)
    if len(index) < k:
        raise ValueError(f"cannot split {len(index)} clips into {k} folds")
    # Assign folds over clips sorted by id, so the split depends on the seed and the clips only,
    # not on the order the index lists them in.
    clips = index.sort_values("clip_id", kind="stable")
    if clips["label"].value_counts().min() >= k:
        splitter = StratifiedKFold(n_splits=k, shuffle=True, random_state=seed)
    else:
        # A class with fewer than k clips cannot appear in every fold, and StratifiedKFold would
        # only warn and split unevenly; a plain shuffled split is the honest fallback.
        splitter = KFold(n_splits=k, shuffle=True, random_state=seed)
    fold = pd.Series(-1, index=clips.index, dtype="int64")
    for number, (_, test) in enumerate(splitter.split(clips, clips["label"])):
        fold.iloc[test] = number
    return _folds_table(index, fold.sort_index())


def repeated_kfold_folds(index: pd.DataFrame, k: int, seed: int, repeats: int) -> pd.DataFrame:
    """`repeats` k-fold splits (seeds seed, seed + 1, ...) in one table, with a repeat column and the
    fold numbers of repeat r shifted by r * k; a single split (repeats 1) is `kfold_folds` unchanged."""
    if repeats == 1:
        return kfold_folds(index, k, seed)
    tables = []
    for repeat in range(repeats):
        table = kfold_folds(index, k, seed + repeat)
        tables.append(table.assign(repeat=repeat, fold=table["fold"] + repeat * k))
    return pd.concat(tables, ignore_index=True)[["clip_id", "subject", "label", "repeat", "fold"]]


def repeat_of_fold(folds: pd.DataFrame, fold: int) -> pd.DataFrame:
    """The rows of the folds table that define `fold`: its repeat's (one row per clip), or the whole
    table when it has no repeat column."""
    if "repeat" not in folds:
        return folds
    repeat = folds.loc[folds["fold"] == fold, "repeat"].unique()
    if len(repeat) != 1:
        raise MerflowError(f"fold {fold} is not in the folds file (or is in more than one repeat: {list(repeat)})")
    return folds[folds["repeat"] == repeat[0]].drop(columns="repeat").reset_index(drop=True)


def planned_folds(protocol: str, repeats: int) -> list[int] | None:
    """The fold numbers of a k-fold protocol with `repeats` repeats; None for leave-one-subject-out
    (its folds come from the data)."""
    k = kfold_k(protocol)
    return None if k is None else list(range(k * repeats))


def loso_folds(index: pd.DataFrame) -> pd.DataFrame:
    """Leave-one-subject-out: fold k tests every clip of the k-th subject in sorted order."""
    _check_clip_ids(index)
    subjects = sorted(index["subject"].unique(), key=_natural_key)
    position = {subject: number for number, subject in enumerate(subjects)}
    return _folds_table(index, index["subject"].map(position).astype("int64"))


def folds_stage(index_csv: Path, folds_csv: Path, *, protocol: str, seed: int, repeats: int = 1) -> None:
    """Write the folds file of one protocol for the clips of index.csv."""
    check_protocol(protocol)
    index = pd.read_csv(index_csv, dtype={"clip_id": str, "subject": str, "label": str})
    k = kfold_k(protocol)
    folds = repeated_kfold_folds(index, k, seed, repeats) if k is not None else loso_folds(index)
    with atomic_output(folds_csv) as tmp:
        folds.to_csv(tmp, index=False)


def fold_numbers(folds_csv: Path) -> list[int]:
    """The fold numbers a folds file defines, ascending (one training job each)."""
    return sorted(int(f) for f in pd.read_csv(folds_csv, usecols=["fold"])["fold"].unique())


def _folds_table(index: pd.DataFrame, fold: pd.Series) -> pd.DataFrame:
    table = index[["clip_id", "subject", "label"]].copy()
    table["fold"] = fold.to_numpy()
    return table.reset_index(drop=True)


def _check_clip_ids(index: pd.DataFrame) -> None:
    duplicated = index["clip_id"][index["clip_id"].duplicated()].unique()
    if len(duplicated):
        raise ValueError(f"clip ids appear more than once in the index: {', '.join(map(str, duplicated))}")


def _natural_key(subject: str) -> list:
    """Sort s2 before s10 (SMIC's subjects are not zero-padded)."""
    return [int(part) if part.isdigit() else part for part in re.split(r"(\d+)", str(subject))]
