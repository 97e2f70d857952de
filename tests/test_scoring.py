"""Table 2's headline, each protocol scored as its field scores it (pipeline/aggregate.py).

k-fold rows lead with the mean over folds and the corrected resampled t interval; leave-one-subject-out
rows (and a composite's per-source rows) with all subjects' predictions pooled and a subject-bootstrap
interval; seeds are averaged and their spread shown; the paper's and published numbers stand only beside
real data. Checked on hand-made folds, on the real MEGC 2019 label list, and against hand computations.
"""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from pipeline import metrics
from pipeline.aggregate import TABLE2_COLUMNS, headline_text, table2
from pipeline.baselines.classify import svm_predict
from pipeline.fold_results import fold_scores

DATA = Path(__file__).parent / "data"
MEGC3 = ["negative", "positive", "surprise"]


def fold_row(ds: str, protocol: str, method: str, seed: int, fold: int, test: pd.DataFrame,
             predicted: np.ndarray, classes: list[str], n_train: int = 10) -> dict:
    """A fold_table row, with the scores a fold job would write for these test clips and predictions."""
    scores = fold_scores(test, predicted, classes)
    return {"dataset": ds, "protocol": protocol, "method": method, "seed": seed, "fold": fold,
            "accuracy": scores["accuracy"], "uf1": scores["uf1"], "uar": scores["uar"], "n_test": len(test),
            "n_train": n_train, "confusion": scores["confusion"], "by_source": scores.get("by_source"),
            "by_subject": scores["by_subject"], "subject_sources": scores.get("subject_sources")}


def megc2019_clips() -> pd.DataFrame:
    """The real MEGC 2019 composite's 442 clips: source, subject (prefixed by its source, as the composite
    names them), label."""
    with open(DATA / "megc2019_composite.csv", newline="") as handle:
        rows = list(csv.DictReader(line for line in handle if not line.startswith("#")))
    clips = pd.DataFrame(rows)
    return pd.DataFrame({"clip_id": clips["dataset"] + "-" + clips["clip"], "source": clips["dataset"],
                         "subject": clips["dataset"] + "-" + clips["subject"], "label": clips["label"]})


REAL_MEGC2019 = {"megc2019": {"composite": "megc2019", "layout": "composite", "data": "real",
                              "source_entries": {s: {"layout": s, "data": "real"} for s in ("smic", "casme2", "samm")}}}


def always_negative_folds(method: str = "lbptop") -> pd.DataFrame:
    clips = megc2019_clips()
    rows = [fold_row("megc2019", "loso", method, 0, fold, test, np.zeros(len(test), dtype=int), MEGC3)
            for fold, (_, test) in enumerate(clips.groupby("subject", sort=True))]
    return pd.DataFrame(rows)


def test_always_negative_on_the_real_megc2019_list_leads_with_the_pooled_score():
    folds = always_negative_folds()
    assert len(folds) == 68 and folds["n_test"].sum() == 442
    table = table2(folds, REAL_MEGC2019, bootstrap=2000, bootstrap_seed=0)
    assert list(table.columns) == TABLE2_COLUMNS and len(TABLE2_COLUMNS) == 33
    table = table.set_index("dataset")
    row = table.loc["megc2019"]
    # 250 negative of 442: F1 = 2*250 / (2*250 + 192) for negative, 0 for the others
    assert row["uf1"] == pytest.approx(500 / 692 / 3, abs=1e-4) and round(row["uf1"], 3) == 0.241
    assert row["uar"] == pytest.approx(1 / 3, abs=1e-4) and row["accuracy"] == pytest.approx(250 / 442, abs=1e-4)
    assert row["headline"] == "pooled" and row["subject_independent"]
    # the biased mean of per-subject scores stays apart, with no interval, and is not the headline
    assert round(row["uf1_subject_mean"], 3) == 0.458 and row["uf1"] != row["uf1_subject_mean"]
    assert row["uf1_ci_low"] <= row["uf1"] <= row["uf1_ci_high"] < 0.33
    assert "subject bootstrap: 2000 draws of 68 subjects" in row["interval"]
    assert (row["published_uf1"], row["published_uar"]) == (0.5882, 0.5785)          # real data: shown
    smic = table.loc["megc2019/smic"]
    assert smic["folds"] == 16 and smic["uar"] == pytest.approx(1 / 3, abs=1e-4)
    assert smic["published_uf1"] == 0.2 and "no pooled confusion matrix of SMIC-HS" in smic["note"]


def test_published_numbers_stand_only_beside_real_data():
    folds = always_negative_folds()
    synthetic = {"megc2019": {**REAL_MEGC2019["megc2019"], "data": "synthetic"}}
    table = table2(folds, synthetic, bootstrap=1000)
    assert table[["published_uf1", "published_uar", "paper_accuracy"]].isna().all().all()
    assert table["note"].str.contains("synthetic data: published numbers are for the real datasets").all()
    mixed = {"megc2019": {**REAL_MEGC2019["megc2019"], "data": "mixed"}}
    assert table2(folds, mixed, bootstrap=1000)["published_uf1"].isna().all()
    # the paper's accuracy beside its own protocol, on real data only
    test = pd.DataFrame({"clip_id": list("abcd"), "subject": ["1", "1", "2", "2"], "label": ["x", "y", "x", "y"]})
    kfold = pd.DataFrame([fold_row("casme2", "kfold5", "rcnn", 0, f, test, np.array([0, 1, 0, 0]), ["x", "y"])
                          for f in range(5)])
    real = table2(kfold, {"casme2": {"layout": "casme2", "data": "real"}}).iloc[0]
    fake = table2(kfold, {"casme2": {"layout": "casme2", "synthetic": True}}).iloc[0]
    assert real["paper_accuracy"] == 0.658 and pd.isna(fake["paper_accuracy"])
    assert "paper_accuracy 0.658" in fake["note"] and not real["subject_independent"]


def test_the_subject_bootstrap_is_the_hand_computed_percentile_interval():
    rng = np.random.default_rng(1)
    confusions = rng.integers(0, 4, size=(2, 6, 3, 3))         # 2 seeds, 6 subjects
    draws, seed = 1000, 7
    got = metrics.subject_bootstrap(confusions, draws, seed)
    picks = np.random.default_rng(seed).integers(0, 6, size=(draws, 6))
    by_hand = {m: [] for m in ("accuracy", "uf1", "uar")}
    for pick in picks:
        per_seed = [sum(confusions[s, j] for j in pick) for s in range(2)]
        by_hand["accuracy"].append(np.mean([metrics.accuracy_from_confusion(c) for c in per_seed]))
        by_hand["uf1"].append(np.mean([metrics.uf1_from_confusion(c) for c in per_seed]))
        by_hand["uar"].append(np.mean([metrics.uar_from_confusion(c) for c in per_seed]))
    for metric, values in by_hand.items():
        assert got[metric] == pytest.approx((np.percentile(values, 2.5), np.percentile(values, 97.5)), abs=1e-12)


def test_the_subject_bootstrap_covers_the_pooled_score_of_many_subjects():
    rng = np.random.default_rng(0)
    subjects = [f"s{i}" for i in range(200)]
    labels = rng.integers(0, 3, 2000)
    predicted = np.where(rng.random(2000) < 0.6, labels, rng.integers(0, 3, 2000))
    test = pd.DataFrame({"clip_id": [f"c{i}" for i in range(2000)], "subject": np.repeat(subjects, 10),
                         "label": [MEGC3[i] for i in labels]})
    folds = pd.DataFrame([fold_row("d", "loso", "m", 0, f, test.iloc[10 * f:10 * f + 10],
                                   predicted[10 * f:10 * f + 10], MEGC3) for f in range(200)])
    row = table2(folds, {"d": {"synthetic": True}}, bootstrap=1000).iloc[0]
    pooled = metrics.confusion(labels, predicted, 3)
    assert row["uf1"] == pytest.approx(metrics.uf1_from_confusion(pooled), abs=1e-4)
    for metric in ("accuracy", "uf1", "uar"):
        assert row[f"{metric}_ci_low"] < row[metric] < row[f"{metric}_ci_high"]
        assert row[f"{metric}_ci_high"] - row[f"{metric}_ci_low"] < 0.1


def test_seeds_are_averaged_and_their_spread_shown():
    test = pd.DataFrame({"clip_id": list("abcdef"), "subject": ["1", "1", "2", "2", "3", "3"],
                         "label": ["x", "y", "x", "y", "x", "y"]})
    right, wrong = np.array([0, 1, 0, 1, 0, 1]), np.array([0, 0, 0, 0, 0, 0])
    loso = pd.DataFrame([fold_row("d", "loso", "m", seed, s, test.iloc[2 * s:2 * s + 2], p[2 * s:2 * s + 2], ["x", "y"])
                         for seed, p in ((0, right), (1, wrong)) for s in range(3)])
    row = table2(loso, {"d": {"synthetic": True}}, bootstrap=1000).iloc[0]
    assert row["seeds"] == 2 and row["folds"] == 3
    assert row["accuracy"] == pytest.approx((1.0 + 0.5) / 2) and row["uar"] == pytest.approx(0.75)
    assert (row["accuracy_seed_min"], row["accuracy_seed_max"]) == (0.5, 1.0)
    assert "each draw the mean of 2 seeds" in row["interval"]
    # k-fold: each fold's score averaged over the seeds, then the corrected resampled t interval over the folds
    kfold = pd.DataFrame([fold_row("d", "kfold3", "m", seed, f, test.iloc[2 * f:2 * f + 2], p[2 * f:2 * f + 2],
                                   ["x", "y"], n_train=4) for seed, p in ((0, right), (1, wrong)) for f in range(3)])
    row = table2(kfold, {"d": {"synthetic": True}}).iloc[0]
    assert row["headline"] == "fold mean" and row["accuracy"] == pytest.approx(0.75)
    low, high = metrics.fold_interval([0.75, 0.75, 0.75], 2 / 4)
    assert (row["accuracy_ci_low"], row["accuracy_ci_high"]) == (round(low, 4), round(high, 4))
    assert pd.isna(row["uf1_subject_mean"]) and "mean of 2 seeds" in row["interval"]
    assert "fold mean" in headline_text(table2(kfold, {"d": {"synthetic": True}}))


def test_an_svm_predicts_by_its_one_vs_one_vote_not_by_platt_probabilities():
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC
    rng = np.random.default_rng(5)
    y = np.repeat([0, 1, 2], [30, 8, 6])                      # a majority class, as in micro-expression data
    x = rng.normal(size=(len(y), 5)) + 1.5 * np.eye(3, 5)[y]
    x_test = rng.normal(size=(60, 5)) + 1.5 * np.eye(3, 5)[rng.integers(0, 3, 60)]
    predicted, probabilities = svm_predict(x, y, x_test, 3, c=1.0, seed=0)
    vote = make_pipeline(StandardScaler(), SVC(kernel="linear", C=1.0)).fit(x, y).predict(x_test)
    assert (predicted == vote).all()
    assert probabilities.shape == (60, 3) and np.allclose(probabilities.sum(axis=1), 1)
    # Platt's argmax leans toward the majority class: it names it more often than the vote does
    assert (probabilities.argmax(axis=1) == 0).sum() > (predicted == 0).sum()


def test_a_networks_seed_is_one_of_params_seeds(tmp_path):
    from pipeline.baselines import seeds_of
    from pipeline.config import load_params
    from pipeline.errors import ParamsError
    from pipeline.stages import stage_params
    repo = Path(__file__).resolve().parent.parent
    overlay = tmp_path / "seeds.yaml"
    overlay.write_text("seeds: [3, 4]\nsvm: {seed: 7}\n")
    params = load_params(repo / "params.yaml", overlay)
    assert stage_params(params, "train", method="rcnn", seed=4)["seed"] == 4
    assert stage_params(params, "ststnet", ds="casme2")["seed"] == 3          # the first seed by default
    assert seeds_of(params, "off_apexnet") == [3, 4] and seeds_of(params, "lbptop") == [7]
    overlay.write_text("train: {seed: 1}\n")           # a config written before seeds were a list
    with pytest.raises(ParamsError, match=r"train.seed: a network's seed is the top-level `seeds` list"):
        load_params(repo / "params.yaml", overlay)
