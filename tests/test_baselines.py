"""The hand-crafted baselines: LBP codes by hand and against scikit-image, the uniform mapping, block
histograms, LBP-SIP, Farneback flow on a known translation, MDMO's ROIs, and every baseline beating
chance on a small aligned store whose four classes move a blob in four directions."""

import json

import cv2
import numpy as np
import pandas as pd
import pytest
import torch
from skimage.feature import local_binary_pattern

from pipeline.aggregate import table2
from pipeline.artifacts import open_h5_for_write, write_clip
from pipeline.baselines import NEEDS_WEIGHTS, methods_not_run, methods_to_run
from pipeline.baselines.clips import iter_aligned_clips, resample_frames, scale_landmarks
from pipeline.baselines.frame_cnns import (
    VGG16,
    apex_frame_indices,
    clip_frames,
    cnn_fold_stage,
    conv_indices,
    pretrained_cnn_fold_stage,
    vgg16_from_scratch,
)
from pipeline.baselines.lbpsip import lbpsip_codes, lbpsip_features
from pipeline.baselines.lbptop import (
    block_histograms,
    compact_mapping,
    lbptop_codes,
    lbptop_features,
    n_uniform_bins,
    transitions,
    uniform_mapping,
)
from pipeline.baselines.mdmo import ROI_POLYGONS, main_directional_means, mdmo_from_means, onset_flows, roi_masks
from pipeline.baselines.tics import fit_colour_space, tics_components
from pipeline.errors import MerflowError
from pipeline.fold_results import fold_table
from pipeline.protocols import kfold_folds
from pipeline.runner import stage_function
from pipeline.selection import read_epochs, select_on_test_stage
from pipeline.stages import STAGES

# --- LBP codes -----------------------------------------------------------------------------------------

# A 3x3x3 volume around a centre of 5: right 7, up 3, left 5 (equal counts as >=), down 9, the frame
# before 1, the frame after 6. Everything else 0 (never read by 4-neighbour codes of the centre).
HAND = np.zeros((3, 3, 3))
HAND[1, 1, 1] = 5
HAND[1, 1, 2], HAND[1, 0, 1], HAND[1, 1, 0], HAND[1, 2, 1] = 7, 3, 5, 9
HAND[0, 1, 1], HAND[2, 1, 1] = 1, 6


def test_lbptop_codes_by_hand():
    codes = lbptop_codes(HAND, (4, 4, 4), (1, 1, 1))
    # XY: p0 right 7 -> 1, p1 up 3 -> 0, p2 left 5 -> 1, p3 down 9 -> 1: 1 + 4 + 8
    assert codes["xy"].shape == (1, 1, 1) and codes["xy"].item() == 13
    # XT (vertical axis t): p0 right 7 -> 1, p1 before 1 -> 0, p2 left 5 -> 1, p3 after 6 -> 1
    assert codes["xt"].item() == 13
    # YT (horizontal axis t): p0 after 6 -> 1, p1 up 3 -> 0, p2 before 1 -> 0, p3 down 9 -> 1
    assert codes["yt"].item() == 9


def test_diagonal_neighbour_is_bilinear():
    volume = np.zeros((3, 3, 3))
    volume[1, 1, 1], volume[1, 1, 2], volume[1, 0, 1], volume[1, 0, 2] = 10, 20, 4, 12
    f = np.round(np.sqrt(0.5), 5)
    up_right = (1 - f) ** 2 * 10 + f * (1 - f) * (20 + 4) + f * f * 12     # = 11.46: >= 10
    assert up_right >= 10
    assert lbptop_codes(volume, (8, 8, 8), (1, 1, 1))["xy"].item() & 0b10          # bit 1 is 45 degrees
    volume[1, 0, 2] = 0                                                              # now 7.9: < 10
    assert not lbptop_codes(volume, (8, 8, 8), (1, 1, 1))["xy"].item() & 0b10


def test_xy_codes_match_scikit_image_bit_for_bit():
    volume = np.random.default_rng(0).integers(0, 256, (5, 20, 16)).astype(np.uint8)
    codes = lbptop_codes(volume, (8, 8, 8), (1, 1, 1))
    reference = np.stack([local_binary_pattern(frame, 8, 1) for frame in volume])[1:-1, 1:-1, 1:-1]
    assert np.array_equal(codes["xy"], reference)
    # radius 2, 16 points (uint16 codes), on the same interior
    codes = lbptop_codes(volume, (16, 16, 16), (2, 2, 1))
    reference = np.stack([local_binary_pattern(frame, 16, 2) for frame in volume])[1:-1, 2:-2, 2:-2]
    assert np.array_equal(codes["xy"], reference)


def test_uniform_mapping():
    assert transitions(0b00001111, 8) == 2 and transitions(0b00000101, 8) == 4 and transitions(0, 8) == 0
    mapping = uniform_mapping(8)
    assert n_uniform_bins(8) == 59 and n_uniform_bins(4) == 15       # P(P-1) + 3
    assert mapping[0] == 0 and mapping[1] == 1 and mapping[0b11111111] == 57
    assert mapping[0b00000101] == 58 and mapping[0b01010101] == 58   # non-uniform: the shared last bin
    assert np.sum(mapping < 58) == 58 and len(np.unique(mapping[mapping < 58])) == 58
    for points in (4, 8, 16):                 # the one-byte table lbptop_features looks bins up in
        assert compact_mapping(points).dtype == np.uint8
        assert np.array_equal(compact_mapping(points), uniform_mapping(points))
    assert n_uniform_bins(16) == 243


def test_block_histograms_by_hand():
    bins = np.array([[[0, 1, 1, 2], [0, 0, 2, 2]]])                  # (T=1, H=2, W=4), 3 bins, 1x2x1 blocks
    histograms = block_histograms(bins, 3, (1, 2, 1))
    assert histograms.tolist() == [[0.75, 0.25, 0.0], [0.0, 0.25, 0.75]]


def test_lbptop_feature_length_and_speed_shape():
    volume = np.random.default_rng(1).integers(0, 256, (30, 64, 48)).astype(np.float32)
    feature = lbptop_features(volume, points=(8, 8, 8), radii=(1, 1, 4), blocks=(5, 5, 1))
    assert feature.shape == (25 * 3 * 59,)
    assert np.allclose(feature.reshape(25, 3, 59).sum(axis=2), 1.0)


def test_lbpsip_codes_by_hand():
    spatial, temporal = lbpsip_codes(HAND, 1, 1)
    assert spatial.item() == 1 + 4 + 8        # right, (not up), left, down
    assert temporal.item() == 2               # (not before), after
    feature = lbpsip_features(np.random.default_rng(2).random((10, 20, 20)), radius_xy=1, radius_t=2, blocks=(2, 2, 1))
    assert feature.shape == (4 * 20,) and np.allclose(feature.reshape(4, 20)[:, :16].sum(axis=1), 1.0)


# --- optical flow and MDMO ---------------------------------------------------------------------------------

def textured(height: int, width: int, seed: int) -> np.ndarray:
    """Smooth random texture, grey levels about 128 +- 30 (something for optical flow to follow)."""
    noise = cv2.GaussianBlur(np.random.default_rng(seed).random((height, width)).astype(np.float32), (0, 0), 2.0)
    return (noise - noise.mean()) / noise.std() * 30 + 128


def test_farneback_recovers_a_known_translation():
    image = textured(96, 128, 0)
    shift = (1.5, -1.0)                                   # dx, dy in pixels
    moved = cv2.warpAffine(image, np.float32([[1, 0, shift[0]], [0, 1, shift[1]]]), (128, 96),
                           flags=cv2.INTER_CUBIC, borderMode=cv2.BORDER_REFLECT)
    flow = onset_flows(np.stack([image, moved]), pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5,
                       poly_sigma=1.2)
    centre = flow[0, 20:-20, 20:-20].reshape(-1, 2)
    # flow maps the first frame's pixel to where it went: content moved by +shift
    assert np.median(centre, axis=0) == pytest.approx(shift, abs=0.15)


def face_landmarks(height: int, width: int) -> np.ndarray:
    """A crude but well-ordered 68-point face filling a height x width frame (iBUG numbering)."""
    cx, s = width / 2, width / 48
    angle = np.linspace(np.pi, 0, 17)
    jaw = np.c_[cx - 20 * s * np.cos(angle), 24 * s + 28 * s * np.sin(angle)]
    brow = lambda x0: np.c_[np.linspace(x0, x0 + 12 * s, 5), np.full(5, 14 * s)]  # noqa: E731
    nose = np.c_[np.full(4, cx), np.linspace(20 * s, 32 * s, 4)]
    nostrils = np.c_[np.linspace(cx - 4 * s, cx + 4 * s, 5), np.full(5, 35 * s)]
    eye = lambda x0: np.c_[x0 + s * np.array([0, 3, 6, 9, 6, 3]), 20 * s + s * np.array([0, -2, -2, 0, 2, 2])]  # noqa: E731
    mouth_angle = np.linspace(np.pi, -np.pi, 13)[:12]
    mouth = np.c_[cx - 9 * s * np.cos(mouth_angle), 42 * s - 4 * s * np.sin(mouth_angle)]
    inner_angle = np.linspace(np.pi, -np.pi, 9)[:8]
    inner = np.c_[cx - 6 * s * np.cos(inner_angle), 42 * s - 2 * s * np.sin(inner_angle)]
    points = np.vstack([jaw, brow(cx - 18 * s), brow(cx + 6 * s), nose, nostrils, eye(cx - 14 * s), eye(cx + 5 * s),
                        mouth, inner])
    assert points.shape == (68, 2)
    return points * [1, height / 64]


def test_mdmo_rois_cover_the_face_and_mirror():
    assert len(ROI_POLYGONS) == 36
    masks = roi_masks(face_landmarks(64, 48), 64, 48)
    assert all(len(m) > 0 for m in masks)
    left, right = masks[:16], masks[16:32]
    for a, b in zip(left, right, strict=True):       # mirrored ROIs have about the same area
        assert abs(len(a) - len(b)) <= max(3, 0.35 * max(len(a), len(b)))


def test_main_directional_mean_by_hand():
    # one ROI of 4 pixels over 1 frame
    flows = np.zeros((1, 2, 2, 2))
    flows[0, 0, 0], flows[0, 0, 1], flows[0, 1, 0], flows[0, 1, 1] = (1, 0), (2, 0.1), (3, -0.1), (-1, -1)
    means = main_directional_means(flows, [np.arange(4)], bins=8)
    # (3, -0.1) points just below 0 rad, so into the last sector (bin 7), and (-1, -1) into bin 5:
    # bin 0 wins with (1, 0) and (2, 0.1)
    assert means[0, 0] == pytest.approx([1.5, 0.05])
    feature = mdmo_from_means(np.array([[[0.0, 2.0], [1.0, 0.0]]]))      # 1 frame, 2 ROIs
    assert feature.tolist() == pytest.approx([1.0, 0.5, np.pi / 2, 0.0])


# --- every baseline on a store with an obvious signal ----------------------------------------------------

CLASSES = ["right", "up", "left", "down"]
DIRECTIONS = {"right": (1, 0), "up": (0, -1), "left": (-1, 0), "down": (0, 1)}


@pytest.fixture(scope="module")
def motion_store(tmp_path_factory):
    """aligned.h5 with 4 subjects x 4 classes x 2 clips (64x48, 12 frames): a textured face whose
    central patch drifts 3 px in its class's direction, and its folds file (5-fold, stratified)."""
    root = tmp_path_factory.mktemp("baselines")
    rng = np.random.default_rng(0)
    landmarks = face_landmarks(64, 48)
    rows = []
    with open_h5_for_write(root / "aligned.h5") as h5:
        for subject in range(4):
            face = textured(64, 48, 100 + subject)
            for label in CLASSES:
                for take in range(2):
                    dx, dy = DIRECTIONS[label]
                    frames = []
                    for t in range(12):
                        step = 3.0 * t / 11
                        moved = cv2.warpAffine(face, np.float32([[1, 0, dx * step], [0, 1, dy * step]]), (48, 64),
                                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT)
                        frame = face.copy()
                        frame[16:48, 12:36] = moved[16:48, 12:36]          # only the centre moves
                        frame += rng.normal(0, 1.0, frame.shape)
                        frames.append(np.clip(frame, 0, 255))
                    grey = np.stack(frames).astype(np.uint8)
                    colour = np.stack([grey, (grey * 0.8).astype(np.uint8), (grey * 0.6).astype(np.uint8)], axis=-1)
                    clip_id = f"sub{subject:02d}_{label}_{take}"
                    write_clip(h5, clip_id, colour, {"subject": f"sub{subject:02d}", "label": label},
                               landmarks=landmarks.astype(np.float32))
                    rows.append({"clip_id": clip_id, "subject": f"sub{subject:02d}", "label": label})
    folds = kfold_folds(pd.DataFrame(rows), k=4, seed=0)
    folds.to_csv(root / "folds.csv", index=False)
    return root


SMALL = {
    "lbptop": dict(height=32, width=24, frames=10, points=[8, 8, 8], radii=[1, 1, 2], blocks=[2, 2, 1]),
    "lbpsip": dict(height=32, width=24, frames=10, radius_xy=1, radius_t=2, blocks=[2, 2, 1]),
    "tics": dict(height=32, width=24, frames=10, points=[4, 4, 4], radii=[1, 1, 2], blocks=[2, 2, 1],
                 pixels_per_clip=200),
    "mdmo": dict(height=64, width=48, bins=8, pyr_scale=0.5, levels=2, winsize=9, iterations=3, poly_n=5,
                 poly_sigma=1.1),
}


@pytest.mark.parametrize("method", list(SMALL))
def test_each_baseline_beats_chance_on_an_obvious_signal(motion_store, tmp_path, method):
    accuracies = []
    for fold in range(2):
        out = tmp_path / f"fold{fold}"
        stage_function(STAGES[method])(motion_store / "aligned.h5", motion_store / "folds.csv", fold, out,
                                    classes=CLASSES, svm_c=1.0, svm_seed=0, **SMALL[method])
        metrics = json.loads((out / "metrics.json").read_text())
        predictions = pd.read_csv(out / "predictions.csv")
        assert metrics["n_test"] == len(predictions) == 8 and metrics["method"] == method
        assert list(predictions.columns) == ["clip_id", "subject", "true", "predicted", *[f"p_{c}" for c in CLASSES]]
        assert np.allclose(predictions[[f"p_{c}" for c in CLASSES]].sum(axis=1), 1.0)
        assert metrics["provenance"]["stage"] == method
        accuracies.append(metrics["accuracy"])
    assert np.mean(accuracies) >= 0.5, accuracies           # chance is 0.25


def test_tics_colour_space_makes_components_independent():
    rng = np.random.default_rng(0)
    sources = np.c_[rng.laplace(size=4000), rng.uniform(-1, 1, 4000), rng.exponential(size=4000)]
    mixing = np.array([[1.0, 0.5, 0.2], [0.3, 1.0, 0.4], [0.2, 0.1, 1.0]])
    pixels = sources @ mixing.T * 40 + 120
    unmixing, mean = fit_colour_space(pixels, seed=0)
    components = tics_components(pixels.reshape(1, 1, -1, 3), unmixing, mean).reshape(3, -1)
    correlation = np.abs(np.corrcoef(np.vstack([components, sources.T]))[:3, 3:])
    assert np.all(correlation.max(axis=1) > 0.95)         # each component is one source, up to sign and scale


def test_clip_helpers():
    frames = np.arange(5, dtype=np.float32).reshape(5, 1, 1) * 10
    assert resample_frames(frames, 9).ravel().tolist() == pytest.approx(np.arange(9) * 5)
    assert scale_landmarks(np.array([[-0.5, -0.5], [191.5, 255.5]]), (256, 192), (128, 96)).tolist() == \
        [[-0.5, -0.5], [95.5, 127.5]]


def test_a_store_without_landmarks_is_a_clear_error(tmp_path):
    with open_h5_for_write(tmp_path / "magnified.h5") as h5:
        write_clip(h5, "sub01_a", np.zeros((3, 8, 8, 3), np.uint8), {"subject": "sub01", "label": "up"})
    with pytest.raises(MerflowError, match="sub01_a.*landmarks"):
        list(iter_aligned_clips(tmp_path / "magnified.h5"))


# --- the pre-trained CNN ------------------------------------------------------------------------------------

def test_pretrained_cnn_without_weights_is_reported_not_run(tmp_path):
    params = {"methods": ["rcnn", "lbptop", "pretrained_cnn"], "pretrained_cnn": {"weights": None}}
    assert methods_to_run(params) == ["rcnn", "lbptop"]
    assert methods_not_run(params) == {"pretrained_cnn": NEEDS_WEIGHTS}
    metrics = []
    for fold in range(2):
        path = tmp_path / "results" / "casme2" / "kfold5" / "rcnn" / "seed0" / f"fold{fold}" / "metrics.json"
        path.parent.mkdir(parents=True)
        scores = {"accuracy": 0.5, "uf1": 0.5, "uar": 0.5, "n_test": 2, "confusion": [[1, 1], [0, 0]],
                  "by_subject": {"s1": [[1, 1], [0, 0]]}}
        path.write_text(json.dumps(scores))
        metrics.append(path)
    table = table2(fold_table(metrics), {"casme2": {"layout": "casme2", "synthetic": True}}, methods_not_run(params),
                   ["kfold5"])
    row = table.set_index("method").loc["pretrained_cnn"]
    assert row["note"].startswith("not run: needs pre-trained weights") and row["folds"] == 0
    assert pd.isna(row["accuracy"]) and pd.isna(row["paper_accuracy"])          # synthetic data
    assert "paper_accuracy 0.304" in row["note"]
    assert table.set_index("method").loc["rcnn", "folds"] == 2


def test_pretrained_cnn_takes_the_frames_nearest_the_apex():
    # (onset, apex, offset, n): indices from the onset, apex first, then -1, +1, -2, +2, ...
    assert apex_frame_indices(10, 15, 30, 5) == [5, 4, 6, 3, 7]
    assert apex_frame_indices(10, 15, 30, 1) == [5]
    assert apex_frame_indices(0, 20, 20, 5) == [20, 19, 18, 17, 16]        # apex at the last frame
    assert apex_frame_indices(0, 0, 20, 4) == [0, 1, 2, 3]                 # apex at the onset
    assert apex_frame_indices(5, 6, 7, 5) == [1, 0, 2]                     # a 3-frame clip: each frame once
    assert apex_frame_indices(5, 7, 7, 2) == [2, 1]
    assert apex_frame_indices(0, 40, 20, 2) == [20, 19]                    # an apex past the offset is clamped
    frames = np.zeros((12, 8, 8, 3), np.uint8)
    frames[7] = 255                                                        # only the apex is bright
    inputs = clip_frames(frames, 3, 8, apex=7)
    assert inputs.shape == (3, 3, 8, 8) and inputs[0].min() > inputs[1].max()


def test_aligned_clips_carry_the_stored_apex(tmp_path):
    frames = np.zeros((6, 8, 8, 3), np.uint8)
    with open_h5_for_write(tmp_path / "aligned.h5") as h5:      # align_stage's attrs: frame numbers of the dataset
        write_clip(h5, "a", frames, {"subject": "s", "label": "x", "onset": 100, "apex": 104, "fps": 200.0,
                                     "apex_source": "sheet"}, landmarks=np.zeros((68, 2), np.float32))
        write_clip(h5, "b", frames, {"subject": "s", "label": "x"}, landmarks=np.zeros((68, 2), np.float32))
    a, b = iter_aligned_clips(tmp_path / "aligned.h5")
    assert (a.apex, a.fps, b.apex) == (4, 200.0, None)


def test_pretrained_cnn_fine_tunes_a_user_supplied_vgg16(motion_store, tmp_path):
    torch.manual_seed(0)
    tiny = VGG16([4] * 13, [16, 16], n_classes=7)         # VGG-16's layout at toy widths, as a user file
    torch.save(tiny.state_dict(), tmp_path / "vgg.pt")
    out = tmp_path / "fold0"
    pretrained_cnn_fold_stage(motion_store / "aligned.h5", motion_store / "folds.csv", 0, out, classes=CLASSES,
                              weights=str(tmp_path / "vgg.pt"), input_size=32, frames_per_clip=2, epochs=1, lr=0.01,
                              batch_size=8, momentum=0.9, weight_decay=0.0, seed=0, threads=1)
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["n_test"] == 8 and metrics["n_train_samples"] == 48 and 0 <= metrics["accuracy"] <= 1
    assert len(conv_indices()) == 13
    torch.save({"features.0.weight": torch.zeros(4, 3, 3, 3)}, tmp_path / "other.pt")
    with pytest.raises(MerflowError, match="not a VGG-16 state_dict"):
        pretrained_cnn_fold_stage(motion_store / "aligned.h5", motion_store / "folds.csv", 0, out, classes=CLASSES,
                                  weights=str(tmp_path / "other.pt"), input_size=32, frames_per_clip=2, epochs=1,
                                  lr=0.01, batch_size=8, momentum=0.9, weight_decay=0.0, seed=0, threads=1)


def test_the_cnn_row_is_vgg16_trained_from_scratch_on_single_frames(motion_store, tmp_path):
    """The paper's "CNNs" row: VGG-Face's architecture (VGG-16: 13 convs, fc 4096, 4096) from scratch. Its
    parameter count for 4 classes is torchvision's VGG-16 with a 4-way last layer (138,357,544 for 1000).
    With `test` among the selections it records every epoch's test predictions (pipeline/selection.py)."""
    model = vgg16_from_scratch(n_classes=4, seed=0)
    convs = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d)]
    assert [c.out_channels for c in convs] == [64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512]
    assert all(c.kernel_size == (3, 3) for c in convs)
    assert sum(p.numel() for p in model.parameters()) == 138_357_544 - 4096 * 996 - 996
    assert model.eval()(torch.zeros(1, 3, 224, 224)).shape == (1, 4)
    del model
    # two epochs with test among the selections: the test clips are scored after each (the last epoch's are
    # the predictions), and the audit row's epoch scores at least as well on accuracy
    out = tmp_path / "fold0"
    cnn_fold_stage(motion_store / "aligned.h5", motion_store / "folds.csv", 0, out, classes=CLASSES, input_size=32,
                   frames_per_clip=2, epochs=2, lr=0.001, batch_size=16, momentum=0.9, weight_decay=0.0, seed=0,
                   threads=2, selections=["last", "test"])
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["method"] == "cnn" and metrics["provenance"]["stage"] == "cnn"
    assert metrics["n_test"] == 8 and metrics["n_train_samples"] == 48 and 0 <= metrics["accuracy"] <= 1
    assert "weights" not in metrics["provenance"]["inputs"]
    assert metrics["selection"] == "last" and metrics["selected_epoch"] == 2
    _, by_epoch, attrs = read_epochs(out / "epochs.h5")
    assert by_epoch.shape == (2, 8, len(CLASSES)) and attrs["every_epoch"]
    predictions = pd.read_csv(out / "predictions.csv")
    assert np.allclose(predictions[[f"p_{c}" for c in CLASSES]], by_epoch[-1], atol=1e-6)
    select_on_test_stage(out / "epochs.h5", tmp_path / "test", 0, classes=CLASSES, metric="accuracy", ties="earliest")
    test = json.loads((tmp_path / "test" / "metrics.json").read_text())
    assert test["accuracy"] >= metrics["accuracy"] and test["ties"] == "earliest"


def test_table2_rows_follow_the_papers_layout(tmp_path):
    metrics = []
    for ds in ("smic", "casme2"):
        for method in ("rcnn", "lbptop", "cnn", "mdmo"):
            path = tmp_path / "results" / ds / "kfold5" / method / "seed0" / "fold0" / "metrics.json"
            path.parent.mkdir(parents=True)
            path.write_text(json.dumps({"accuracy": 0.5, "uf1": 0.5, "uar": 0.5, "n_test": 2,
                                        "confusion": [[1, 1], [0, 0]]}))
            metrics.append(path)
    datasets = {"casme2": {"layout": "casme2", "synthetic": True}, "smic": {"layout": "smic", "synthetic": True}}
    table = table2(fold_table(metrics), datasets, {"pretrained_cnn": NEEDS_WEIGHTS}, ["kfold5"])
    order = ["lbptop", "mdmo", "pretrained_cnn", "cnn", "rcnn"]         # Table 2's rows, top to bottom
    rows = list(zip(table["dataset"], table["method"], strict=True))
    assert rows == [(ds, method) for ds in ("casme2", "smic") for method in order]
