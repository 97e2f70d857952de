"""The SOFTNet spotter (pipeline/spotting/softnet.py, softnet_features.py) on tiny synthetic aligned caches, hand-made
intervals and curves, and tiny training problems."""

from __future__ import annotations

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch

from pipeline.spotting.mdmd import flow_function
from pipeline.spotting.softnet import (
    ConcatenatedRows,
    SoftNet,
    SoftNetSpotter,
    SoftNetVideo,
    balanced_rows,
    batch_inputs,
    loso_curves,
    normalise_inputs,
    parameter_count,
    smooth_curve,
    softnet_intervals,
    softnet_spot_videos,
    spot_from_curve,
    train_softnet,
)
from pipeline.spotting.softnet_features import (
    input_positions,
    pseudo_labels,
    region_input,
    softnet_inputs,
    softnet_regions,
)

torch.set_num_threads(1)
SIZE = 128


def texture(seed: int = 0) -> np.ndarray:
    """A smooth random float texture larger than the face, for sub-pixel shifts without borders."""
    noise = np.random.default_rng(seed).uniform(0, 255, (SIZE + 32, SIZE + 32)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 2.0)
    return (smooth - smooth.min()) / (smooth.max() - smooth.min()) * 255


def face(dx: float = 0.0, dy: float = 0.0, mouth_stretch: float = 0.0, seed: int = 0) -> np.ndarray:
    """The texture's centre shifted by (dx, dy) pixels, its mouth region (around row 100) pulled sideways by up to
    `mouth_stretch` pixels, as uint8 grey."""
    yy, xx = np.mgrid[:SIZE, :SIZE].astype(np.float32)
    pull = mouth_stretch * np.exp(-(((xx - 63.5) / 14) ** 2 + ((yy - 100) / 10) ** 2))
    image = cv2.remap(texture(seed), xx + 16 - dx - pull, yy + 16 - dy, cv2.INTER_LINEAR)
    return np.clip(np.rint(image), 0, 255).astype(np.uint8)


def cache(h5: h5py.File, name: str, frames: list[np.ndarray], has_face: np.ndarray | None = None,
          fps: float = 30.0) -> h5py.Group:
    """An aligned-cache group as spot.write_aligned_video writes it."""
    group = h5.create_group(name)
    group["frames"] = np.stack(frames)
    group["number"] = np.arange(1, len(frames) + 1)
    group["has_face"] = np.ones(len(frames), bool) if has_face is None else has_face
    group.attrs["fps"] = fps
    return group


# --- inputs -----------------------------------------------------------------------------------------------------

def test_regions_sit_at_the_documented_template_positions():
    regions = softnet_regions()
    assert regions.eye_band == (13, 57, 5, 122)
    assert regions.mouth == (83, 123, 33, 94)
    assert regions.nose == (47, 58, 59, 70)
    rows, cols = np.nonzero(regions.eye_mask)
    # Both eyes (row 43, columns 38 and 89) are masked, the nose bridge between them and the brows are not.
    assert regions.eye_mask[43, 38] and regions.eye_mask[43, 89] and not regions.eye_mask[43, 63]
    assert rows.min() > regions.eye_band[0] and not regions.eye_mask[regions.mouth[0]:].any()
    assert abs((cols < 64).sum() - (cols >= 64).sum()) < 0.05 * len(cols)


def test_inputs_shape_positions_and_a_still_face_gives_zero(tmp_path):
    has_face = np.ones(20, bool)
    has_face[10] = False                        # runs 0-9 and 11-19
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        group = cache(h5, "v", [face()] * 20, has_face)
        inputs, positions = softnet_inputs(group, 3)
    np.testing.assert_array_equal(positions, [0, 1, 2, 3, 4, 5, 6, 11, 12, 13, 14, 15, 16])
    assert inputs.shape == (13, 3, 42, 42) and inputs.dtype == np.float32
    assert np.abs(inputs).max() < 1e-3
    np.testing.assert_array_equal(input_positions(np.array([True, True, False]), 2), [])


def test_nose_subtraction_removes_a_whole_face_shift(tmp_path):
    frames = [face(0.5 * t, 0.25 * t) for t in range(8)]
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        inputs, _ = softnet_inputs(cache(h5, "v", frames), 2)
    raw = flow_function("dis")(frames[0], frames[2])
    np.testing.assert_allclose(raw[16:-16, 16:-16].mean(axis=(0, 1)), [1.0, 0.5], atol=0.05)   # the shift is seen
    assert np.abs(inputs[:, :2]).mean() < 0.03                                   # and removed
    assert np.abs(inputs[:, 2]).max() < 0.02                                     # a shift has no strain


def test_a_mouth_movement_shows_in_the_mouth_half_only():
    flow = flow_function("dis")(face(), face(mouth_stretch=1.5))
    values = region_input(flow, softnet_regions())
    assert values.shape == (3, 42, 42)
    eyes, mouth = np.abs(values[:, :21]).mean(), np.abs(values[:, 21:]).mean()
    assert mouth > 0.05 and eyes < 0.01 * mouth
    assert values[0, 21:].mean() > values[1, 21:].mean()                         # pulled sideways: mostly u


def test_eye_regions_are_masked_to_zero():
    regions = softnet_regions()
    eyes = np.zeros((SIZE, SIZE, 2), np.float32)
    eyes[38:49, 30:47, 0] = 2.0                 # a blink-like movement inside the image-left eye, away from the nose
    assert np.abs(region_input(eyes, regions)).max() == 0.0
    brows = np.zeros((SIZE, SIZE, 2), np.float32)
    brows[15:25, 30:47, 0] = 2.0                # the same movement of the brow above it is kept
    values = region_input(brows, regions)
    assert values[0, :21].max() > 1.0 and values[0, 21:].max() == 0.0


def test_chunked_reading_gives_the_same_inputs(tmp_path):
    frames = [face(0.2 * t, mouth_stretch=0.3 * (t % 3)) for t in range(11)]
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        group = cache(h5, "v", frames)
        small, small_positions = softnet_inputs(group, 4, chunk_frames=2)
        large, large_positions = softnet_inputs(group, 4)
    np.testing.assert_array_equal(small_positions, large_positions)
    np.testing.assert_array_equal(small, large)


# --- pseudo-labels ----------------------------------------------------------------------------------------------

def test_pseudo_labels_on_a_hand_made_interval():
    numbers = np.arange(1, 21)
    labels = pseudo_labels(numbers, pd.DataFrame({"onset": [8], "offset": [10]}), 3)
    # Frames onset + 1 .. offset (9, 10) are the expression's; the window of position i is numbers i+1 .. i+3.
    expected = np.zeros(20, np.float32)
    expected[6:10] = 1                          # windows 7-9, 8-10, 9-11, 10-12
    np.testing.assert_array_equal(labels, expected)
    assert not pseudo_labels(numbers, pd.DataFrame({"onset": [8], "offset": [8]}), 3).any()
    assert not pseudo_labels(numbers, pd.DataFrame({"onset": [], "offset": []}), 3).any()


def softnet_loop_labels(length: int, intervals: list[tuple[int, int]], k: int) -> list[int]:
    """SOFTNet's training.py pseudo_labeling for one video, as written there (0-based onset - 1, offset - 1)."""
    labels = [0] * (length - k)
    for onset, offset in intervals:
        truth = np.arange(onset - 1 + 1, offset - 1 + 1)
        for index in range(len(labels)):
            window = np.arange(index, index + k)
            if labels[index] < len(np.intersect1d(window, truth)) / len(np.union1d(window, truth)):
                labels[index] = 1
    return labels


def test_pseudo_labels_match_softnet_code():
    rng = np.random.default_rng(3)
    for k in (1, 2, 5):
        intervals = [(int(a), int(a + rng.integers(0, 8))) for a in rng.integers(1, 50, 3)]
        labels = pseudo_labels(np.arange(1, 61), pd.DataFrame(intervals, columns=["onset", "offset"]), k)
        assert labels[:60 - k].tolist() == softnet_loop_labels(60, intervals, k)


# --- network and training ---------------------------------------------------------------------------------------

def test_network_output_shape_and_parameter_count():
    model = SoftNet()
    assert parameter_count(model) == 314_817     # convs 78 + 130 + 208, dense 784 x 400 + 400, output 401
    assert model(torch.zeros(5, 3, 42, 42)).shape == (5,)
    assert all(not layer.bias.detach().any() for layer in (model.hidden, model.output))


def test_normalise_inputs_scales_each_channel_and_zeroes_flat_ones():
    inputs = np.stack([np.full((42, 42), 3.0), np.arange(42 * 42).reshape(42, 42), np.zeros((42, 42))])[None]
    scaled = normalise_inputs(inputs)
    assert scaled[0, 0].max() == 0 and scaled[0, 2].max() == 0
    assert scaled[0, 1].min() == 0 and scaled[0, 1].max() == 1


def test_balancing_keeps_every_expression_and_half_the_majority():
    labels = np.array([0] * 30 + [1] * 6, np.float32)
    rows = balanced_rows(labels, np.random.default_rng(0))
    assert (labels[rows] == 1).sum() == 6 and (labels[rows] == 0).sum() == 15
    assert np.all(np.diff(rows) > 0)


def test_augmented_copies_are_flipped_blurred_and_noisy():
    rng = np.random.default_rng(0)
    inputs = rng.random((1, 3, 42, 42)).astype(np.float32)
    inputs[0, :, :, :21] += 1                          # brighter left half
    batch = batch_inputs(inputs, np.zeros(4, np.int64), np.arange(4), rng)
    plain, flipped, blurred, noisy = batch
    np.testing.assert_allclose(flipped, plain[..., ::-1], atol=1e-6)
    assert np.abs(np.diff(blurred, axis=-1)).mean() < np.abs(np.diff(plain, axis=-1)).mean() / 2
    assert 0 <= noisy.min() and noisy.max() <= 1 and 0.05 < np.abs(noisy - plain).mean() < 0.1


def separable_problem(n: int = 48, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Noise inputs; label 1 ones have a bright mouth corner in u."""
    rng = np.random.default_rng(seed)
    inputs = rng.random((n, 3, 42, 42)).astype(np.float32)
    labels = (np.arange(n) % 2).astype(np.float32)
    inputs[labels == 1, 0, 30:40, 2:12] += 3
    return inputs, labels


def test_training_lowers_the_loss_and_is_bit_identical_for_a_seed():
    inputs, labels = separable_problem()
    first = train_softnet(inputs, labels, epochs=8, batch_size=12, lr=0.02, seed=1, balance=False)
    again = train_softnet(inputs, labels, epochs=8, batch_size=12, lr=0.02, seed=1, balance=False)
    other = train_softnet(inputs, labels, epochs=1, batch_size=12, lr=0.02, seed=2, balance=False)
    assert first.epoch_losses[-1] < 0.5 * first.epoch_losses[0]
    assert first.epoch_losses == again.epoch_losses
    for (name, a), b in zip(first.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name
    assert not torch.equal(first.hidden.weight, other.hidden.weight)
    assert not first.training


# --- leave one subject out --------------------------------------------------------------------------------------

def loso_videos() -> tuple[list[SoftNetVideo], dict[str, np.ndarray]]:
    videos, labels = [], {}
    for n, subject in enumerate(["a", "b", "c"]):
        inputs, frame_labels = separable_problem(12, seed=n)
        positions = np.arange(12) + 2          # frames 0-1 and 14-15 have no input
        videos.append(SoftNetVideo(f"{subject}1", subject, inputs, positions, 16))
        labels[f"{subject}1"] = np.concatenate([[0, 0], frame_labels, [0, 0]]).astype(np.float32)
    return videos, labels


def test_loso_never_trains_on_the_test_subject():
    videos, labels = loso_videos()
    folds = []
    curves = loso_curves(videos, labels, epochs=1, lr=0.01, on_fold=lambda subject, ids: folds.append((subject, ids)))
    assert folds == [("a", ["b1", "c1"]), ("b", ["a1", "c1"]), ("c", ["a1", "b1"])]
    assert list(curves) == ["a1", "b1", "c1"]
    for curve in curves.values():
        assert curve.shape == (16,) and np.isnan(curve[[0, 1, 14, 15]]).all() and np.isfinite(curve[2:14]).all()
    # The left-out subject's own labels do not change its curve (training is deterministic), only the others' ...
    flipped = loso_curves(videos, dict(labels, c1=1 - labels["c1"]), epochs=1, lr=0.01)
    np.testing.assert_array_equal(flipped["c1"], curves["c1"])
    assert not np.array_equal(flipped["a1"][2:14], curves["a1"][2:14])
    # ... and NaN labels of subject c stop the first fold that would train on them, never fold c.
    with pytest.raises(ValueError, match="subject 'a'"):
        loso_curves(videos, dict(labels, c1=np.full(16, np.nan, np.float32)), epochs=1)


def test_concatenated_rows_read_the_indexed_rows_of_each_part():
    parts = [np.zeros((0, 3, 2, 2), np.float32), np.full((2, 3, 2, 2), 5, np.float32),
             np.arange(3, dtype=np.float32)[:, None, None, None] * np.ones((3, 3, 2, 2), np.float32)]
    rows = ConcatenatedRows(parts)
    assert len(rows) == 5
    np.testing.assert_array_equal(rows[np.array([4, 0, 2, 1])][:, 0, 0, 0], [2, 5, 0, 5])


def test_loso_rejects_duplicate_videos_and_a_single_subject():
    videos, labels = loso_videos()
    with pytest.raises(ValueError, match="unique"):
        loso_curves([videos[0], videos[0]], labels, epochs=1)
    with pytest.raises(ValueError, match="only one"):
        loso_curves(videos[:1], labels, epochs=1)


# --- spotting ---------------------------------------------------------------------------------------------------

def test_smoothing_is_the_mean_of_2k_samples_and_respects_gaps():
    curve = np.zeros(60)
    curve[20:26] = 1.0
    smoothed = smooth_curve(curve, 3)
    assert smoothed[23] == 1.0 and smoothed[22] == pytest.approx(5 / 6) and smoothed[24] == pytest.approx(5 / 6)
    assert np.isnan(smoothed[:3]).all() and np.isnan(smoothed[58:]).all() and np.isfinite(smoothed[3:58]).all()
    curve[40] = np.nan
    gap = np.isnan(smooth_curve(curve, 3))
    np.testing.assert_array_equal(np.flatnonzero(gap[3:58]) + 3, np.arange(38, 44))


def test_spot_from_curve_peak_window_threshold_and_type():
    curve = np.zeros(80)
    curve[20:26] = 1.0                      # smoothed peak 1.0 at 23
    curve[50:56] = 0.5                      # smoothed peak 0.5 at 53
    spotted = spot_from_curve(curve, k=3, p=0.55, fps=30)
    assert spotted[["onset", "offset", "type"]].values.tolist() == [[20, 26, "micro"]]
    assert spotted["score"].tolist() == [1.0]
    both = spot_from_curve(curve, k=3, p=0.3, fps=30)
    assert both[["onset", "offset"]].values.tolist() == [[20, 26], [50, 56]]
    # 2k + 1 = 19 frames at 30 fps is longer than 0.5 s: macro; 81 frames at 200 fps is not.
    assert spot_from_curve(curve, k=9, fps=30)["type"].tolist() == ["macro"]
    assert spot_from_curve(np.repeat(curve, 10), k=40, fps=200)["type"].unique().tolist() == ["micro"]


def test_spot_from_curve_keeps_peaks_k_apart_inside_the_video():
    rng = np.random.default_rng(0)
    curve = rng.random(200)
    spotted = spot_from_curve(curve, k=4, p=0.0, fps=30)
    peaks = spotted["onset"].to_numpy() + 4
    assert len(spotted) > 3 and np.all(np.diff(peaks) >= 4)
    assert spotted["onset"].min() >= 0 and spotted["offset"].max() <= 199
    # A curve still rising at the end has no peak there (the ends of the smoothed curve are never peaks).
    assert spot_from_curve(np.linspace(0, 1, 50), k=3, fps=30).empty
    assert spot_from_curve(np.full(30, np.nan), k=3, fps=30).empty


def test_spotter_k_from_seconds():
    spotter = SoftNetSpotter()
    assert (spotter.k("micro", 30), spotter.k("macro", 30)) == (6, 18)
    assert (spotter.k("micro", 200), spotter.k("macro", 200)) == (40, 120)


def test_intervals_use_frame_numbers_and_each_pass_keeps_its_type():
    curve = np.zeros(80)
    curve[20:26] = 1.0
    numbers = np.arange(101, 181)
    spotter = SoftNetSpotter(k_micro_seconds=0.1, k_macro_seconds=0.3)      # k 3 and 9 at 30 fps
    table = softnet_intervals("v", numbers, {"micro": curve, "macro": curve}, 30.0, spotter)
    assert table[["video", "onset", "offset", "type"]].values.tolist() == [
        ["v", 115, 133, "macro"], ["v", 121, 127, "micro"]]
    only_micro = SoftNetSpotter(k_micro_seconds=0.3, k_macro_seconds=0.3)   # a 19-frame interval is no micro
    assert softnet_intervals("v", numbers, {"micro": curve}, 30.0, only_micro).empty


def test_spotting_videos_end_to_end(tmp_path):
    folds = []
    with h5py.File(tmp_path / "a.h5", "w") as h5:
        videos = []
        for n, subject in enumerate(["a", "b", "c"]):
            frames = [face(seed=n, mouth_stretch=1.5 if 6 <= t <= 8 else 0.0) for t in range(16)]
            videos.append((f"{subject}1", subject, cache(h5, subject, frames, fps=10.0)))
        truth = pd.DataFrame({"video": ["a1", "b1", "c1"], "onset": [6, 6, 6], "offset": [9, 9, 9],
                              "type": ["micro"] * 3})
        spotter = SoftNetSpotter(epochs=1, k_micro_seconds=0.2, k_macro_seconds=0.6)
        result = softnet_spot_videos(videos, truth, spotter, on_fold=lambda s, ids: folds.append((s, ids)))
    assert [fold for fold in folds if any(i.startswith(fold[0]) for i in fold[1])] == []
    assert len(folds) == 6                             # 3 subjects x (micro, macro)
    assert set(result.curves) == {"micro", "macro"}
    micro = result.curves["micro"]["a1"]
    assert micro.shape == (16,) and np.isfinite(micro[:14]).all() and np.isnan(micro[14:]).all()
    assert np.isfinite(result.curves["macro"]["b1"][:10]).all() and np.isnan(result.curves["macro"]["b1"][10:]).all()
    assert list(result.intervals.columns) == ["video", "onset", "offset", "type", "score"]
