"""Metrics on hand-computed cases, the fold split, streaming batches, and one fold trained end to end
on a tiny tensors.h5 whose two classes differ by an obvious pattern."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline import metrics
from pipeline.errors import BadInputError, MerflowError
from pipeline.fold_results import split_fold
from pipeline.loader import channel_histograms, mean_std_from_histograms, shuffled_batches
from pipeline.predict import build_model, load_checkpoint, mean_softmax
from pipeline.selection import read_epochs, select_on_test_stage
from pipeline.train import lr_schedule, train_fold_stage

# --- metrics -----------------------------------------------------------------------------------------

# 8 clips, 3 classes; class 2 is never true but predicted once.
Y_TRUE = [0, 0, 0, 0, 1, 1, 1, 1]
Y_PRED = [0, 0, 0, 1, 1, 1, 0, 2]


def test_confusion_rows_are_truth():
    assert metrics.confusion(Y_TRUE, Y_PRED, 3).tolist() == [[3, 1, 0], [1, 2, 1], [0, 0, 0]]


def test_accuracy():
    assert metrics.accuracy(Y_TRUE, Y_PRED) == 5 / 8


def test_uf1_by_hand():
    # class 0: TP 3, FP 1, FN 1 -> F1 = 6/8; class 1: TP 2, FP 1, FN 2 -> 4/7; class 2: TP 0, FP 1 -> 0
    assert metrics.uf1(Y_TRUE, Y_PRED, 3) == pytest.approx((6 / 8 + 4 / 7 + 0) / 3)
    # a fourth class absent from truth and prediction is left out of the mean
    assert metrics.uf1(Y_TRUE, Y_PRED, 4) == pytest.approx((6 / 8 + 4 / 7 + 0) / 3)


def test_uar_by_hand():
    # recall over classes present in the truth: class 0: 3/4, class 1: 2/4 (class 2 has no clip)
    assert metrics.uar(Y_TRUE, Y_PRED, 3) == pytest.approx((3 / 4 + 2 / 4) / 2)


def test_perfect_and_constant_predictions():
    assert metrics.uf1([0, 1, 2], [0, 1, 2], 3) == 1.0
    assert metrics.uar([0, 1, 2], [0, 1, 2], 3) == 1.0
    # always predicting class 0 on a 3:1 set: accuracy 0.75 but UAR 0.5, UF1 (6/7 + 0) / 2
    assert metrics.accuracy([0, 0, 0, 1], [0, 0, 0, 0]) == 0.75
    assert metrics.uar([0, 0, 0, 1], [0, 0, 0, 0], 2) == 0.5
    assert metrics.uf1([0, 0, 0, 1], [0, 0, 0, 0], 2) == pytest.approx(3 / 7)


def test_metrics_reject_bad_labels():
    with pytest.raises(ValueError):
        metrics.confusion([0, 3], [0, 1], 3)
    with pytest.raises(ValueError):
        metrics.uf1([0, 1], [0], 2)


# --- schedule, normalisation, batches ----------------------------------------------------------------

def test_paper_schedule_is_four_epochs():
    assert lr_schedule(1e-3, 0.5, 1e-4, 100) == pytest.approx([1e-3, 5e-4, 2.5e-4, 1.25e-4])
    assert lr_schedule(1e-3, 1.0, 1e-4, 3) == [1e-3] * 3
    assert lr_schedule(1e-5, 0.5, 1e-4, 100) == []


def test_mean_std_from_histograms_matches_numpy():
    x = np.random.default_rng(0).integers(0, 256, (5, 2, 3, 20, 7), dtype=np.uint8)
    mean, std = mean_std_from_histograms(channel_histograms(x, np.array([0, 2, 4])))
    chosen = x[[0, 2, 4]].astype(np.float64) / 255
    np.testing.assert_allclose(mean, chosen.mean(axis=(0, 1, 3, 4)), rtol=1e-12)
    np.testing.assert_allclose(std, chosen.std(axis=(0, 1, 3, 4)), rtol=1e-9)
    constant = np.full((1, 1, 3, 4, 4), 7, dtype=np.uint8)
    assert mean_std_from_histograms(channel_histograms(constant, np.array([0])))[1] == [1 / 255] * 3


def test_shuffled_batches_visit_every_training_variant_once():
    n_clips, n_variants = 10, 4
    x = np.arange(n_clips * n_variants, dtype=np.uint8).reshape(n_clips, n_variants, 1, 1, 1)
    x = np.broadcast_to(x, (n_clips, n_variants, 3, 2, 2)).copy()
    labels = np.arange(n_clips) % 3
    rows = np.array([0, 1, 3, 4, 6, 8, 9])                 # clips 2, 5, 7 are the test fold
    batches = list(shuffled_batches(x, rows, labels, 5, np.random.default_rng(0), clips_per_buffer=3))
    ids = np.concatenate([b[2] for b in batches])
    assert sorted(ids) == sorted(r * n_variants + v for r in rows for v in range(n_variants))
    assert [len(b[1]) for b in batches] == [5] * 5 + [3]    # 28 samples, buffers of 12 and carry-over
    for samples, y, sample_ids in batches:
        assert (samples[:, 0, 0, 0] == sample_ids).all()   # each sample is the variant its id names
        assert (y == labels[sample_ids // n_variants]).all()
    assert not set(ids // n_variants) & {2, 5, 7}
    again = list(shuffled_batches(x, rows, labels, 5, np.random.default_rng(0), clips_per_buffer=3))
    assert all((a[2] == b[2]).all() for a, b in zip(batches, again, strict=True))


def test_split_fold_keeps_clips_whole_and_checks_the_folds():
    clips = pd.DataFrame({"clip_id": ["a", "b", "c", "d"], "subject": ["s1", "s1", "s2", "s2"],
                          "label": ["x", "y", "x", "y"], "label_index": [0, 1, 0, 1]})
    folds = clips[["clip_id", "subject", "label"]].assign(fold=[0, 1, 1, 0])
    train_rows, test_rows = split_fold(clips, folds, 1, "data/x/tensors.h5")
    assert train_rows.tolist() == [0, 3] and test_rows.tolist() == [1, 2]
    with pytest.raises(MerflowError, match="1 clips of data/x/tensors.h5 have no fold"):
        split_fold(clips, folds.iloc[:3], 1, "data/x/tensors.h5")
    with pytest.raises(MerflowError, match="labels"):
        split_fold(clips, folds.assign(label=["x", "x", "x", "y"]), 1, "data/x/tensors.h5")
    with pytest.raises(MerflowError, match="0 test clips"):
        split_fold(clips, folds, 2, "data/x/tensors.h5")
    with pytest.raises(MerflowError, match="clip ids listed twice"):
        split_fold(pd.concat([clips, clips.iloc[:1]]), folds, 1, "data/x/tensors.h5")


# --- one fold end to end ------------------------------------------------------------------------------

CLASSES = ["calm", "twitch"]
PIXELS, FRAMES, VARIANTS = 300, 16, 4


def write_tiny_store(tmp_path, n_clips=24):
    """24 clips x 4 variants; class "twitch" has a brightening band in the middle frames."""
    rng = np.random.default_rng(1)
    labels = np.arange(n_clips) % 2
    x = rng.integers(60, 140, (n_clips, VARIANTS, 3, PIXELS, FRAMES), dtype=np.uint8)
    for i in np.flatnonzero(labels == 1):
        start = rng.integers(20, 150)
        x[i, :, :, start:start + 100, 5:11] += 80
    subjects = [f"s{i // 4}" for i in range(n_clips)]
    clip_ids = [f"clip{i:02d}" for i in range(n_clips)]
    tensors = tmp_path / "tensors.h5"
    with h5py.File(tensors, "w") as h5:
        h5.create_dataset("x", data=x, chunks=(1, *x.shape[1:]))
        h5["clip_id"] = clip_ids
        h5["subject"] = subjects
        h5["label"] = [CLASSES[i] for i in labels]
        h5["label_index"] = labels.astype(np.int64)
        h5.attrs["classes"] = json.dumps(CLASSES)
    folds = tmp_path / "folds.csv"
    pd.DataFrame({"clip_id": clip_ids, "subject": subjects, "label": [CLASSES[i] for i in labels],
                  "fold": [i // 4 % 3 for i in range(n_clips)]}).to_csv(folds, index=False)
    return tensors, folds


# threads=1: on a busy 2-core machine two OpenMP threads stall on tiny ops (seconds per epoch).
TRAIN_PARAMS = dict(method="rcnn", maps=4, recurrent_steps=1, batch_size=8, lr=0.05, lr_decay=0.8,
                    min_lr=0.001, max_epochs=10, momentum=0.9, weight_decay=5e-4, seed=0, device="cpu",
                    threads=1, precision="fp32")


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    tmp_path = tmp_path_factory.mktemp("fold")
    tensors, folds = write_tiny_store(tmp_path)
    runs = [tmp_path / "run1", tmp_path / "run2"]
    for out_dir in runs:
        train_fold_stage(tensors, folds, 0, out_dir, **TRAIN_PARAMS)
    return tensors, folds, runs


def test_fold_outputs_and_columns(trained):
    _, _, (out_dir, _) = trained
    assert sorted(p.name for p in out_dir.iterdir()) == [
        "epochs.h5", "metrics.json", "model.pt", "predictions.csv", "train_log.csv"]
    predictions = pd.read_csv(out_dir / "predictions.csv")
    assert list(predictions.columns) == ["clip_id", "subject", "true", "predicted", "p_calm", "p_twitch"]
    np.testing.assert_allclose(predictions[["p_calm", "p_twitch"]].sum(axis=1), 1.0, atol=2e-6)
    log = pd.read_csv(out_dir / "train_log.csv")
    assert list(log.columns) == ["epoch", "lr", "loss", "train_accuracy", "seconds"]
    assert log["lr"].tolist() == pytest.approx(lr_schedule(0.05, 0.8, 0.001, 10))
    scores = json.loads((out_dir / "metrics.json").read_text())
    for key in ("accuracy", "uf1", "uar", "confusion", "n_test", "epochs", "seconds", "samples_per_second"):
        assert key in scores
    assert scores["epochs"] == len(log) and scores["n_test"] == len(predictions) == 8
    assert scores["test_views"] == VARIANTS and scores["unjittered"] is None    # a store without /keep_ratio


def test_test_fold_is_exactly_the_held_out_clips(trained):
    _, folds, (out_dir, _) = trained
    predictions = pd.read_csv(out_dir / "predictions.csv")
    folds = pd.read_csv(folds)
    assert sorted(predictions["clip_id"]) == sorted(folds.loc[folds["fold"] == 0, "clip_id"])
    scores = json.loads((out_dir / "metrics.json").read_text())
    assert scores["n_train_samples"] == 16 * VARIANTS     # all 4 variants of each of the 16 others


def test_fold_beats_chance(trained):
    _, _, (out_dir, _) = trained
    scores = json.loads((out_dir / "metrics.json").read_text())
    assert scores["accuracy"] >= 0.875                   # 8 balanced test clips: chance is 0.5
    assert sum(map(sum, scores["confusion"])) == 8


def test_same_seed_gives_identical_predictions(trained):
    _, _, (run1, run2) = trained
    assert (run1 / "predictions.csv").read_bytes() == (run2 / "predictions.csv").read_bytes()


def test_input_normalisation_comes_from_the_training_clips_only(trained):
    tensors, folds, (out_dir, _) = trained
    stored = torch.load(out_dir / "model.pt", weights_only=True)["normalisation"]
    is_train = (pd.read_csv(folds)["fold"] != 0).to_numpy()
    with h5py.File(tensors, "r") as h5:
        x = h5["x"][()] / 255.0
    np.testing.assert_allclose(stored["mean"], x[is_train].mean(axis=(0, 1, 3, 4)), rtol=1e-12)
    np.testing.assert_allclose(stored["std"], x[is_train].std(axis=(0, 1, 3, 4)), rtol=1e-9)
    assert not np.allclose(stored["mean"], x.mean(axis=(0, 1, 3, 4)), rtol=1e-6)


def test_checkpoint_reproduces_predictions(trained):
    """model.pt evaluated the way the stage tested it (merflow predict's path: same precision, batch
    size and memory layout) gives predictions.csv's probabilities; the only difference allowed is the
    CSV's rounding to 6 decimals."""
    tensors, _, (out_dir, _) = trained
    checkpoint = load_checkpoint(out_dir / "model.pt")
    model, classes = build_model(checkpoint), checkpoint["classes"]
    assert classes == CLASSES and checkpoint["params"]["fold"] == 0
    assert len(checkpoint["normalisation"]["mean"]) == 3
    predictions = pd.read_csv(out_dir / "predictions.csv")
    with h5py.File(tensors, "r") as h5:
        rows = [list(h5["clip_id"].asstr()[()]).index(c) for c in predictions["clip_id"]]
        p_twitch = [mean_softmax(model, h5["x"][row], checkpoint)[1] for row in rows]
    np.testing.assert_allclose(p_twitch, predictions["p_twitch"], rtol=0, atol=5e-7 + 1e-12)


def test_bf16_forward_is_fp32_within_bf16_rounding():
    """One conv under bf16 autocast against fp32: inputs and weights rounded to bf16 (8-bit mantissa,
    relative error <= 2^-8 each) bound the error of each output by about 2 * 2^-8 * sum |w| |x|, whatever
    the kernel's accumulation order, plus the output's own rounding to bf16 (2^-8 |y|)."""
    torch.manual_seed(0)
    conv = torch.nn.Conv2d(3, 8, 3, padding=1)
    x = torch.randn(4, 3, 40, 30)
    with torch.no_grad():
        exact = conv(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            approx = conv(x).float()
        magnitude = torch.nn.functional.conv2d(x.abs(), conv.weight.abs(), conv.bias.abs(), padding=1)
    bound = 2 * 2.0 ** -8 * magnitude + 2.0 ** -8 * exact.abs() + 1e-6
    assert approx.dtype == torch.float32 and (approx - exact).abs().le(bound).all()
    assert (approx - exact).abs().max() > 0          # bf16 was really used


def test_test_clips_are_scored_on_the_mean_over_views_and_on_the_unjittered_view(tmp_path):
    """A store that says which variant is keep-ratio 1.0 + bilinear: metrics.json also scores each test
    clip on that view alone, as the checkpoint scores it."""
    tensors, folds = write_tiny_store(tmp_path, n_clips=12)
    with h5py.File(tensors, "a") as h5:
        h5["keep_ratio"] = [0.9, 0.9, 1.0, 1.0][:VARIANTS]
        h5["kernel"] = ["nearest", "bilinear", "nearest", "bilinear"][:VARIANTS]
    train_fold_stage(tensors, folds, 1, tmp_path / "out", **{**TRAIN_PARAMS, "max_epochs": 2})
    scores = json.loads((tmp_path / "out" / "metrics.json").read_text())
    plain = scores["unjittered"]
    assert (plain["keep_ratio"], plain["kernel"], scores["test_views"]) == (1.0, "bilinear", VARIANTS)
    checkpoint = load_checkpoint(tmp_path / "out" / "model.pt")
    model = build_model(checkpoint)
    predictions = pd.read_csv(tmp_path / "out" / "predictions.csv")
    with h5py.File(tensors, "r") as h5:
        ids = list(h5["clip_id"].asstr()[()])
        views = [h5["x"][ids.index(c)][3:4] for c in predictions["clip_id"]]     # the unjittered view alone
        labels = [int(h5["label_index"][ids.index(c)]) for c in predictions["clip_id"]]
    predicted = [int(np.argmax(mean_softmax(model, view, checkpoint))) for view in views]
    assert plain["accuracy"] == pytest.approx(metrics.accuracy(labels, predicted))


def test_epoch_selection_of_the_rcnn(tmp_path):
    """With test among the selections the RCNN scores its test clips after every epoch (the last epoch's are
    its predictions, and the test row's epoch scores at least as well); inner trains without its validation
    subjects, chooses on them, and relabelled test clips change nothing of that choice."""
    tensors, folds = write_tiny_store(tmp_path, n_clips=24)
    params = {**TRAIN_PARAMS, "max_epochs": 3}
    train_fold_stage(tensors, folds, 1, tmp_path / "last", **params, selections=["last", "test"])
    clips, by_epoch, attrs = read_epochs(tmp_path / "last" / "epochs.h5")
    predictions = pd.read_csv(tmp_path / "last" / "predictions.csv")
    assert by_epoch.shape == (3, 8, 2) and attrs["every_epoch"] and attrs["chosen_epoch"] == 3
    np.testing.assert_allclose(predictions[["p_calm", "p_twitch"]], by_epoch[-1], atol=1e-6)
    select_on_test_stage(tmp_path / "last" / "epochs.h5", tmp_path / "test", 1, classes=CLASSES, metric="accuracy",
                         ties="latest")
    last, test = (json.loads((tmp_path / d / "metrics.json").read_text()) for d in ("last", "test"))
    assert test["accuracy"] >= last["accuracy"] and test["selection"] == "test"
    # without test among the selections only the last epoch is kept, and the audit row refuses it
    train_fold_stage(tensors, folds, 1, tmp_path / "plain", **params)
    assert read_epochs(tmp_path / "plain" / "epochs.h5")[1].shape == (1, 8, 2)
    with pytest.raises(BadInputError, match="only the last epoch"):
        select_on_test_stage(tmp_path / "plain" / "epochs.h5", tmp_path / "x", 1, classes=CLASSES,
                             metric="accuracy", ties="latest")
    inner = {"validation_subjects": 0.25, "split_seed": 0, "metric": "accuracy", "ties": "latest"}
    chosen = []
    for name in ("inner", "relabelled"):
        if name == "relabelled":                          # every test clip of fold 1 gets the other class
            table = pd.read_csv(folds)
            test_rows = table["fold"] == 1
            table.loc[test_rows, "label"] = table.loc[test_rows, "label"].map({"calm": "twitch", "twitch": "calm"})
            table.to_csv(folds, index=False)
            with h5py.File(tensors, "a") as h5:
                ids = list(h5["clip_id"].asstr()[()])
                for clip_id, label in zip(table["clip_id"], table["label"], strict=True):
                    h5["label_index"][ids.index(clip_id)] = CLASSES.index(label)
                del h5["label"]
                h5["label"] = [table.set_index("clip_id").loc[c, "label"] for c in ids]
        train_fold_stage(tensors, folds, 1, tmp_path / name, **params, selection="inner", inner=inner)
        scores = json.loads((tmp_path / name / "metrics.json").read_text())
        with h5py.File(tmp_path / name / "epochs.h5") as h5:
            chosen.append((scores["selected_epoch"], scores["validation_subjects"], h5["validation_scores"][()],
                           h5["test_probabilities"][()]))
        assert scores["n_train_clips"] == 16 - 4 and scores["n_validation_clips"] == 4   # 1 of 4 training subjects
    assert chosen[0][:2] == chosen[1][:2]
    assert np.array_equal(chosen[0][2], chosen[1][2]) and np.array_equal(chosen[0][3], chosen[1][3])


def test_the_feedforward_method_removes_only_the_recurrence(tmp_path):
    tensors, folds = write_tiny_store(tmp_path, n_clips=12)
    params = {**TRAIN_PARAMS, "method": "rcnn_feedforward", "max_epochs": 1}
    train_fold_stage(tensors, folds, 1, tmp_path / "ff", **params)
    checkpoint = torch.load(tmp_path / "ff" / "model.pt", weights_only=True)
    assert checkpoint["config"]["recurrent"] is False and checkpoint["config"]["recurrent_steps"] == 1
    assert sum(".recurrent." in key for key in checkpoint["state_dict"]) == 4        # each RCL's 3x3 conv
    with pytest.raises(MerflowError, match="unknown method"):
        train_fold_stage(tensors, folds, 1, tmp_path / "x", **{**params, "method": "lstm"})


def test_bf16_training_is_deterministic_and_records_its_precision(tmp_path):
    """bf16 is opt-in: two runs with the same seed give byte-identical predictions on one machine, the
    training loss falls, and metrics.json says which precision made them. How well bf16 learns depends
    on the CPU's kernels (bench/README.md), so its accuracy is not asserted here; fp32's is (above)."""
    tensors, folds = write_tiny_store(tmp_path)
    runs = [tmp_path / "bf16_a", tmp_path / "bf16_b"]
    for out_dir in runs:
        train_fold_stage(tensors, folds, 0, out_dir, **{**TRAIN_PARAMS, "precision": "bf16"})
    assert (runs[0] / "predictions.csv").read_bytes() == (runs[1] / "predictions.csv").read_bytes()
    scores = json.loads((runs[0] / "metrics.json").read_text())
    assert scores["precision"] == "bf16"
    loss = pd.read_csv(runs[0] / "train_log.csv")["loss"]
    assert loss.iloc[-1] < loss.iloc[0]
    probabilities = pd.read_csv(runs[0] / "predictions.csv")[["p_calm", "p_twitch"]]
    np.testing.assert_allclose(probabilities.sum(axis=1), 1.0, atol=2e-6)
    with pytest.raises(MerflowError, match="precision"):
        train_fold_stage(tensors, folds, 0, tmp_path / "x", **{**TRAIN_PARAMS, "precision": "fp16"})


def test_deterministic_switch_sets_torch_and_cudnn(tmp_path):
    """train.deterministic on: torch's deterministic algorithms and no cuDNN autotuning during the
    stage; off: cuDNN may autotune. The CPU's predictions are the same either way."""
    tensors, folds = write_tiny_store(tmp_path, n_clips=12)
    params = {**TRAIN_PARAMS, "max_epochs": 1}
    try:
        for deterministic in (False, True):
            train_fold_stage(tensors, folds, 1, tmp_path / str(deterministic), **params, deterministic=deterministic)
            assert torch.are_deterministic_algorithms_enabled() is deterministic
            assert torch.backends.cudnn.benchmark is not deterministic
        predictions = [(tmp_path / name / "predictions.csv").read_bytes() for name in ("False", "True")]
        assert predictions[0] == predictions[1]
    finally:
        torch.use_deterministic_algorithms(False)
        torch.backends.cudnn.benchmark = False
