"""Fold construction: the paper's random stratified 5-fold split and leave-one-subject-out, whole clips
(all jittered copies) on one side of every split, and LOSO end to end through Snakemake."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import paths
from pipeline.config import load_params
from pipeline.errors import ParamsError
from pipeline.fold_results import fold_table, split_fold
from pipeline.loader import shuffled_batches
from pipeline.plan import run_key
from pipeline.protocols import fold_numbers, folds_stage, kfold_folds, loso_folds, repeat_of_fold

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
    folds_stage(index_csv, tmp_path / "folds" / "kfold5.csv", protocol="kfold5", seed=0)
    folds_stage(index_csv, tmp_path / "folds" / "loso.csv", protocol="loso", seed=0)
    assert sorted(p.name for p in (tmp_path / "folds").iterdir()) == ["kfold5.csv", "loso.csv"]  # no temp files
    kfold = pd.read_csv(tmp_path / "folds" / "kfold5.csv", dtype={"subject": str})
    assert kfold.columns.tolist() == ["clip_id", "subject", "label", "fold"] and len(kfold) == 36
    assert fold_numbers(tmp_path / "folds" / "kfold5.csv") == [0, 1, 2, 3, 4]
    loso = pd.read_csv(tmp_path / "folds" / "loso.csv", dtype={"subject": str})
    assert loso.groupby("fold")["subject"].first().tolist() == ["01", "02", "03", "10", "11"]  # zero-padding kept
    assert fold_numbers(tmp_path / "folds" / "loso.csv") == [0, 1, 2, 3, 4]
    folds_stage(index_csv, tmp_path / "k3" / "kfold3.csv", protocol="kfold3", seed=0)
    assert fold_numbers(tmp_path / "k3" / "kfold3.csv") == [0, 1, 2]          # k from the protocol's name
    for name in ("loocv", "kfold1", "kfold05", "kfold"):
        with pytest.raises(ParamsError, match=r"valid: kfold<k> \(k >= 2; kfold5 is the paper's\) or loso"):
            folds_stage(index_csv, tmp_path / "folds" / "x.csv", protocol=name, seed=0)


def test_repeated_kfold_draws_the_split_once_per_repeat_in_one_file(tmp_path):
    """folds.repeats 3 with kfold5: 15 folds, repeat r drawn with seed + r (repeat 0 is the single split's),
    every clip tested once per repeat, and a fold trains on the other clips of its own repeat only."""
    index_csv = tmp_path / "index.csv"
    index = make_index({"positive": 12, "negative": 15, "others": 9}, ["01", "02", "10", "11", "03"])
    index.to_csv(index_csv, index=False)
    folds_stage(index_csv, tmp_path / "kfold5.csv", protocol="kfold5", seed=4, repeats=3)
    folds_stage(index_csv, tmp_path / "loso.csv", protocol="loso", seed=4, repeats=3)
    folds = pd.read_csv(tmp_path / "kfold5.csv", dtype={"subject": str})
    assert folds.columns.tolist() == ["clip_id", "subject", "label", "repeat", "fold"] and len(folds) == 3 * 36
    assert fold_numbers(tmp_path / "kfold5.csv") == list(range(15))
    assert folds.groupby(["clip_id", "repeat"]).size().eq(1).all() and folds.groupby("clip_id").size().eq(3).all()
    for repeat in range(3):
        drawn = kfold_folds(index, 5, seed=4 + repeat)
        mine = folds[folds["repeat"] == repeat].drop(columns="repeat").reset_index(drop=True)
        assert mine.assign(fold=mine["fold"] - 5 * repeat).equals(drawn)
    assert not folds[folds["repeat"] == 1]["fold"].equals(folds[folds["repeat"] == 2]["fold"] - 5)   # new draws
    eleven = repeat_of_fold(folds, 11)                                   # fold 11 = repeat 2, part 1
    assert len(eleven) == 36 and set(eleven["fold"]) == {10, 11, 12, 13, 14}
    clips = eleven[["clip_id", "subject", "label"]].assign(label_index=0)
    train, test = split_fold(clips, folds, 11, "tensors.h5")
    assert len(train) + len(test) == 36
    assert set(clips["clip_id"][test]) == set(eleven.loc[eleven["fold"] == 11, "clip_id"])
    loso = pd.read_csv(tmp_path / "loso.csv", dtype={"subject": str})
    assert "repeat" not in loso and fold_numbers(tmp_path / "loso.csv") == [0, 1, 2, 3, 4]   # one split of subjects


# --- every jittered copy of a clip stays on its clip's side of every split ----------------------------

def test_all_jittered_copies_of_a_clip_stay_on_one_side_of_every_split():
    """For every fold of both protocols, the samples an epoch trains on are all V copies of every
    training clip and not one copy of a test clip; the test predictions come from the test clips."""
    index = make_index({"positive": 9, "negative": 12, "surprise": 6, "others": 15}, ["s1", "s2", "s3", "s4", "s5"])
    n_variants = 48
    clips = index[["clip_id", "subject", "label"]].assign(label_index=index["label_index"])
    # a store whose sample (row, variant) holds its own id, so a batch says exactly which copies it carries
    ids = np.arange(len(clips) * n_variants).reshape(len(clips), n_variants)
    x = np.zeros((len(clips), n_variants, 3, 2, 2), dtype=np.int64)
    x[...] = ids[:, :, None, None, None]
    for folds in (kfold_folds(index, k=5, seed=0), loso_folds(index)):
        for fold in fold_numbers_of(folds):
            train_rows, test_rows = split_fold(clips, folds, fold, "tensors.h5")
            seen = np.concatenate([samples[:, 0, 0, 0] for samples, _, _ in shuffled_batches(
                x, train_rows, clips["label_index"].to_numpy(), 64, np.random.default_rng(fold), 7)])
            assert sorted(seen) == sorted(ids[train_rows].ravel())      # every copy of every training clip once
            assert not set(seen // n_variants) & set(test_rows)         # no copy of a test clip
            assert set(clips["clip_id"].iloc[test_rows]) == set(folds.loc[folds["fold"] == fold, "clip_id"])
            if folds["fold"].nunique() == 5 and len(set(folds["subject"])) == 5 and \
                    folds.groupby("fold")["subject"].nunique().max() == 1:   # loso: one subject out
                assert clips["subject"].iloc[test_rows].nunique() == 1
                assert not set(clips["subject"].iloc[train_rows]) & set(clips["subject"].iloc[test_rows])


def fold_numbers_of(folds: pd.DataFrame) -> list[int]:
    return sorted(folds["fold"].unique().tolist())


# --- LOSO end to end through Snakemake -----------------------------------------------------------------

REPO = Path(__file__).resolve().parent.parent


def test_loso_runs_through_snakemake_with_one_job_per_subject(tmp_path):
    """folds (checkpoint) -> one train job per subject -> Table 2 with mean-over-folds and pooled columns.
    Upstream stages are not rerun: index.csv and tensors.h5 are written here and --allowed-rules keeps
    Snakemake to the folds, train and aggregate rules (the full DAG is tests/test_workflow.py's)."""
    subjects = ["s1", "s2", "s10"]
    index = make_index({"positive": 6, "negative": 6, "surprise": 6}, subjects)
    (tmp_path / "data" / "casme2").mkdir(parents=True)
    index.to_csv(tmp_path / "data" / "casme2" / "index.csv", index=False)
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (len(index), 2, 3, 300, 16), dtype=np.uint8)   # the smallest the net takes
    with h5py.File(tmp_path / "data" / "casme2" / "tensors.h5", "w") as h5:
        h5.create_dataset("x", data=x, chunks=(1, *x.shape[1:]))
        h5["clip_id"], h5["subject"], h5["label"] = index["clip_id"].tolist(), index["subject"].tolist(), \
            index["label"].tolist()
        h5["label_index"] = index["label_index"].to_numpy()
        h5.attrs["classes"] = json.dumps(CLASSES)
    overlay = tmp_path / "loso.yaml"
    overlay.write_text(yaml.safe_dump({"protocols": ["loso"], "methods": ["rcnn"], "train": {
        "maps": 2, "recurrent_steps": 1, "batch_size": 16, "max_epochs": 1, "threads": 1, "precision": "fp32"}}))
    # Table 2 as the aggregate writes it, in the config's run folder (results/ gets a copy with the report)
    table_csv = paths.RUN_TABLE2.format(run=run_key(load_params(REPO / "params.yaml", REPO / "tests" / "tiny.yaml",
                                                                overlay)))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(tmp_path), "--cores", "2", "--allowed-rules", "folds", "train", "aggregate",
               "--configfile", str(REPO / "tests" / "tiny.yaml"), str(overlay), "--", table_csv]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]

    assert fold_numbers(tmp_path / "data" / "casme2" / "folds" / "loso.csv") == [0, 1, 2]
    fold_dirs = sorted((tmp_path / "results" / "casme2" / "loso" / "rcnn" / "seed0").iterdir())
    assert [d.name for d in fold_dirs] == ["fold0", "fold1", "fold2"]
    tested = [pd.read_csv(d / "predictions.csv", dtype={"subject": str}) for d in fold_dirs]
    assert [t["subject"].unique().tolist() for t in tested] == [["s1"], ["s2"], ["s10"]]
    table = pd.read_csv(tmp_path / table_csv)
    row = table[(table["protocol"] == "loso") & (table["method"] == "rcnn")].iloc[0]
    assert row["folds"] == 3 and row["headline"] == "pooled" and row["subject_independent"]
    pooled = pd.concat(tested)
    assert row["accuracy"] == pytest.approx((pooled["true"] == pooled["predicted"]).mean(), abs=1e-4)
    for metric in ("uf1", "uar"):
        assert 0 <= row[f"{metric}_ci_low"] <= row[f"{metric}_ci_high"] <= 1


# --- MEGC composite --------------------------------------------------------------------------------

MEGC3 = {"happiness": "positive", "disgust": "negative", "repression": "negative", "surprise": "surprise",
         "others": None}


def write_source(directory: Path, seed: int, subjects: list[str]) -> tuple[Path, Path]:
    """A CASME II-shaped source (index.csv under the paper's 4 classes + tensors.h5), random with `seed`."""
    rng = np.random.default_rng(seed)
    emotions = ["happiness", "disgust", "repression", "surprise", "others"] * len(subjects)
    index = make_index({"others": len(emotions)}, subjects)
    paper4 = {"happiness": "positive", "disgust": "negative", "repression": "others", "surprise": "surprise",
              "others": "others"}
    index["emotion"] = emotions
    index["label"] = [paper4[e] for e in emotions]
    index["label_index"] = [CLASSES.index(label) for label in index["label"]]
    directory.mkdir(parents=True)
    index.to_csv(directory / "index.csv", index=False)
    x = rng.integers(0, 256, (len(index), 2, 3, 300, 16), dtype=np.uint8)
    with h5py.File(directory / "tensors.h5", "w") as h5:
        h5.create_dataset("x", data=x, chunks=(1, *x.shape[1:]))
        for column in ("clip_id", "subject", "label"):
            h5[column] = index[column].tolist()
        h5["label_index"] = index["label_index"].to_numpy()
        h5.attrs["classes"] = json.dumps(CLASSES)
    return directory / "index.csv", directory / "tensors.h5"


def write_composite_tensors(index: pd.DataFrame, source_tensors: dict[str, Path], out_h5: Path,
                            classes: list[str]) -> None:
    """The composite's tensors.h5 as the workflow's tensors stage writes it from the composite's store
    (composite_aligned_stage, tests/test_megc2019.py): each clip's row of its source's tensors under the
    composite's clip id, subject and label, with its `source`."""
    rows = []
    for clip in index.itertuples():
        with h5py.File(source_tensors[clip.source], "r") as h5:
            rows.append(h5["x"][h5["clip_id"].asstr()[()].tolist().index(clip.original_clip_id)])
    with h5py.File(out_h5, "w") as h5:
        x = np.stack(rows)
        h5.create_dataset("x", data=x, chunks=(1, *x.shape[1:]))
        for column in ("clip_id", "subject", "label", "source"):
            h5[column] = index[column].astype(str).tolist()
        h5["label_index"] = index["label_index"].to_numpy(dtype=np.int64)
        h5.attrs["classes"] = json.dumps(classes)


def test_composite_pools_datasets_relabels_and_scores_each_source(tmp_path):
    from pipeline.aggregate import table2
    from pipeline.composite import composite_index
    from pipeline.train import train_fold_stage

    # two synthetic CASME II-shaped datasets made with different seeds; both name a subject "01"
    sources = {"casme2": write_source(tmp_path / "casme2", 0, ["01", "02"]),
               "casme2b": write_source(tmp_path / "casme2b", 1, ["01", "03", "04"])}
    classes = ["negative", "positive", "surprise"]
    index, excluded = composite_index({name: pd.read_csv(csv, dtype={"subject": str})
                                       for name, (csv, _) in sources.items()}, MEGC3, classes)
    assert len(index) == 4 * 5 and len(excluded) == 5                  # "others" left out, 1 per subject
    assert set(excluded["emotion"]) == {"others"}
    assert sorted(index["subject"].unique()) == ["casme2-01", "casme2-02", "casme2b-01", "casme2b-03", "casme2b-04"]
    assert index.loc[index["emotion"] == "repression", "label"].eq("negative").all()   # paper4 said others
    assert index.loc[index["clip_id"] == "casme2b-01_EP00", ["source", "original_clip_id", "label"]].values.tolist() \
        == [["casme2b", "01_EP00", "positive"]]                          # prefixed id, its source, relabelled
    composite = tmp_path / "composite"
    composite.mkdir()
    write_composite_tensors(index, {name: h5 for name, (_, h5) in sources.items()}, composite / "tensors.h5", classes)

    folds = loso_folds(index)                                          # LOSO over all 5 subjects
    assert folds["fold"].nunique() == 5
    folds.to_csv(composite / "loso.csv", index=False)
    out = tmp_path / "results" / "composite" / "composite" / "rcnn" / "seed0" / "fold2"
    train_fold_stage(composite / "tensors.h5", composite / "loso.csv", 2, out, method="rcnn", maps=2,
                     recurrent_steps=1, batch_size=16, lr=0.01, lr_decay=0.5, min_lr=0.01, max_epochs=1,
                     momentum=0.9, weight_decay=5e-4, seed=0, device="cpu", threads=1, precision="fp32")
    scores = json.loads((out / "metrics.json").read_text())
    assert list(scores["by_source"]) == ["casme2b"]                    # fold 2 = subject casme2b-01
    assert scores["by_source"]["casme2b"] == scores["confusion"]
    table = table2(fold_table([out / "metrics.json"]), {"composite": {"layout": "composite", "synthetic": True}})
    assert table["dataset"].tolist() == ["composite", "composite/casme2b"]
    assert table["accuracy"].iloc[1] == pytest.approx(scores["accuracy"], abs=1e-4)
