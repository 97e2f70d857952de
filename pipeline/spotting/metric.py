"""The MEGC micro-expression spotting metrics, and the spot-then-recognise score (STRS), from their definitions.

Intervals
    An interval is an inclusive pair of integer frame numbers (onset, offset) with onset <= offset, so
    (7, 7) is one frame and (1, 10) ten. The intersection over union of two intervals counts frames:
    IoU = |X ∩ Y| / |X ∪ Y|; (1, 10) and (6, 15) share 5 of 15 frames, IoU 1/3. Disjoint intervals
    have IoU 0 (their union is the frames of both, not the span between them).

A hit
    As MEGC: a predicted interval Y spots a true interval X when (X ∩ Y) / (X ∪ Y) >= k with k = 0.5. The
    comparison is made as |X ∩ Y| >= k |X ∪ Y| on the frame counts, so an IoU of exactly 0.5 (truth
    (1, 10), prediction (1, 5)) is a hit, without rounding. Each true interval is spotted at most once
    and each prediction spots at most one truth: a second prediction on an already spotted truth is a
    false positive, and a prediction that could spot two truths spots one, the other staying a miss.

Matching order
    Within a video, every (truth, prediction) pair that passes the threshold is a candidate; candidates
    are taken greedily by IoU, highest first, skipping any whose truth or prediction is already taken.
    Ties go to the lower truth index, then the lower prediction index (the intervals' order in the
    table), so the result does not depend on sorting details. Greedy is not a maximum matching in
    general, but with k = 0.5 and non-overlapping intervals of one kind a prediction can pass the
    threshold with two truths only when it is exactly their union split in halves, so it rarely matters.

Expression types
    Every interval is "macro" or "micro". By default (`within_type=True`) matching is within a type: a
    micro prediction can only spot a micro truth. This is how MEGC (2020 onwards) reports spotting, per
    type (micro, macro) and overall, overall being the pooled counts of both types. With
    `within_type=False` all intervals of a video are matched together regardless of type; a true
    positive and a miss then count under the truth's type, a false positive under the prediction's.

Counts and scores
    TP, FP and FN are pooled over all videos of the data set (never averaged per video), then
    precision = TP / (TP + FP), recall = TP / (TP + FN), F1 = 2 TP / (2 TP + FP + FN). A ratio 0/0 is
    defined as 0.0, so with no truths and no predictions every score, F1 included, is 0 (MEGC's own
    scripts give 0 here too). A video with truths and no predictions counts all its truths as misses
    (FN); a video with predictions and no truths counts all its predictions as false positives (FP).
    A `score` column (a prediction's confidence) may be present and is ignored.

Spot-then-recognise (MEGC 2024 and 2025, `str_scores`)
    Tables also carry an `emotion` column. The spotting F1 is the overall F1 above. The analysis part
    looks only at correctly spotted intervals (the TP pairs) whose truth has an emotion; a truth whose
    emotion is missing (NaN; e.g. SAMM-LV's macro intervals carry none) still counts for spotting but is
    left out of the analysis. Over those pairs the confusion of true vs predicted emotion gives:
    - analysis F1: the unweighted F1, the mean over classes of 2 TP / (2 TP + FP + FN), a class absent
      from both truth and prediction left out. MEGC's recognition task scores UF1 because its classes
      are badly imbalanced: each class weighs the same, so always naming the common class scores
      poorly, and the analysis part of STR is then on the same scale as the recognition task.
    - analysis UAR: the mean over the classes present in the truth of the per-class recall.
    - STRS = spotting F1 × analysis F1. With no analysable pair the analysis scores are 0.0 (nothing
      was named correctly), and so is STRS.

    How this differs from the public STRS script: that script used `DataFrame.append`, removed in
    pandas 2; what it called UAR was the mean per-class precision; one prediction could match several
    truths, and several predictions on one truth all counted as hits; the truths of a video with no
    prediction were never counted as misses, and predictions in a video without truths never as false
    positives; it crashed when a class was absent from the confusion; and its "analysis F1" was the
    harmonic mean of macro precision and macro recall, which is not the mean of the per-class F1s.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from pipeline.metrics import uar_from_confusion, uf1_from_confusion

Interval = tuple[int, int]

EXPRESSION_TYPES = ("micro", "macro")
SPOTTING_COLUMNS = ("video", "onset", "offset", "type")
STR_COLUMNS = (*SPOTTING_COLUMNS, "emotion")
MEGC_IOU_THRESHOLD = 0.5


# --- one video: intervals and their matching --------------------------------------------------------

def iou(a: Interval, b: Interval) -> float:
    """Frames shared by two inclusive intervals over the frames in either."""
    overlap, union = _overlap_and_union(a, b)
    return overlap / union


def _overlap_and_union(a: Interval, b: Interval) -> tuple[int, int]:
    overlap = max(0, min(a[1], b[1]) - max(a[0], b[0]) + 1)
    return overlap, (a[1] - a[0] + 1) + (b[1] - b[0] + 1) - overlap


@dataclass(frozen=True)
class VideoMatch:
    """The outcome of matching one video's intervals; indices are positions in the lists given."""

    pairs: list[tuple[int, int]]        # (truth index, prediction index): the true positives
    false_positives: list[int]          # prediction indices that spotted nothing
    false_negatives: list[int]          # truth indices nobody spotted


def match_video(truths: Sequence[Interval], predictions: Sequence[Interval],
                threshold: float = MEGC_IOU_THRESHOLD) -> VideoMatch:
    """One-to-one matching of predicted to true intervals with IoU >= `threshold`, greedy by IoU
    (highest first; ties to the lower truth index, then the lower prediction index)."""
    candidates = []
    for t, truth in enumerate(truths):
        for p, prediction in enumerate(predictions):
            overlap, union = _overlap_and_union(truth, prediction)
            if overlap > 0 and overlap >= threshold * union:
                candidates.append((-overlap / union, t, p))
    candidates.sort()
    truth_taken, prediction_taken = set(), set()
    pairs = []
    for _, t, p in candidates:
        if t not in truth_taken and p not in prediction_taken:
            pairs.append((t, p))
            truth_taken.add(t)
            prediction_taken.add(p)
    return VideoMatch(pairs=pairs,
                      false_positives=[p for p in range(len(predictions)) if p not in prediction_taken],
                      false_negatives=[t for t in range(len(truths)) if t not in truth_taken])


# --- whole tables ------------------------------------------------------------------------------------

def match_tables(truth_table: pd.DataFrame, prediction_table: pd.DataFrame,
                 threshold: float = MEGC_IOU_THRESHOLD, within_type: bool = True) -> pd.DataFrame:
    """Every video's matching, one row per outcome: columns video, outcome ("tp", "fp" or "fn"), type
    (the truth's for tp and fn, the prediction's for fp), truth_row and prediction_row (0-based row
    positions in the tables given; missing where the outcome has no truth or no prediction)."""
    truths = _checked(truth_table, "truth", SPOTTING_COLUMNS)
    predictions = _checked(prediction_table, "prediction", SPOTTING_COLUMNS)
    truth_rows = _rows_by_video(truths)
    prediction_rows = _rows_by_video(predictions)
    type_groups = [(kind,) for kind in EXPRESSION_TYPES] if within_type else [EXPRESSION_TYPES]
    records = []
    # Every video on either side: one with truths only yields misses, one with predictions only false positives.
    for video in dict.fromkeys([*truth_rows, *prediction_rows]):
        for kinds in type_groups:
            t_rows = [r for r in truth_rows.get(video, []) if truths["type"].iat[r] in kinds]
            p_rows = [r for r in prediction_rows.get(video, []) if predictions["type"].iat[r] in kinds]
            match = match_video(_intervals(truths, t_rows), _intervals(predictions, p_rows), threshold)
            for t, p in match.pairs:
                records.append((video, "tp", truths["type"].iat[t_rows[t]], t_rows[t], p_rows[p]))
            for p in match.false_positives:
                records.append((video, "fp", predictions["type"].iat[p_rows[p]], None, p_rows[p]))
            for t in match.false_negatives:
                records.append((video, "fn", truths["type"].iat[t_rows[t]], t_rows[t], None))
    matches = pd.DataFrame(records, columns=["video", "outcome", "type", "truth_row", "prediction_row"])
    return matches.astype({"truth_row": "Int64", "prediction_row": "Int64"})


def spotting_scores(truth_table: pd.DataFrame, prediction_table: pd.DataFrame,
                    threshold: float = MEGC_IOU_THRESHOLD, within_type: bool = True) -> pd.DataFrame:
    """Pooled TP, FP, FN and precision, recall, F1: one row per type "micro", "macro" and "overall"
    (overall from the sums of the two types' counts). Columns: type, tp, fp, fn, precision, recall, f1."""
    return _score_rows(match_tables(truth_table, prediction_table, threshold, within_type))


def _score_rows(matches: pd.DataFrame) -> pd.DataFrame:
    rows = []
    for kind in (*EXPRESSION_TYPES, "overall"):
        of_kind = matches if kind == "overall" else matches[matches["type"] == kind]
        tp, fp, fn = (int((of_kind["outcome"] == outcome).sum()) for outcome in ("tp", "fp", "fn"))
        rows.append({"type": kind, "tp": tp, "fp": fp, "fn": fn, "precision": _ratio(tp, tp + fp),
                     "recall": _ratio(tp, tp + fn), "f1": _ratio(2 * tp, 2 * tp + fp + fn)})
    return pd.DataFrame(rows)


def _ratio(numerator: int, denominator: int) -> float:
    """numerator / denominator, with 0/0 defined as 0.0."""
    return numerator / denominator if denominator else 0.0


# --- spot then recognise -----------------------------------------------------------------------------

@dataclass(frozen=True)
class StrScores:
    spotting: pd.DataFrame      # spotting_scores' table
    spotting_f1: float          # its overall F1
    analysis_f1: float          # unweighted F1 over the correctly spotted intervals with a true emotion
    analysis_uar: float         # unweighted average recall over the same intervals
    strs: float                 # spotting_f1 × analysis_f1
    confusion: np.ndarray       # (classes, classes): rows the true emotion, columns the predicted one
    classes: tuple[str, ...]
    analysed: int               # how many spotted intervals the analysis scores


def str_scores(truth_table: pd.DataFrame, prediction_table: pd.DataFrame, classes: Sequence[str],
               threshold: float = MEGC_IOU_THRESHOLD, within_type: bool = True) -> StrScores:
    """The spot-then-recognise scores: spotting F1 (overall), analysis UF1 and UAR on the correctly
    spotted intervals whose truth has an emotion, and STRS = spotting F1 × analysis F1."""
    classes = tuple(classes)
    truths = _checked(truth_table, "truth", STR_COLUMNS)
    predictions = _checked(prediction_table, "prediction", STR_COLUMNS)
    _check_emotions(truths, "truth", classes, missing_allowed=True)
    _check_emotions(predictions, "prediction", classes, missing_allowed=False)

    matches = match_tables(truths, predictions, threshold, within_type)
    spotting = _score_rows(matches)
    spotting_f1 = float(spotting.loc[spotting["type"] == "overall", "f1"].iat[0])

    class_index = {name: i for i, name in enumerate(classes)}
    confusion = np.zeros((len(classes), len(classes)), dtype=np.int64)
    hits = matches[matches["outcome"] == "tp"]
    for t, p in zip(hits["truth_row"], hits["prediction_row"], strict=True):
        true_emotion = truths["emotion"].iat[t]
        if pd.isna(true_emotion):       # nothing to recognise: counted for spotting only
            continue
        confusion[class_index[true_emotion], class_index[predictions["emotion"].iat[p]]] += 1
    analysed = int(confusion.sum())
    # uf1/uar_from_confusion refuse an empty matrix; no analysable interval means nothing named correctly.
    analysis_f1 = uf1_from_confusion(confusion) if analysed else 0.0
    analysis_uar = uar_from_confusion(confusion) if analysed else 0.0
    return StrScores(spotting=spotting, spotting_f1=spotting_f1, analysis_f1=analysis_f1,
                     analysis_uar=analysis_uar, strs=spotting_f1 * analysis_f1, confusion=confusion,
                     classes=classes, analysed=analysed)


# --- input checks ------------------------------------------------------------------------------------

def _checked(table: pd.DataFrame, name: str, columns: Sequence[str]) -> pd.DataFrame:
    """The table with a plain 0..n-1 index and integer onsets and offsets, or a ValueError saying
    which row is wrong."""
    missing = [column for column in columns if column not in table.columns]
    if missing:
        raise ValueError(f"the {name} table lacks column(s) {', '.join(missing)}; it needs {', '.join(columns)}")
    table = table.reset_index(drop=True)
    for row in range(len(table)):
        video, onset, offset, kind = (_plain(table[column].iat[row]) for column in SPOTTING_COLUMNS)
        where = f"{name} interval ({onset}, {offset}) of video {video!r}"
        if pd.isna(video):
            raise ValueError(f"{name} interval ({onset}, {offset}) in row {row} has no video")
        for frame in (onset, offset):
            if not isinstance(frame, (int, float, np.integer, np.floating)) or pd.isna(frame) or frame != int(frame):
                raise ValueError(f"{where}: onset and offset must be integer frame numbers")
        if onset > offset:
            raise ValueError(f"{where}: onset after offset")
        if kind not in EXPRESSION_TYPES:
            raise ValueError(f"{where}: type {kind!r} is neither 'micro' nor 'macro'")
    if len(table):
        table = table.astype({"onset": np.int64, "offset": np.int64})
    return table


def _check_emotions(table: pd.DataFrame, name: str, classes: tuple[str, ...], missing_allowed: bool) -> None:
    for row in range(len(table)):
        emotion = _plain(table["emotion"].iat[row])
        if pd.isna(emotion) and missing_allowed:
            continue
        if emotion not in classes:
            video, onset, offset = (_plain(table[column].iat[row]) for column in ("video", "onset", "offset"))
            problem = "has no emotion" if pd.isna(emotion) else f"emotion {emotion!r} is not a class"
            raise ValueError(f"{name} interval ({onset}, {offset}) of video {video!r}: {problem} "
                             f"(the classes: {', '.join(classes)})")


def _plain(value: object) -> object:
    """A numpy scalar as the Python value it holds, so that messages read 'v1' rather than np.str_('v1')."""
    return value.item() if isinstance(value, np.generic) else value


def _rows_by_video(table: pd.DataFrame) -> dict[object, list[int]]:
    rows: dict[object, list[int]] = {}
    for row, video in enumerate(table["video"]):
        rows.setdefault(video, []).append(row)
    return rows


def _intervals(table: pd.DataFrame, rows: list[int]) -> list[Interval]:
    return [(int(table["onset"].iat[r]), int(table["offset"].iat[r])) for r in rows]
