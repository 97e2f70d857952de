"""Fold construction: the paper's random stratified 5-fold split and leave-one-subject-out."""

from __future__ import annotations

import pandas as pd
import pytest

from pipeline.protocols import fold_numbers, folds_stage, kfold_folds, loso_folds

INDEX_COLUMNS = ["dataset", "clip_id", "subject", "episode", "emotion", "label", "label_index", "onset",
                 "apex", "offset", "n_frames", "fps", "frames"]
CLASSES = ["positive", "negative", "surprise", "others"]


def make_index(label_counts: dict[str, int], subjects: list[str]) -> pd.DataFrame:
    """An index.csv-shaped table: clips of the given label counts spread round-robin over subjects."""
    rows = []
    for label, count in label_counts.items():
        for _ in range(count):
            n = len(rows)
            subject = subjects[n % len(subjects)]
            rows.append({"dataset": "casme2", "clip_id": f"{subject}_EP{n:02d}", "subject": subject,
                         "episode": f"EP{n:02d}", "emotion": label, "label": label,
                         "label_index": CLASSES.index(label), "onset": 0, "apex": 20, "offset": 40,
                         "n_frames": 41, "fps": 200, "frames": f"{subject}/EP{n:02d}/img{{}}.jpg"})
    return pd.DataFrame(rows, columns=INDEX_COLUMNS)


PAPERLIKE = make_index({"positive": 32, "negative": 73, "surprise": 25, "others": 126},
                       [f"sub{s:02d}" for s in range(1, 27)])  # CASME II's 256 clips, 26 subjects


def test_kfold_partitions_the_clips_into_stratified_folds():
    folds = kfold_folds(PAPERLIKE, k=5, seed=0)
    assert folds.columns.tolist() == ["clip_id", "subject", "label", "fold"]
    assert folds["clip_id"].tolist() == PAPERLIKE["clip_id"].tolist()  # every clip once, index order
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]
    assert folds["fold"].value_counts().sort_index().tolist() == [52, 51, 51, 51, 51]
    # stratified: each fold holds a fifth of each class, give or take one clip
    per_fold = pd.crosstab(folds["label"], folds["fold"])
    for label, count in {"positive": 32, "negative": 73, "surprise": 25, "others": 126}.items():
        assert per_fold.loc[label].sum() == count
        assert per_fold.loc[label].min() >= count // 5 and per_fold.loc[label].max() <= -(-count // 5)


def test_kfold_is_deterministic_with_the_seed_and_ignores_row_order():
    first = kfold_folds(PAPERLIKE, k=5, seed=0)
    pd.testing.assert_frame_equal(first, kfold_folds(PAPERLIKE, k=5, seed=0))
    assert not first["fold"].equals(kfold_folds(PAPERLIKE, k=5, seed=1)["fold"])
    shuffled = kfold_folds(PAPERLIKE.sample(frac=1, random_state=3), k=5, seed=0)
    assert shuffled.set_index("clip_id")["fold"].sort_index().equals(first.set_index("clip_id")["fold"].sort_index())


def test_kfold_falls_back_to_a_plain_split_when_a_class_is_too_small():
    index = make_index({"positive": 3, "negative": 20, "surprise": 10}, ["s1", "s2", "s3"])
    folds = kfold_folds(index, k=5, seed=0)
    assert sorted(folds["fold"].value_counts().tolist()) == [6, 6, 7, 7, 7]
    with pytest.raises(ValueError, match="cannot split 3 clips into 5 folds"):
        kfold_folds(index.head(3), k=5, seed=0)


def test_loso_gives_each_subject_its_own_fold():
    index = make_index({"positive": 10, "negative": 14}, ["s10", "s2", "s1", "s3"])
    folds = loso_folds(index)
    assert folds["clip_id"].tolist() == index["clip_id"].tolist()
    assert folds.groupby("fold")["subject"].nunique().tolist() == [1, 1, 1, 1]  # one subject per fold
    assert folds.groupby("subject")["fold"].nunique().tolist() == [1, 1, 1, 1]  # no subject in two folds
    # folds follow the sorted subjects (s2 before s10)
    assert folds.groupby("fold")["subject"].first().tolist() == ["s1", "s2", "s3", "s10"]
    assert folds.groupby("fold").size().tolist() == [6, 6, 6, 6]


def test_duplicate_clip_ids_are_rejected():
    index = make_index({"positive": 6}, ["s1"])
    with pytest.raises(ValueError, match="s1_EP00"):
        loso_folds(pd.concat([index, index.head(1)]))


def test_folds_stage_writes_the_protocols_and_their_fold_numbers(tmp_path):
    index_csv = tmp_path / "index.csv"
    make_index({"positive": 12, "negative": 15, "others": 9}, ["01", "02", "10", "11", "03"]).to_csv(
        index_csv, index=False)
    folds_stage(index_csv, tmp_path / "folds" / "kfold5.csv", protocol="kfold5", k=5, seed=0)
    folds_stage(index_csv, tmp_path / "folds" / "loso.csv", protocol="loso", k=5, seed=0)
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["kfold5.csv", "loso.csv"]  # no temp files
    kfold = pd.read_csv(tmp_path / "folds" / "kfold5.csv", dtype={"subject": str})
    assert kfold.columns.tolist() == ["clip_id", "subject", "label", "fold"] and len(kfold) == 36
    assert fold_numbers(tmp_path / "folds" / "kfold5.csv") == [0, 1, 2, 3, 4]
    loso = pd.read_csv(tmp_path / "folds" / "loso.csv", dtype={"subject": str})
    assert loso.groupby("fold")["subject"].first().tolist() == ["01", "02", "03", "10", "11"]  # zero-padding kept
    assert fold_numbers(tmp_path / "folds" / "loso.csv") == [0, 1, 2, 3, 4]
    with pytest.raises(ValueError, match="valid: kfold5, loso"):
        folds_stage(index_csv, tmp_path / "folds" / "x.csv", protocol="loocv", k=5, seed=0)
