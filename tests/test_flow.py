"""The flow stage and the flow networks: TV-L1's direction on a shifted image, the strain of known fields,
the stage's store, QC images and apex table on a tiny aligned store, STSTNet's and OFF-ApexNet's shapes and
parameter counts against the papers' layers, and flow -> both networks -> Table 2 -> report end to end."""

import json
import os

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.aggregate import MEGC2019_PUBLISHED, aggregate_stage, table2
from pipeline.artifacts import open_h5_for_write, read_provenance, write_clip
from pipeline.baselines.flownets import (
    OFFApexNet,
    STSTNet,
    build_network,
    fit_network,
    network_inputs,
    normalise_channels,
    parameter_count,
)
from pipeline.baselines.stacked import fit_folds, predict_folds
from pipeline.config import load_params
from pipeline.errors import BadInputError, ParamsError
from pipeline.flow import (
    FARNEBACK_DEFAULTS,
    flow_channels,
    flow_colour,
    flow_solver,
    onset_apex_flow,
    optical_strain,
    read_flow,
    spotting_summary,
    tvl1_solver,
)
from pipeline.protocols import kfold_folds
from pipeline.report import report_stage
from pipeline.runner import stage_function
from pipeline.stages import STAGES, stage_params

CLASSES = ["negative", "positive", "surprise"]
DIRECTIONS = {"negative": (1, 0), "positive": (-1, 0), "surprise": (0, -1)}   # right, left, up
FAST_TVL1 = dict(tau=0.25, data_weight=0.15, theta=0.3, scales=3, warps=3, epsilon=0.01, inner_iterations=10,
                 outer_iterations=5, scale_step=0.5, median_filtering=5)


def textured(height: int, width: int, seed: int) -> np.ndarray:
    noise = cv2.GaussianBlur(np.random.default_rng(seed).random((height, width)).astype(np.float32), (0, 0), 2.0)
    return (noise - noise.mean()) / noise.std() * 30 + 128


def shifted(image: np.ndarray, dx: float, dy: float) -> np.ndarray:
    h, w = image.shape
    return cv2.warpAffine(image, np.float32([[1, 0, dx], [0, 1, dy]]), (w, h), flags=cv2.INTER_LINEAR,
                          borderMode=cv2.BORDER_REFLECT)


# --- flow and strain on arrays -------------------------------------------------------------------------

@pytest.mark.parametrize("dx,dy", [(1.5, 0.0), (0.0, -1.0), (-0.8, 0.6)])
def test_tvl1_flow_points_where_the_image_moved(dx, dy):
    image = textured(64, 64, 0)
    flow = onset_apex_flow(image.astype(np.uint8), shifted(image, dx, dy).astype(np.uint8), tvl1_solver(**FAST_TVL1))
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    inner = flow[12:-12, 12:-12]
    assert np.median(inner[..., 0]) == pytest.approx(dx, abs=0.15)      # u: to the right
    assert np.median(inner[..., 1]) == pytest.approx(dy, abs=0.15)      # v: downwards


@pytest.mark.parametrize("method", ["dis", "farneback"])
@pytest.mark.parametrize("dx,dy", [(1.5, 0.0), (0.0, -1.0), (-0.8, 0.6)])
def test_every_flow_method_points_where_the_image_moved(method, dx, dy):
    """flow.method: OpenCV's DIS and Farneback, called as the stage calls them, in TV-L1's convention."""
    image = textured(64, 64, 0)
    solver = flow_solver(method, dis_preset="medium", farneback=FARNEBACK_DEFAULTS, **FAST_TVL1)
    flow = onset_apex_flow(image.astype(np.uint8), shifted(image, dx, dy).astype(np.uint8), solver)
    assert flow.shape == (64, 64, 2) and flow.dtype == np.float32
    inner = flow[12:-12, 12:-12]
    assert np.median(inner[..., 0]) == pytest.approx(dx, abs=0.2)
    assert np.median(inner[..., 1]) == pytest.approx(dy, abs=0.2)


def test_optical_strain_of_known_fields():
    y, x = np.mgrid[:32, :32].astype(np.float32)
    stretch = np.stack([0.03 * x, -0.04 * y], axis=-1)                  # eps_xx = 0.03, eps_yy = -0.04
    assert np.allclose(optical_strain(stretch), 0.05, atol=1e-6)
    shear = np.stack([0.02 * y, np.zeros_like(y)], axis=-1)             # eps_xy = eps_yx = 0.01
    assert np.allclose(optical_strain(shear), 0.02 / np.sqrt(2), atol=1e-6)
    rotation = np.stack([-0.05 * y, 0.05 * x], axis=-1)                 # rigid: no strain
    translation = np.stack([np.full_like(x, 2.0), np.full_like(x, -1.0)], axis=-1)
    assert np.allclose(optical_strain(rotation), 0, atol=1e-6)
    assert np.allclose(optical_strain(translation), 0, atol=1e-6)


def test_flow_channels_are_u_v_strain_at_the_networks_size():
    y, x = np.mgrid[:256, :192].astype(np.float32)
    flow = np.stack([0.01 * x, np.full_like(x, -0.5)], axis=-1)
    channels = flow_channels(flow, 28)
    assert channels.shape == (3, 28, 28) and channels.dtype == np.float32
    assert channels[1] == pytest.approx(np.full((28, 28), -0.5))         # values stay in aligned-face pixels
    assert channels[2] == pytest.approx(np.full((28, 28), 0.01), abs=1e-5)
    assert channels[0, :, -1].mean() > channels[0, :, 0].mean()


def test_colour_wheel_hue_follows_direction():
    right = flow_colour(np.tile(np.float32([1, 0]), (4, 4, 1)))
    left = flow_colour(np.tile(np.float32([-1, 0]), (4, 4, 1)))
    still = flow_colour(np.zeros((4, 4, 2), np.float32))
    assert right[0, 0, 0] > right[0, 0, 2] and left[0, 0, 2] > left[0, 0, 0]   # red vs cyan-blue
    assert still.max() == 0


# --- the networks --------------------------------------------------------------------------------------

def test_ststnet_shapes_and_parameters_are_the_papers():
    model = STSTNet(n_classes=3)
    conv = 3 * 3 * 3 * (3 + 5 + 8) + (3 + 5 + 8)                        # three 3x3 streams on 3 channels
    batch_norm = 2 * (3 + 5 + 8)
    fully_connected = 5 * 5 * 16 * 3 + 3                                 # 10x10 -> 2x2 average pool -> 5x5x16
    assert model.features == 400
    assert parameter_count(model) == conv + batch_norm + fully_connected == 1683
    assert model(torch.zeros(4, 3, 28, 28)).shape == (4, 3)
    assert parameter_count(STSTNet(n_classes=5)) == 1683 + 2 * 401


def test_off_apexnet_shapes_and_parameters_are_the_papers():
    model = OFFApexNet(n_classes=3)
    per_stream = (5 * 5 * 1 * 6 + 6) + (5 * 5 * 6 * 16 + 16)              # conv 5x5/6, conv 5x5/16
    fully_connected = (2 * 7 * 7 * 16 * 1024 + 1024) + (1024 * 1024 + 1024) + (1024 * 3 + 3)
    assert model.features == 1568
    assert parameter_count(model) == 2 * per_stream + fully_connected == 2_664_475
    assert model(torch.zeros(4, 2, 28, 28)).shape == (4, 3)


def test_inputs_are_each_clips_channels_scaled_to_8_bit_range():
    flow = np.random.default_rng(0).normal(size=(2, 3, 28, 28)).astype(np.float32)
    flow[1, 2] = 0.0
    scaled = normalise_channels(flow)
    assert scaled[0].min(axis=(1, 2)) == pytest.approx([0, 0, 0]) and scaled[0].max(axis=(1, 2)) == pytest.approx(
        [255, 255, 255])
    assert (scaled[1, 2] == 0).all()                                     # a flat channel gives zeros, not NaN
    assert network_inputs("ststnet", flow).shape == (2, 3, 28, 28)       # strain, u, v
    assert np.allclose(network_inputs("ststnet", flow)[:, 0], scaled[:, 2])
    assert network_inputs("off_apexnet", flow).shape == (2, 2, 28, 28)   # u, v


# --- the stage on a tiny aligned store -----------------------------------------------------------------

def write_motion_store(path, subjects: int = 3, takes: int = 2) -> list[dict]:
    """aligned.h5: per subject, class and take a 10-frame 48x40 clip whose central patch moves 2 px in its
    class's direction up to the apex (frame 5) and back; odd takes have no coded apex (estimated)."""
    rng = np.random.default_rng(1)
    rows = []
    with open_h5_for_write(path) as h5:
        for subject in range(subjects):
            face = textured(48, 40, 10 + subject)
            for label in CLASSES:
                for take in range(takes):
                    dx, dy = DIRECTIONS[label]
                    frames = []
                    for t in range(10):
                        step = 2.0 * (1 - abs(t - 5) / 5)
                        frame = face.copy()
                        frame[12:36, 10:30] = shifted(face, dx * step, dy * step)[12:36, 10:30]
                        frames.append(np.clip(frame + rng.normal(0, 0.5, frame.shape), 0, 255))
                    grey = np.stack(frames).astype(np.uint8)
                    clip_id = f"sub{subject:02d}_{label}_{take}"
                    onset = 100 + 20 * take
                    attrs = {"subject": f"sub{subject:02d}", "label": label, "onset": onset, "offset": onset + 9,
                             "fps": 200.0, "apex": onset + 5, "apex_source": "sheet" if take % 2 == 0 else "estimated"}
                    write_clip(h5, clip_id, np.repeat(grey[..., None], 3, axis=-1), attrs)
                    rows.append({"clip_id": clip_id, "subject": f"sub{subject:02d}", "label": label})
    return rows


FLOW_PARAMS = dict(sizes=[28, 16], apex="store", method="tvl1", dis_preset="medium", farneback=FARNEBACK_DEFAULTS,
                   **FAST_TVL1)


@pytest.fixture(scope="module")
def flow_run(tmp_path_factory):
    root = tmp_path_factory.mktemp("flow")
    data = root / "data" / "tiny"
    data.mkdir(parents=True)
    rows = write_motion_store(data / "aligned.h5")
    stage_function(STAGES["flow"])(data / "aligned.h5", data / "flow.h5", data / "flow_qc", data / "apex_spotting.csv",
                                   **FLOW_PARAMS)
    kfold_folds(pd.DataFrame(rows), k=3, seed=0).to_csv(data / "folds.csv", index=False)
    return root, data, rows


def test_flow_store_holds_u_v_strain_per_clip_with_provenance(flow_run):
    _, data, rows = flow_run
    prov = read_provenance(data / "flow.h5")
    assert prov["stage"] == "flow" and prov["params"] == FLOW_PARAMS and "aligned" in prov["inputs"]
    flow, clips = read_flow(data / "flow.h5", 28)
    assert flow.shape == (len(rows), 3, 28, 28) and list(clips["clip_id"]) == [r["clip_id"] for r in rows]
    assert read_flow(data / "flow.h5", 16)[0].shape == (len(rows), 3, 16, 16)
    centre = flow[:, :, 10:18, 10:18].mean(axis=(2, 3))
    for (_, clip), (u, v, _) in zip(clips.iterrows(), centre, strict=True):
        dx, dy = DIRECTIONS[clip["label"]]
        assert np.sign(u) == dx or dx == 0 and abs(u) < 0.5, (clip["clip_id"], u, v)
        assert np.sign(v) == dy or dy == 0 and abs(v) < 0.5, (clip["clip_id"], u, v)
        assert abs(u * dx + v * dy) > 0.8                              # about 2 px along the class's direction
    assert (flow[:, 2] >= 0).all()
    with pytest.raises(BadInputError, match="add 56 to flow.sizes"):
        read_flow(data / "flow.h5", 56)


def test_flow_qc_and_apex_spotting_table(flow_run):
    _, data, rows = flow_run
    qc = sorted(p.stem for p in (data / "flow_qc").glob("*.png"))
    assert qc == sorted(r["clip_id"] for r in rows)
    image = cv2.imread(str(data / "flow_qc" / f"{rows[0]['clip_id']}.png"))
    assert image.shape[1] == 3 * 2 * 40                                   # face + arrows, wheel, strain; zoom 2
    table = pd.read_csv(data / "apex_spotting.csv")
    assert list(table["clip_id"]) == [r["clip_id"] for r in rows]
    coded = table[table["apex_source"] == "sheet"]
    assert coded["apex_coded"].notna().all() and table.loc[table["apex_source"] != "sheet", "apex_coded"].isna().all()
    assert (coded["error_frames"] == coded["apex_estimated"] - coded["apex_coded"]).all()
    assert (coded["error_ms"] == coded["error_frames"] * 5.0).all()       # 200 fps: 5 ms per frame
    assert (coded["error_frames"].abs() <= 1).all()                       # the estimate finds the peak
    summary = spotting_summary(table)
    assert summary["coded"] == len(coded) and summary["within_1"] == 1.0


def test_flow_stage_rejects_a_bad_clip_naming_it(tmp_path):
    with open_h5_for_write(tmp_path / "aligned.h5") as h5:
        write_clip(h5, "sub01_EP01", np.zeros((1, 16, 16, 3), np.uint8), {"subject": "sub01", "label": "positive",
                                                                          "onset": 0, "apex": 0, "offset": 0})
    with pytest.raises(BadInputError, match=r"clip sub01_EP01 \(.*aligned.h5\): needs uint8 frames"):
        stage_function(STAGES["flow"])(tmp_path / "aligned.h5", tmp_path / "flow.h5", tmp_path / "qc",
                                       tmp_path / "apex.csv", **FLOW_PARAMS)
    assert not (tmp_path / "flow.h5").exists() and not (tmp_path / "apex.csv").exists()


# --- flow -> STSTNet and OFF-ApexNet -> Table 2 -> report ----------------------------------------------

SMALL = {"ststnet": dict(input_size=28, epochs=25, lr=0.01, batch_size=12, dropout=0.5, seed=0, threads=1),
         "off_apexnet": dict(input_size=28, epochs=10, lr=0.0005, batch_size=12, dropout=0.5, seed=0, threads=1)}


def random_flow(method: str, sizes: tuple[int, ...] = (4, 6, 8, 9, 10, 11), seed: int = 0):
    """Inputs, labels and leave-one-subject-out training and test rows, for training folds together and alone;
    subjects of `sizes` clips, so that the folds' training sets and batches differ in size, as a real
    composite's do."""
    rng = np.random.default_rng(seed)
    channels = 3 if method == "ststnet" else 2
    clips, subjects = sum(sizes), len(sizes)
    x = torch.from_numpy(rng.uniform(0, 255, (clips, channels, 28, 28)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, 3, clips))
    subject = rng.permutation(np.repeat(np.arange(subjects), sizes))
    train = [torch.from_numpy(np.flatnonzero(subject != s)) for s in range(subjects)]
    test = [torch.from_numpy(np.flatnonzero(subject == s)) for s in range(subjects)]
    return x, y, train, test


def alone(method, x, y, train, test, *, epochs, dropout, batch_size, lr, seed=7):
    torch.manual_seed(seed)
    model = build_network(method, 3, 28, dropout)
    losses = fit_network(model, x[train], y[train], epochs=epochs, lr=lr, batch_size=batch_size, seed=seed)
    model.eval()
    with torch.inference_mode():
        return model(x[test]).softmax(dim=1).double(), losses


@pytest.mark.parametrize("method", ["ststnet", "off_apexnet"])
def test_folds_trained_together_are_the_folds_trained_alone(method):
    """Same initialisation, shuffles, dropout masks and Adam steps: after two epochs (batches of 16 over 37-44
    training clips: short last batches of different sizes, padded, as a real composite's folds have) every
    fold's probabilities equal its own run's to float32 rounding (the sums are taken in another order), and
    so do its losses. OFF-ApexNet's bound is wider: its 1,568- and 1,024-term sums of activations in the
    hundreds (inputs 0-255) round at about 1e-5 of the logits, and Adam's first steps move a weight by about
    lr whatever its gradient's size, so a near-zero gradient rounded to the other sign moves it the other way."""
    x, y, train, test = random_flow(method)
    network, losses = fit_folds(method, x, y, train, n_classes=3, input_size=28, dropout=0.5, epochs=2, lr=1e-3,
                                batch_size=16, seed=7)
    together = predict_folds(network, x, test)
    for fold in range(len(train)):
        probabilities, fold_losses = alone(method, x, y, train[fold], test[fold], epochs=2, dropout=0.5,
                                           batch_size=16, lr=1e-3)
        tolerance = 1e-5 if method == "ststnet" else 1e-3
        assert torch.allclose(together[fold], probabilities, atol=tolerance), fold
        assert losses[fold] == pytest.approx(fold_losses, rel=tolerance)


def test_no_fold_trained_together_reads_another_folds_test_clips():
    """Fold 0's test clips poisoned with NaN: every other fold trains on them and turns NaN, fold 0 never
    reads them and comes out as it does alone."""
    x, y, train, test = random_flow("ststnet")
    x[test[0]] = float("nan")
    network, _ = fit_folds("ststnet", x, y, train, n_classes=3, input_size=28, dropout=0.5, epochs=1, lr=1e-3,
                           batch_size=16, seed=7)
    clean = x.clone()
    clean[test[0]] = 0
    together = predict_folds(network, clean, test)
    assert torch.isfinite(together[0]).all() and not torch.isfinite(together[1]).all()
    probabilities, _ = alone("ststnet", clean, y, train[0], test[0], epochs=1, dropout=0.5, batch_size=16, lr=1e-3)
    assert torch.allclose(together[0], probabilities, atol=1e-5)


def test_the_folds_stage_writes_what_the_per_fold_jobs_write(flow_run, tmp_path):
    """`folds_together`: one job trains the three folds, each fold's job writes its files from the store;
    the per-fold predictions agree with the folds trained one by one (the whole schedule: float32 rounding
    in another order, far inside any interval Table 2 reports) and metrics.json says how it was trained."""
    _, data, rows = flow_run
    params = SMALL["ststnet"]
    trained = tmp_path / "folds_trained.h5"
    stage_function(STAGES["ststnet_folds"])(data / "flow.h5", data / "folds.csv", trained, classes=CLASSES, **params)
    for fold in range(3):
        together, one = tmp_path / "together" / f"fold{fold}", tmp_path / "alone" / f"fold{fold}"
        stage_function(STAGES["ststnet"])(data / "flow.h5", data / "folds.csv", fold, together, trained_h5=trained,
                                          classes=CLASSES, **params)
        stage_function(STAGES["ststnet"])(data / "flow.h5", data / "folds.csv", fold, one, classes=CLASSES, **params)
        a, b = pd.read_csv(together / "predictions.csv"), pd.read_csv(one / "predictions.csv")
        columns = [f"p_{c}" for c in CLASSES]
        assert a["clip_id"].tolist() == b["clip_id"].tolist() and len(a) == 6
        assert np.abs(a[columns].to_numpy() - b[columns].to_numpy()).max() < 1e-4
        metrics = json.loads((together / "metrics.json").read_text())
        assert metrics["n_train_clips"] == len(rows) - 6 and "every fold" in metrics["trained"]
        assert metrics["accuracy"] == json.loads((one / "metrics.json").read_text())["accuracy"]


def test_flow_networks_run_per_fold_into_table2_and_the_report(flow_run):
    root, data, rows = flow_run
    metrics_paths, prediction_paths = [], []
    for method, params in SMALL.items():
        accuracies = []
        for fold in range(3):
            out = root / "results" / "tiny" / "kfold3" / method / "seed0" / f"fold{fold}"
            stage_function(STAGES[method])(data / "flow.h5", data / "folds.csv", fold, out, classes=CLASSES, **params)
            metrics = json.loads((out / "metrics.json").read_text())
            predictions = pd.read_csv(out / "predictions.csv")
            assert metrics["method"] == method and metrics["n_test"] == len(predictions) == 6
            assert metrics["n_train_clips"] == len(rows) - 6
            assert metrics["provenance"]["stage"] == method
            assert np.allclose(predictions[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0)
            accuracies.append(metrics["accuracy"])
            metrics_paths.append(out / "metrics.json")
            prediction_paths.append(out / "predictions.csv")
        assert np.mean(accuracies) > 0.5, (method, accuracies)            # chance is 1/3
    # The same params give the same predictions (seeded, fixed schedule).
    again = root / "again"
    stage_function(STAGES["ststnet"])(data / "flow.h5", data / "folds.csv", 0, again, classes=CLASSES,
                                      **SMALL["ststnet"])
    first = root / "results" / "tiny" / "kfold3" / "ststnet" / "seed0" / "fold0" / "predictions.csv"
    assert (again / "predictions.csv").read_text() == first.read_text()

    datasets = {"tiny": {"layout": "casme2", "synthetic": True}}
    aggregate_stage(metrics_paths, root / "results" / "table2.csv", datasets=datasets)
    table = pd.read_csv(root / "results" / "table2.csv")
    assert list(table["method_name"]) == ["OFF-ApexNet", "STSTNet"]      # Table 2's row order
    assert (table["folds"] == 3).all() and table["published_uf1"].isna().all()   # not a MEGC 2019 composite

    (data / "align_qc").mkdir()
    (data / "magnify_qc").mkdir()
    cwd = os.getcwd()
    os.chdir(root)
    try:
        report_stage("results/table2.csv", [os.path.relpath(p, root) for p in metrics_paths],
                     [os.path.relpath(p, root) for p in prediction_paths], ["data/tiny/align_qc"],
                     ["data/tiny/magnify_qc"], "results/report.html", flow_qc_dirs=["data/tiny/flow_qc"],
                     apex_paths=["data/tiny/apex_spotting.csv"], figures_dir="results/figures")
    finally:
        os.chdir(cwd)
    page = (root / "results" / "report.html").read_text()
    assert "Onset → apex optical flow" in page and "Apex spotting" in page
    assert "Published on MEGC 2019" not in page          # only beside a MEGC 2019 composite of real data
    assert sorted(p.name for p in (root / "results" / "figures" / "flow_qc").glob("*.png"))
    assert (root / "results" / "figures" / "apex" / "apex_error.png").is_file()


def test_published_megc2019_numbers_sit_beside_a_composites_rows():
    assert MEGC2019_PUBLISHED["lbptop"]["full"] == {"uf1": 0.5882, "uar": 0.5785}
    assert MEGC2019_PUBLISHED["off_apexnet"]["full"] == {"uf1": 0.7196, "uar": 0.7096}
    assert MEGC2019_PUBLISHED["ststnet"]["full"] == {"uf1": 0.7353, "uar": 0.7605}
    confusion = [[5, 1, 0], [1, 4, 1], [0, 1, 3]]
    folds = pd.DataFrame([{"dataset": "megc", "protocol": "loso", "method": "ststnet", "seed": 0, "fold": f,
                           "accuracy": 0.7, "uf1": 0.7, "uar": 0.7, "n_test": 16, "confusion": confusion,
                           "by_source": {"casme2": confusion}, "by_subject": {f"casme2-s{f}": confusion},
                           "subject_sources": {f"casme2-s{f}": "casme2"}} for f in range(2)])
    real = {"layout": "composite", "composite": "megc2019", "data": "real",
            "source_entries": {"casme2": {"layout": "casme2", "data": "real"}}}
    table = table2(folds, {"megc": real}, protocols=["loso"])
    full = table[table["dataset"] == "megc"].iloc[0]
    source = table[table["dataset"] == "megc/casme2"].iloc[0]
    assert (full["published_uf1"], full["published_uar"]) == (0.7353, 0.7605)
    assert (source["published_uf1"], source["published_uar"]) == (0.8382, 0.8686)


def test_flow_params_are_validated_and_passed_to_the_stages(tmp_path):
    params = load_params("params.yaml")
    assert stage_params(params, "flow")["sizes"] == [28]
    assert stage_params(params, "ststnet", ds="casme2")["classes"] == params["mappings"]["paper4"]["classes"]
    assert params["ststnet"]["epochs"] == 500 and params["ststnet"]["lr"] == 0.00005
    overlay = tmp_path / "flow.yaml"
    overlay.write_text("methods: [ststnet]\nststnet: {input_size: 32}\n")
    with pytest.raises(ParamsError, match="ststnet.input_size"):
        load_params("params.yaml", overlay)


def test_flow_store_is_the_same_for_the_same_params(flow_run, tmp_path):
    _, data, _ = flow_run
    stage_function(STAGES["flow"])(data / "aligned.h5", tmp_path / "flow.h5", tmp_path / "qc", tmp_path / "apex.csv",
                                   **FLOW_PARAMS)
    assert (tmp_path / "flow.h5").read_bytes() == (data / "flow.h5").read_bytes()
    assert (tmp_path / "apex.csv").read_text() == (data / "apex_spotting.csv").read_text()
    with h5py.File(tmp_path / "flow.h5") as h5:
        assert h5["clips"]["sub00_negative_0"].attrs["apex_source"] == "sheet"
