"""MEGC 2019's composite end to end: workflow/configs/megc2019.yaml through the real Snakemake workflow on
tiny synthetic SMIC, CASME II and SAMM stand-ins, to Table 2's rows for the composite and each source.

The composite's mapping in the config is MEGC 2019's (pipeline/composite.py, held against the real clip
lists in tests/test_composite_megc.py); the run checks the wiring: the sources' index and align rules,
the composite's index and aligned store, one LOSO folds file shared by the RCNN and the baselines, the
per-source scores and the published baseline beside ours.
"""

from __future__ import annotations

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import metrics as metrics_lib
from pipeline.composite import MEGC2019_CLASSES, MEGC2019_EMOTIONS
from pipeline.config import load_params
from pipeline.errors import MerflowError
from tests.test_workflow import REPO, finished_jobs, job_counts, snakemake

MEGC2019 = REPO / "workflow" / "configs" / "megc2019.yaml"
SOURCES = ["smic", "casme2", "samm"]
METHODS = ["rcnn", "lbptop", "ststnet"]   # a trained method, a baseline, a flow network (all: the real config)
ALL_RULES = ["train", "cnn", "pretrained_cnn", "off_apexnet", "ststnet", "lbptop", "lbpsip", "tics", "mdmo",
             "aggregate"]


def test_the_config_holds_megc_2019s_mapping_and_sources():
    params = load_params(REPO / "params.yaml", MEGC2019)
    mapping = params["mappings"][params["dataset"]["megc2019"]["mapping"]]
    assert mapping["classes"] == MEGC2019_CLASSES and mapping["by_layout"] == MEGC2019_EMOTIONS
    assert params["dataset"]["megc2019"]["sources"] == SOURCES and params["protocols"] == ["loso"]
    assert set(params["methods"]) == {"rcnn", "rcnn_feedforward", "cnn", "lbptop", "lbpsip", "tics", "mdmo",
                                      "pretrained_cnn", "ststnet", "off_apexnet"}


def test_a_composite_is_checked_and_dvc_says_why_it_does_not_list_it(tmp_path):
    from pipeline.dvcgen import dvc_yaml
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({"dataset": {"megc2019": {"sources": ["smic", "nope"]}}}))
    with pytest.raises(MerflowError, match="'nope' has no entry under `dataset:`"):
        load_params(REPO / "params.yaml", MEGC2019, bad)
    bad.write_text(yaml.safe_dump({"dataset": {"megc2019": {"root": "/data"}}}))
    with pytest.raises(MerflowError, match="dataset.megc2019"):
        load_params(REPO / "params.yaml", MEGC2019, bad)
    with pytest.raises(MerflowError, match="does not list composite datasets"):
        dvc_yaml(load_params(REPO / "params.yaml", MEGC2019))


@pytest.fixture(scope="module")
def megc_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("megc2019")     # 1 subject and 4 clips per source: 3 LOSO folds
    tiny = workdir / "tiny.yaml"
    tiny.write_text(yaml.safe_dump({
        "methods": [*METHODS, "pretrained_cnn"],
        "synth": {"subjects": 1, "clips_per_subject": 4, "frames_min": 12, "frames_max": 14},
        "tensors": {"keep_ratios": [1.0], "kernels": ["nearest", "bicubic"]},
        "train": {"maps": 2, "batch_size": 16, "max_epochs": 1, "threads": 1},
        "lbptop": {"height": 64, "width": 48, "frames": 10},
        "ststnet": {"epochs": 2},
        "seeds": [0, 1],            # every network twice on the same folds; LBP-TOP once
        "resources": {"train_mem_mb": 1000, "train_runtime_min": 10}}))
    result = snakemake(workdir, "results/table2.csv", "results/report.html", configfiles=(MEGC2019, tiny))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return workdir, result


def test_the_composite_runs_to_table2_overall_and_per_source(megc_run):
    workdir, result = megc_run
    counts = finished_jobs(result.stdout + result.stderr)
    folds = pd.read_csv(workdir / "data" / "megc2019" / "folds" / "loso.csv", dtype=str)
    n_folds = folds["fold"].nunique()
    assert n_folds == 3 and sorted(folds["subject"].unique()) == ["casme2-sub01", "samm-006", "smic-s1"]
    assert counts == {"synth": 3, "index": 3, "align": 3, "composite_index": 1, "composite_aligned": 1,
                      "magnify": 1, "tensors": 1, "folds": 1, "train": 2 * n_folds, "lbptop": n_folds,
                      "flow": 1, "ststnet_folds": 2, "ststnet": 2 * n_folds, "aggregate": 1, "report": 1,
                      "publish": 1}      # ststnet_folds: every fold of a seed trained in one job

    index = pd.read_csv(workdir / "data" / "megc2019" / "index.csv", dtype=str)
    excluded = pd.read_csv(workdir / "data" / "megc2019" / "excluded.csv", dtype=str)
    assert set(index["label"]) == set(MEGC2019_CLASSES) and list(dict.fromkeys(index["source"])) == SOURCES
    assert set(excluded["emotion"].str.lower()) <= {"others", "other", "tense", "fear", "sadness"}
    assert (index["clip_id"] == index["source"] + "-" + index["original_clip_id"]).all()
    with h5py.File(workdir / "data" / "megc2019" / "tensors.h5", "r") as h5:
        stored = dict(zip(h5["clip_id"].asstr()[()], h5["source"].asstr()[()], strict=True))
        assert stored == dict(zip(index["clip_id"], index["source"], strict=True))
        assert json.loads(h5.attrs["classes"]) == MEGC2019_CLASSES
    with h5py.File(workdir / "data" / "megc2019" / "aligned.h5", "r") as h5:
        assert sorted(h5["clips"]) == sorted(index["clip_id"])
    assert len(list((workdir / "data" / "megc2019" / "align_qc").glob("*.png"))) == len(index)

    for method in METHODS:              # both score each source apart, on the same folds
        metrics = json.loads((workdir / "results" / "megc2019" / "loso" / method / "seed0" / "fold0" / "metrics.json")
                             .read_text())
        assert list(metrics["by_source"]) == ["casme2"] and metrics["by_source"]["casme2"] == metrics["confusion"]
        assert metrics["n_test"] == int(index["source"].eq("casme2").sum())     # fold 0: casme2-sub01

    table = pd.read_csv(workdir / "results" / "table2.csv")
    run = table[table["folds"] > 0]
    assert run["dataset"].tolist() == ["megc2019"] * 3 + [f"megc2019/{s}" for s in sorted(SOURCES) for _ in METHODS]
    assert run["method"].tolist() == ["lbptop", "rcnn", "ststnet"] * 4      # the paper's rows, then the others
    assert (run["headline"] == "pooled").all() and run["subject_independent"].all()
    whole = run[run["dataset"] == "megc2019"].set_index("method")
    assert (whole["folds"] == n_folds).all() and (whole["data"] == "synthetic").all()
    assert whole["seeds"].to_dict() == {"lbptop": 1, "rcnn": 2, "ststnet": 2}
    per_source = run[run["dataset"] != "megc2019"]
    assert per_source["folds"].tolist() == [1] * len(per_source)     # 1 subject = 1 fold per source
    # The headline is MEGC's: every subject's predictions pooled (per seed, then the mean over seeds),
    # recomputed here from the predictions files.
    for method, row in whole.iterrows():
        per_seed = []
        for seed in range(int(row["seeds"])):
            pooled = pd.concat(pd.read_csv(path) for path in
                               sorted((workdir / "results" / "megc2019" / "loso" / method / f"seed{seed}").glob(
                                   "fold*/predictions.csv")))
            cm = metrics_lib.confusion([MEGC2019_CLASSES.index(c) for c in pooled["true"]],
                                       [MEGC2019_CLASSES.index(c) for c in pooled["predicted"]], 3)
            per_seed.append([metrics_lib.uf1_from_confusion(cm), metrics_lib.uar_from_confusion(cm)])
        assert (row["uf1"], row["uar"]) == pytest.approx(np.mean(per_seed, axis=0).tolist(), abs=1e-4), method
        assert row["uf1_seed_min"] == pytest.approx(min(u for u, _ in per_seed), abs=1e-4)
        assert row["uf1_seed_max"] == pytest.approx(max(u for u, _ in per_seed), abs=1e-4)
        for metric in ("accuracy", "uf1", "uar"):
            assert 0 <= row[f"{metric}_ci_low"] <= row[f"{metric}_ci_high"] <= 1
        assert "subject bootstrap" in row["interval"]
    # Published numbers are for the real datasets: none on these synthetic rows; the note names them
    assert run[["published_uf1", "published_uar", "paper_accuracy"]].isna().all().all()
    assert "published_uf1 0.5882" in whole.loc["lbptop", "note"] and pd.isna(whole.loc["rcnn", "note"])
    not_run = table[table["method"] == "pretrained_cnn"].iloc[0]
    assert not_run["dataset"] == "megc2019" and not_run["folds"] == 0 and "weights" in not_run["note"]

    page = (workdir / "results" / "report.html").read_text()
    assert "Composite: megc2019, overall and per source dataset" in page and "subject-independent" in page


def test_every_network_runs_once_per_seed_on_every_fold(megc_run, tmp_path):
    """With seeds [0, 1], every network of the composite's config plans two jobs per fold and the hand-crafted
    baselines one (Snakemake's plan, after the run above: its own methods are done)."""
    workdir, _ = megc_run
    weights = tmp_path / "vgg16.pt"
    weights.write_bytes(b"")             # planned, never read in a dry run
    overlay = tmp_path / "all.yaml"
    methods = yaml.safe_load(MEGC2019.read_text())["methods"]          # every method of the real config
    overlay.write_text(yaml.safe_dump({"methods": methods, "pretrained_cnn": {"weights": str(weights)}}))
    result = snakemake(workdir, "results/table2.csv", configfiles=(MEGC2019, workdir / "tiny.yaml", overlay),
                       options=("--dry-run", "--allowed-rules", *ALL_RULES))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    counts = job_counts(result.stdout)
    n_folds = 3
    assert counts == {"train": 2 * n_folds, "cnn": 2 * n_folds, "pretrained_cnn": 2 * n_folds,
                      "off_apexnet_folds": 2, "off_apexnet": 2 * n_folds, "lbpsip": n_folds, "tics": n_folds,
                      "mdmo": n_folds, "aggregate": 1, "report": 1, "publish": 1}, counts  # train: rcnn_feedforward's
    assert "rcnn_feedforward/seed1/fold2/metrics.json" in result.stdout


AUDIT = REPO / "workflow" / "configs" / "megc2019-audit.yaml"


def test_the_audit_config_scores_each_network_three_ways(megc_run):
    """workflow/configs/megc2019-audit.yaml on the tiny sources (already aligned by the run above): STSTNet,
    OFF-ApexNet and HTNet (tiny sizes), each with last, inner and test rows; test >= last on every fold's
    accuracy (the metric it is chosen by); inner's validation subjects are training subjects only; the report
    has the section that puts them side by side."""
    workdir, _ = megc_run
    overlay = workdir / "audit-tiny.yaml"
    overlay.write_text(yaml.safe_dump({
        "seeds": [0], "ststnet": {"epochs": 3}, "off_apexnet": {"epochs": 3},
        "htnet": {"dim": 8, "heads": 1, "block_repeats": [1, 1, 1], "mlp_mult": 2, "epochs": 3, "batch_size": 8,
                  "threads": 1, "device": "cpu"},
        "epoch_selection": {"validation_subjects": 0.5}}))
    result = snakemake(workdir, "results/table2.csv", "results/report.html",
                       configfiles=(MEGC2019, workdir / "tiny.yaml", AUDIT, overlay))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    table = pd.read_csv(workdir / "results" / "table2.csv")
    full = table[table["dataset"] == "megc2019"]
    rows = {(r.method, r.selection) for r in full.itertuples()}
    for method in ("ststnet", "off_apexnet", "htnet"):
        assert {(method, "last"), (f"{method}-inner", "inner"), (f"{method}-test", "test")} <= rows
    test_rows = full[full["selection"] == "test"]
    assert test_rows["note"].str.contains("test labels").all()
    assert test_rows["method_name"].str.contains("audit").all()
    results = workdir / "results" / "megc2019" / "loso"
    for method in ("ststnet", "off_apexnet", "htnet"):
        for fold_dir in sorted((results / method / "seed0").glob("fold[0-9]*")):
            last = json.loads((fold_dir / "metrics.json").read_text())
            test = json.loads((results / f"{method}-test" / "seed0" / fold_dir.name / "metrics.json").read_text())
            inner = json.loads((results / f"{method}-inner" / "seed0" / fold_dir.name / "metrics.json").read_text())
            assert test["accuracy"] >= last["accuracy"], (method, fold_dir.name)
            assert not set(inner["validation_subjects"]) & set(inner["by_subject"])   # never the test subject
    page = (workdir / "results" / "report.html").read_text()
    assert "Published, as coded, honest" in page and "HTNet" in page
