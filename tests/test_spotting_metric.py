"""The MEGC spotting metrics and the spot-then-recognise score (pipeline/spotting/metric.py), on
hand-made intervals whose outcomes are worked out by hand."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest

from pipeline.spotting.metric import iou, match_tables, match_video, spotting_scores, str_scores

STR_CLASSES = ["negative", "positive", "surprise", "others"]
COLUMNS = ["video", "onset", "offset", "type", "emotion"]


def table(*rows: tuple) -> pd.DataFrame:
    """(video, onset, offset, type[, emotion]) rows as a table; no rows: an empty spotting table."""
    return pd.DataFrame(list(rows), columns=COLUMNS[: len(rows[0]) if rows else 4])


def scores_of(truths: pd.DataFrame, predictions: pd.DataFrame, **options) -> dict[str, dict]:
    scores = spotting_scores(truths, predictions, **options)
    return {row["type"]: row for row in scores.to_dict("records")}


# --- IoU of inclusive intervals ---------------------------------------------------------------------

def test_iou_counts_frames_of_inclusive_intervals():
    assert iou((1, 10), (6, 15)) == pytest.approx(1 / 3)       # 5 shared of 15
    assert iou((1, 10), (1, 10)) == 1.0
    assert iou((7, 7), (7, 7)) == 1.0                           # one frame each
    assert iou((7, 7), (8, 8)) == 0.0                           # adjacent single frames
    assert iou((5, 5), (1, 10)) == pytest.approx(1 / 10)
    assert iou((1, 3), (10, 12)) == 0.0                         # disjoint
    assert iou((1, 10), (10, 20)) == pytest.approx(1 / 20)      # frame 10 is in both


# --- one video ---------------------------------------------------------------------------------------

def test_exact_hit():
    match = match_video([(10, 20)], [(10, 20)])
    assert match.pairs == [(0, 0)]
    assert match.false_positives == [] and match.false_negatives == []


def test_iou_at_half_is_a_hit_and_just_below_is_not():
    assert match_video([(1, 10)], [(1, 5)]).pairs == [(0, 0)]       # 5/10 = 0.5
    below = match_video([(1, 10)], [(1, 4)])                          # 4/10
    assert below.pairs == [] and below.false_positives == [0] and below.false_negatives == [0]
    assert match_video([(1, 3)], [(1, 6)]).pairs == [(0, 0)]         # 3/6, the prediction the longer
    assert match_video([(1, 3)], [(1, 7)]).pairs == []               # 3/7


def test_two_predictions_on_one_truth_are_one_hit_and_one_false_positive():
    match = match_video([(1, 10)], [(1, 10), (2, 10)])
    assert match.pairs == [(0, 0)]
    assert match.false_positives == [1] and match.false_negatives == []


def test_one_prediction_over_two_truths_spots_one():
    match = match_video([(1, 5), (6, 10)], [(1, 10)])                 # IoU 0.5 with each: tie to truth 0
    assert match.pairs == [(0, 0)]
    assert match.false_negatives == [1] and match.false_positives == []


def test_greedy_takes_the_higher_iou_first():
    # The prediction has IoU 8/12 with truth 0 and 9/11 with truth 1: truth 1 gets it although listed second.
    match = match_video([(1, 10), (4, 13)], [(3, 12)])
    assert match.pairs == [(1, 0)] and match.false_negatives == [0]
    # One truth, the better of two predictions wins whatever their order.
    assert match_video([(1, 10)], [(1, 6), (1, 9)]).pairs == [(0, 1)]
    assert match_video([(1, 10)], [(1, 9), (1, 6)]).pairs == [(0, 0)]


def test_greedy_does_not_pair_a_prediction_twice_when_truths_tie():
    # Two identical truths, two identical predictions: two hits, ties in index order.
    match = match_video([(1, 10), (1, 10)], [(1, 10), (1, 10)])
    assert match.pairs == [(0, 0), (1, 1)]


def test_empty_video_sides():
    nothing_predicted = match_video([(1, 10), (20, 30)], [])
    assert nothing_predicted.pairs == [] and nothing_predicted.false_negatives == [0, 1]
    nothing_true = match_video([], [(1, 10)])
    assert nothing_true.pairs == [] and nothing_true.false_positives == [0]


# --- tables: pooling, empty videos, types ------------------------------------------------------------

def test_videos_with_only_truths_or_only_predictions():
    truths = table(("v1", 1, 10, "micro"), ("v2", 5, 9, "micro"), ("v2", 40, 50, "micro"))
    predictions = table(("v1", 1, 10, "micro"), ("v3", 1, 10, "micro"))
    overall = scores_of(truths, predictions)["overall"]
    assert (overall["tp"], overall["fp"], overall["fn"]) == (1, 1, 2)   # v2's truths missed, v3's prediction false


def test_nothing_at_all_scores_zero():
    empty = table()
    scores = spotting_scores(empty, empty)
    assert list(scores["type"]) == ["micro", "macro", "overall"]
    assert (scores[["tp", "fp", "fn"]] == 0).all().all()
    assert (scores[["precision", "recall", "f1"]] == 0.0).all().all()


def test_no_predictions_or_no_truths():
    truths = table(("v1", 1, 10, "macro"))
    assert scores_of(truths, table())["macro"] == {"type": "macro", "tp": 0, "fp": 0, "fn": 1,
                                                   "precision": 0.0, "recall": 0.0, "f1": 0.0}
    only_predictions = scores_of(table(), truths)["overall"]
    assert (only_predictions["fp"], only_predictions["f1"]) == (1, 0.0)


def test_counts_are_pooled_over_videos_before_scoring():
    # v1: one hit (F1 1 alone); v2: three misses (F1 0 alone). Mean of per-video F1s 0.5; pooled 2/(2+3).
    truths = table(("v1", 1, 10, "micro"), ("v2", 1, 10, "micro"), ("v2", 20, 30, "micro"),
                   ("v2", 40, 50, "micro"))
    predictions = table(("v1", 1, 10, "micro"), ("v1", 100, 110, "micro"), ("v2", 200, 210, "micro"))
    micro = scores_of(truths, predictions)["micro"]
    assert (micro["tp"], micro["fp"], micro["fn"]) == (1, 2, 3)
    assert micro["precision"] == pytest.approx(1 / 3)
    assert micro["recall"] == pytest.approx(1 / 4)
    assert micro["f1"] == pytest.approx(2 / (2 + 2 + 3))


def test_overall_sums_the_types_counts():
    truths = table(("v1", 1, 10, "micro"), ("v1", 100, 200, "macro"), ("v1", 300, 400, "macro"))
    predictions = table(("v1", 1, 9, "micro"), ("v1", 100, 190, "macro"), ("v1", 500, 510, "micro"))
    scores = scores_of(truths, predictions)
    assert (scores["micro"]["tp"], scores["micro"]["fp"], scores["micro"]["fn"]) == (1, 1, 0)
    assert (scores["macro"]["tp"], scores["macro"]["fp"], scores["macro"]["fn"]) == (1, 0, 1)
    assert (scores["overall"]["tp"], scores["overall"]["fp"], scores["overall"]["fn"]) == (2, 1, 1)
    assert scores["overall"]["f1"] == pytest.approx(4 / 6)


def test_matching_is_within_the_type_unless_asked_otherwise():
    truths = table(("v1", 1, 10, "micro"))
    predictions = table(("v1", 1, 10, "macro"))
    within = scores_of(truths, predictions)
    assert (within["micro"]["tp"], within["micro"]["fn"], within["macro"]["fp"]) == (0, 1, 1)
    assert within["overall"]["f1"] == 0.0

    across = scores_of(truths, predictions, within_type=False)
    assert (across["micro"]["tp"], across["macro"]["tp"], across["macro"]["fp"]) == (1, 0, 0)  # the truth's type
    assert across["overall"]["f1"] == 1.0


def test_false_positive_across_types_counts_under_the_predictions_type():
    truths = table(("v1", 1, 10, "micro"))
    predictions = table(("v1", 500, 600, "macro"))
    across = scores_of(truths, predictions, within_type=False)
    assert (across["micro"]["fn"], across["macro"]["fp"]) == (1, 1)


def test_score_column_is_ignored_and_match_rows_point_into_the_tables():
    truths = table(("v1", 1, 10, "micro"), ("v1", 50, 60, "micro"))
    predictions = table(("v1", 50, 60, "micro"), ("v1", 300, 310, "micro")).assign(score=[0.1, 0.9])
    predictions.index = [10, 20]                                   # row positions, not index labels
    matches = match_tables(truths, predictions).set_index("outcome")
    assert (matches.loc["tp", "truth_row"], matches.loc["tp", "prediction_row"]) == (1, 0)
    assert matches.loc["fp", "prediction_row"] == 1 and pd.isna(matches.loc["fp", "truth_row"])
    assert matches.loc["fn", "truth_row"] == 0


# --- spot then recognise -----------------------------------------------------------------------------

def test_strs_on_a_worked_example():
    truths = table(("v1", 10, 20, "micro", "positive"),
                   ("v1", 50, 60, "micro", "negative"),
                   ("v1", 100, 150, "macro", "surprise"),       # never spotted: a miss
                   ("v2", 5, 15, "micro", "negative"),
                   ("v2", 200, 260, "macro", np.nan))           # no emotion: spotting only
    predictions = table(("v1", 10, 20, "micro", "positive"),    # hit, named right
                        ("v1", 52, 60, "micro", "positive"),    # hit (IoU 9/11), named wrong
                        ("v1", 300, 310, "micro", "negative"),  # false positive
                        ("v2", 5, 15, "micro", "negative"),     # hit, named right
                        ("v2", 200, 250, "macro", "surprise"),  # hit (IoU 51/61), not analysed
                        ("v3", 1, 5, "macro", "others"))        # false positive: v3 has no truths
    result = str_scores(truths, predictions, STR_CLASSES)
    # Spotting: TP 4, FP 2, FN 1 -> F1 = 8 / 11.
    assert result.spotting_f1 == pytest.approx(8 / 11)
    # Analysis pairs (true, predicted): (positive, positive), (negative, positive), (negative, negative).
    # negative: TP 1, FP 0, FN 1 -> 2/3; positive: TP 1, FP 1, FN 0 -> 2/3; surprise, others absent.
    assert result.analysed == 3
    assert result.confusion.tolist() == [[1, 1, 0, 0], [0, 1, 0, 0], [0, 0, 0, 0], [0, 0, 0, 0]]
    assert result.analysis_f1 == pytest.approx(2 / 3)
    assert result.analysis_uar == pytest.approx((1 / 2 + 1) / 2)
    assert result.strs == pytest.approx(8 / 11 * 2 / 3)


def test_uar_is_mean_recall_not_mean_precision():
    # Pairs: negative->negative twice, negative->positive, positive->positive.
    # Recall: negative 2/3, positive 1 -> UAR 5/6. Precision: negative 1, positive 1/2 -> mean 3/4.
    truths = table(*[("v1", start, start + 9, "micro", emotion)
                     for start, emotion in [(0, "negative"), (20, "negative"), (40, "negative"), (60, "positive")]])
    predictions = table(*[("v1", start, start + 9, "micro", emotion)
                          for start, emotion in [(0, "negative"), (20, "negative"), (40, "positive"),
                                                 (60, "positive")]])
    result = str_scores(truths, predictions, ["negative", "positive"])
    assert result.analysis_uar == pytest.approx(5 / 6)
    assert result.analysis_f1 == pytest.approx((4 / 5 + 2 / 3) / 2)    # negative 4/5, positive 2/3
    assert result.spotting_f1 == 1.0


def test_str_with_absent_classes():
    # surprise and others appear nowhere: left out. A class predicted but never true scores F1 0.
    truths = table(("v1", 1, 10, "micro", "negative"))
    predictions = table(("v1", 1, 10, "micro", "positive"))
    result = str_scores(truths, predictions, STR_CLASSES)
    assert result.analysis_f1 == 0.0 and result.analysis_uar == 0.0 and result.strs == 0.0
    right = str_scores(truths, truths, STR_CLASSES)
    assert (right.analysis_f1, right.analysis_uar, right.strs) == (1.0, 1.0, 1.0)


def test_str_with_nothing_to_analyse_scores_zero():
    truths = table(("v1", 1, 10, "macro", np.nan))
    predictions = table(("v1", 1, 10, "macro", "surprise"))
    result = str_scores(truths, predictions, STR_CLASSES)
    assert result.spotting_f1 == 1.0
    assert (result.analysed, result.analysis_f1, result.strs) == (0, 0.0, 0.0)


# --- validation --------------------------------------------------------------------------------------

def test_onset_after_offset_is_refused_naming_the_interval():
    with pytest.raises(ValueError, match=r"truth interval \(10, 5\) of video 'v7': onset after offset"):
        spotting_scores(table(("v7", 10, 5, "micro")), table())


def test_unknown_type_is_refused():
    with pytest.raises(ValueError, match=r"prediction interval \(1, 5\) of video 'v1': type 'mini'"):
        spotting_scores(table(), table(("v1", 1, 5, "mini")))


def test_missing_columns_are_refused():
    with pytest.raises(ValueError, match="prediction table lacks column.*offset"):
        spotting_scores(table(), pd.DataFrame({"video": ["v1"], "onset": [1], "type": ["micro"]}))
    with pytest.raises(ValueError, match="truth table lacks column.*emotion"):
        str_scores(table(("v1", 1, 5, "micro")), table(("v1", 1, 5, "micro", "negative")), STR_CLASSES)


def test_non_integer_frames_are_refused():
    with pytest.raises(ValueError, match="integer frame numbers"):
        spotting_scores(table(("v1", 1.5, 5, "micro")), table())
    with pytest.raises(ValueError, match="integer frame numbers"):
        spotting_scores(table(("v1", math.nan, 5, "micro")), table())


def test_unknown_or_missing_predicted_emotion_is_refused():
    truths = table(("v1", 1, 5, "micro", "negative"))
    with pytest.raises(ValueError, match=r"emotion 'anger' is not a class \(the classes: negative,"):
        str_scores(truths, table(("v1", 1, 5, "micro", "anger")), STR_CLASSES)
    with pytest.raises(ValueError, match=r"prediction interval \(1, 5\) of video 'v1': has no emotion"):
        str_scores(truths, table(("v1", 1, 5, "micro", np.nan)), STR_CLASSES)
