"""HTNet's port (pipeline/baselines/htnet.py): the authors' parameter count at their configuration, the shapes
of a forward pass, the five points and the four tiled regions, and one tiny fold through its stages."""

import json

import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.baselines.flownets import parameter_count
from pipeline.baselines.htnet import HTNet, five_points, htnet_inputs, region_input
from pipeline.config import load_params
from pipeline.protocols import kfold_folds
from pipeline.runner import stage_function
from pipeline.selection import read_epochs
from pipeline.stages import STAGES, stage_params
from tests.test_flow import CLASSES, FLOW_PARAMS, write_motion_store

# The authors' Model.py, HTNet(image_size=28, patch_size=7, dim=256, heads=3, num_hierarchies=3,
# block_repeats=(2, 2, 10), num_classes=3), counts 139,582,982 parameters (counted with their code and einops).
AUTHORS_PARAMETERS = 139_582_982
TINY = dict(input_size=28, patch_size=7, dim=8, heads=1, hierarchies=3, block_repeats=[1, 1, 1], mlp_mult=2,
            epochs=4, lr=0.001, batch_size=8, swap_xy=False, device="cpu", seed=0, threads=1)


def test_parameter_count_is_the_authors_at_their_configuration():
    with torch.device("meta"):                      # no memory: 560 MB of weights at this size
        model = HTNet(n_classes=3, image_size=28, patch_size=7, dim=256, heads=3, hierarchies=3,
                      block_repeats=(2, 2, 10), mlp_mult=4)
    assert parameter_count(model) == AUTHORS_PARAMETERS
    params = load_params("params.yaml")["htnet"]
    assert (params["dim"], params["heads"], params["hierarchies"], params["block_repeats"], params["patch_size"],
            params["epochs"], params["lr"], params["batch_size"]) == (256, 3, 3, [2, 2, 10], 7, 800, 5e-5, 256)


def test_a_small_htnet_maps_28x28_inputs_to_class_scores():
    model = HTNet(n_classes=3, dim=8, heads=1, block_repeats=(1, 1, 1), mlp_mult=2)
    assert model(torch.randn(5, 3, 28, 28)).shape == (5, 3)
    with pytest.raises(ValueError, match="multiple"):
        HTNet(n_classes=3, image_size=28, patch_size=5)


def test_five_points_map_aligned_landmarks_onto_the_flow_grid():
    landmarks = np.zeros((68, 2))
    landmarks[36:42], landmarks[42:48] = (63.5, 95.5), (127.5, 95.5)   # eye centres, 256 x 192 aligned frame
    landmarks[30], landmarks[48], landmarks[54] = (95.5, 127.5), (63.5, 191.5), (127.5, 191.5)
    points = five_points(landmarks, height=256, width=192, size=28)
    scale = np.array([28 / 192, 28 / 256])
    assert np.allclose(points[0], (np.array([63.5, 95.5]) + 0.5) * scale - 0.5)
    assert points[0, 0] < points[1, 0] and points[3, 1] > points[0, 1]   # left eye left of right, mouth below


def test_regions_tile_eyes_over_mouth_corners_clamped_as_the_authors():
    image = np.arange(3 * 28 * 28, dtype=np.float32).reshape(3, 28, 28)
    points = np.array([[8.0, 9.0], [19.0, 9.0], [14.0, 15.0], [9.0, 22.0], [18.0, 22.0]])   # x, y
    tiled = region_input(image, points)
    assert tiled.shape == (3, 28, 28)
    assert np.array_equal(tiled[:, :14, :14], image[:, 2:16, 1:15])        # left eye: rows y-7.., columns x-7..
    assert np.array_equal(tiled[:, :14, 14:], image[:, 2:16, 12:26])       # right eye
    assert np.array_equal(tiled[:, 14:, :14], image[:, 14:28, 2:16])   # left mouth corner, y clamped to 21
    assert np.array_equal(tiled[:, 14:, 14:], image[:, 14:28, 11:25])      # right mouth corner
    swapped = region_input(image, points, swap_xy=True)                   # the authors' crops: rows by x
    assert np.array_equal(swapped[:, :14, :14], image[:, 1:15, 2:16])
    far = region_input(image, np.array([[0.0, 0.0], [30.0, 2.0], [0, 0], [5.9, 27.0], [21.7, 21.2]]))
    assert np.array_equal(far[:, :14, :14], image[:, 0:14, 0:14])          # clamped to 7, 7
    assert np.array_equal(far[:, 14:, 14:], image[:, 14:28, 14:28])        # 21.7 and 21.2 -> 21


def write_landmarks(path) -> None:
    """Give every clip of a motion store (48 x 40 frames) landmarks at a face's places."""
    landmarks = np.zeros((68, 2), dtype=np.float32)
    landmarks[36:42], landmarks[42:48], landmarks[30] = (12, 16), (28, 16), (20, 26)
    landmarks[48], landmarks[54] = (13, 36), (27, 36)
    with h5py.File(path, "r+") as h5:
        for group in h5["clips"].values():
            group["landmarks"] = landmarks


def test_htnet_trains_a_fold_and_records_every_epoch(tmp_path):
    rows = write_motion_store(tmp_path / "aligned.h5", subjects=2)
    write_landmarks(tmp_path / "aligned.h5")
    stage_function(STAGES["flow"])(tmp_path / "aligned.h5", tmp_path / "flow.h5", tmp_path / "qc", tmp_path / "a.csv",
                                   **FLOW_PARAMS)
    kfold_folds(pd.DataFrame(rows), k=3, seed=0).to_csv(tmp_path / "folds.csv", index=False)
    out = tmp_path / "fold0"
    stage_function(STAGES["htnet"])(tmp_path / "flow.h5", tmp_path / "aligned.h5", tmp_path / "folds.csv", 0, out,
                                    classes=CLASSES, **TINY)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "htnet" and metrics["selection"] == "last" and metrics["selected_epoch"] == 4
    assert metrics["n_test"] == 4 and metrics["n_train_clips"] == len(rows) - 4 and metrics["samples_per_second"] > 0
    clips, probabilities, _ = read_epochs(out / "epochs.h5")
    assert probabilities.shape == (4, 4, 3) and np.allclose(probabilities.sum(axis=2), 1, atol=1e-5)
    predictions = pd.read_csv(out / "predictions.csv")
    assert np.allclose(predictions[[f"p_{c}" for c in CLASSES]], probabilities[-1], atol=1e-6)
    x = htnet_inputs(np.zeros((1, 3, 28, 28), np.float32), np.full((1, 5, 2), 14.0))
    assert x.shape == (1, 3, 28, 28) and not x.any()


def test_htnet_params_reach_the_stage():
    params = load_params("params.yaml")
    params["methods"] = ["htnet"]
    kwargs = stage_params(params, "htnet", ds="casme2", seed=0)
    assert kwargs["dim"] == 256 and kwargs["seed"] == 0 and kwargs["classes"] == params["mappings"]["paper4"]["classes"]
    inner = stage_params(params, "htnet_inner", ds="casme2", seed=0)
    assert inner["inner"] == params["epoch_selection"]
