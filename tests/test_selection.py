"""Epoch selection (pipeline/selection.py): the tie rules, the inner validation split, and on a tiny flow store
every network with selection: last = the schedule's last epoch, test >= last per fold on its metric (audit),
inner chosen without reading a test label; HTNet's port (parameter count, regions) in tests/test_htnet.py."""

import json
import shutil

import h5py
import numpy as np
import pandas as pd
import pytest

from pipeline.baselines import rows_to_run, split_row
from pipeline.config import load_params, validate_params
from pipeline.errors import ParamsError
from pipeline.protocols import kfold_folds
from pipeline.runner import stage_function
from pipeline.selection import choose_epoch, epoch_scores, read_epochs, validation_subjects
from pipeline.stages import STAGES
from tests.test_flow import CLASSES, FLOW_PARAMS, SMALL, write_motion_store

INNER = {"validation_subjects": 0.34, "split_seed": 0, "metric": "accuracy", "ties": "latest"}


def test_ties_take_the_latest_or_the_earliest_best_epoch():
    assert choose_epoch([0.5, 0.8, 0.8, 0.6], "latest") == 3          # HTNet's <=
    assert choose_epoch([0.5, 0.8, 0.8, 0.6], "earliest") == 2        # CausalNet's <
    assert choose_epoch([0.2], "latest") == 1
    with pytest.raises(ValueError, match="ties"):
        choose_epoch([0.2], "middle")


def test_epoch_scores_score_each_epochs_predictions():
    probabilities = np.array([[[0.9, 0.1], [0.8, 0.2]], [[0.1, 0.9], [0.8, 0.2]]])   # 2 epochs x 2 clips
    labels = np.array([1, 0])
    assert epoch_scores(probabilities, labels, "accuracy").tolist() == [0.5, 1.0]
    assert epoch_scores(probabilities, labels, "uf1")[1] == 1.0


def test_validation_subjects_keep_every_class_in_training():
    subjects = ["a", "a", "b", "c", "c", "d", "e", "f", "g", "h", "i", "j"]
    labels = ["x", "y", "x", "x", "z", "y", "x", "x", "y", "z", "x", "x"]
    for seed in range(20):
        held = validation_subjects(subjects, labels, 0.2, seed)
        assert len(held) == 2 and held == sorted(set(held))
        left = {lab for s, lab in zip(subjects, labels, strict=True) if s not in held}
        assert left == {"x", "y", "z"}                         # no class loses its last training subject
        assert validation_subjects(subjects, labels, 0.2, seed) == held          # seeded
    # a class only one subject has stays in training
    assert "b" not in validation_subjects(["a", "b", "c"], ["x", "w", "x"], 0.5, 0)
    with pytest.raises(ValueError, match="2 training subjects"):
        validation_subjects(["a", "a"], ["x", "y"], 0.2, 0)


def test_selection_rows_and_their_params():
    params = load_params("params.yaml")
    assert params["selection"] == ["last"] and rows_to_run(params) == ["rcnn"]
    params.update(methods=["rcnn", "ststnet", "htnet"], selection=["last", "inner", "test"])
    validate_params(params)
    assert rows_to_run(params) == ["rcnn", "rcnn-inner", "rcnn-test", "ststnet", "ststnet-inner", "ststnet-test",
                                   "htnet", "htnet-inner", "htnet-test"]
    params["methods"].append("cnn")
    assert {"cnn-inner", "cnn-test"} <= set(rows_to_run(params))
    assert split_row("ststnet-test") == ("ststnet", "test") and split_row("rcnn") == ("rcnn", "last")
    params["selection"] = ["test"]                # never without the honest row
    with pytest.raises(ParamsError, match="selection"):
        validate_params(params)


# --- on a tiny flow store -------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def store(tmp_path_factory):
    root = tmp_path_factory.mktemp("selection")
    rows = write_motion_store(root / "aligned.h5", subjects=4)
    stage_function(STAGES["flow"])(root / "aligned.h5", root / "flow.h5", root / "flow_qc", root / "apex.csv",
                                   **FLOW_PARAMS)
    kfold_folds(pd.DataFrame(rows), k=3, seed=0).to_csv(root / "folds.csv", index=False)
    return root, rows


@pytest.mark.parametrize("method", ["ststnet", "off_apexnet"])
def test_test_selection_scores_at_least_the_last_epoch_on_every_fold(store, tmp_path, method):
    """One last run per fold (trained together) gives the last row and, from its epochs.h5, the test row; on
    the metric it is chosen by, test >= last on every fold, and the last row is the last epoch's."""
    root, _ = store
    params = SMALL[method]
    trained = tmp_path / "folds_trained.h5"
    stage_function(STAGES[f"{method}_folds"])(root / "flow.h5", root / "folds.csv", trained, classes=CLASSES, **params)
    for fold in range(3):
        last, test = tmp_path / method / f"fold{fold}", tmp_path / f"{method}-test" / f"fold{fold}"
        stage_function(STAGES[method])(root / "flow.h5", root / "folds.csv", fold, last, trained_h5=trained,
                                       classes=CLASSES, **params)
        stage_function(STAGES[f"{method}_test"])(last / "epochs.h5", test, fold, classes=CLASSES, metric="accuracy",
                                                 ties="latest")
        clips, probabilities, attrs = read_epochs(last / "epochs.h5")
        assert probabilities.shape == (params["epochs"], len(clips), 3) and attrs["chosen_epoch"] == params["epochs"]
        predictions = pd.read_csv(last / "predictions.csv")
        assert np.allclose(predictions[[f"p_{c}" for c in CLASSES]], probabilities[-1], atol=1e-6)
        last_metrics, test_metrics = (json.loads((d / "metrics.json").read_text()) for d in (last, test))
        assert last_metrics["selection"] == "last" and last_metrics["selected_epoch"] == params["epochs"]
        assert test_metrics["selection"] == "test" and "test labels" in test_metrics["note"]
        assert test_metrics["accuracy"] >= last_metrics["accuracy"]
        assert test_metrics["accuracy"] == max(test_metrics["test_accuracy_by_epoch"])
        assert test_metrics["n_train_clips"] == last_metrics["n_train_clips"]


def test_inner_selection_reads_no_test_label(store, tmp_path):
    """inner: each fold trains without its validation subjects and chooses its epoch on them. Relabel every
    test clip of fold 0 (another class) before training: the validation scores, the chosen epoch and the test
    predictions stay the same to the bit."""
    root, rows = store
    params = SMALL["ststnet"]
    folds = pd.read_csv(root / "folds.csv")
    test_clips = folds.loc[folds["fold"] == 0, "clip_id"].tolist()
    relabelled = tmp_path / "relabelled"
    relabelled.mkdir()
    shutil.copy(root / "flow.h5", relabelled / "flow.h5")
    changed = folds.copy()
    with h5py.File(relabelled / "flow.h5", "r+") as h5:
        for clip_id in test_clips:
            label = h5[f"clips/{clip_id}"].attrs["label"]
            label = label.decode() if isinstance(label, bytes) else str(label)
            other = CLASSES[(CLASSES.index(label) + 1) % 3]
            h5[f"clips/{clip_id}"].attrs["label"] = other
            changed.loc[changed["clip_id"] == clip_id, "label"] = other
    changed.to_csv(relabelled / "folds.csv", index=False)
    runs = {}
    for name, where in (("original", root), ("relabelled", relabelled)):
        out = tmp_path / name
        stage_function(STAGES["ststnet_inner"])(where / "flow.h5", where / "folds.csv", 0, out, classes=CLASSES,
                                                inner=INNER, **params)
        with h5py.File(out / "epochs.h5", "r") as h5:
            runs[name] = {"scores": h5["validation_scores"][()], "chosen": int(h5.attrs["chosen_epoch"]),
                          "test": h5["test_probabilities"][()],
                          "validation": sorted(v.decode() for v in h5["validation_clip_id"][()])}
        metrics = json.loads((out / "metrics.json").read_text())
        assert metrics["selection"] == "inner" and len(metrics["validation_subjects"]) == 1   # 0.34 of 4 subjects
        assert metrics["n_train_clips"] + metrics["n_validation_clips"] + metrics["n_test"] == len(rows)
        assert not set(runs[name]["validation"]) & set(test_clips)
    a, b = runs["original"], runs["relabelled"]
    assert a["chosen"] == b["chosen"] and np.array_equal(a["scores"], b["scores"])
    assert np.array_equal(a["test"], b["test"]) and a["validation"] == b["validation"]


def test_inner_selection_trained_together_equals_alone(store, tmp_path):
    root, _ = store
    params = SMALL["ststnet"]
    trained = tmp_path / "inner_folds.h5"
    stage_function(STAGES["ststnet_inner_folds"])(root / "flow.h5", root / "folds.csv", trained, classes=CLASSES,
                                                  inner=INNER, **params)
    for fold in range(3):
        together, alone = tmp_path / "together" / f"fold{fold}", tmp_path / "alone" / f"fold{fold}"
        stage_function(STAGES["ststnet_inner"])(root / "flow.h5", root / "folds.csv", fold, together,
                                                trained_h5=trained, classes=CLASSES, inner=INNER, **params)
        stage_function(STAGES["ststnet_inner"])(root / "flow.h5", root / "folds.csv", fold, alone, classes=CLASSES,
                                                inner=INNER, **params)
        t, a = (json.loads((d / "metrics.json").read_text()) for d in (together, alone))
        assert t["validation_subjects"] == a["validation_subjects"] and t["n_train_clips"] == a["n_train_clips"]
        for name in ("validation_probabilities", "test_probabilities"):
            with h5py.File(together / "epochs.h5") as x, h5py.File(alone / "epochs.h5") as y:
                assert np.abs(x[name][()] - y[name][()]).max() < 1e-4       # float32 sums in another order
