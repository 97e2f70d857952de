"""MDMD spotting (pipeline/spotting/mdmd.py) on tiny synthetic videos and hand-made flows and curves."""

from __future__ import annotations

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.spotting.mdmd import (
    SPOT_COLUMNS,
    block_mdmd,
    direction_bins,
    frame_mdmd,
    mdmd_curve,
    mdmd_curve_stream,
    relative_difference,
    spot_peaks,
)

SIZE = 48        # 6 x 6 blocks of 8 x 8 pixels
MOVE = range(20, 24)   # frames whose patch is shifted


def texture(seed: int = 0) -> np.ndarray:
    """Smooth random texture: optical flow can follow it."""
    noise = (np.random.default_rng(seed).random((SIZE, SIZE)) * 255).astype(np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.5)


def moving_patch_video(length: int = 44) -> np.ndarray:
    """A still face whose patch rows/cols 16:32 (blocks 2-3 x 2-3) moves 2 px right for frames MOVE, then returns."""
    base = texture()
    moved = base.copy()
    moved[16:32, 16:32] = base[16:32, 14:30]
    return np.stack([moved if t in MOVE else base for t in range(length)])


def test_still_video_gives_flat_zero_curve_with_nan_ends():
    frames = np.stack([texture()] * 20)
    curve = mdmd_curve(frames, 3)
    assert curve.shape == (20,)
    assert np.isnan(curve[:3]).all() and np.isnan(curve[-3:]).all()
    assert np.isfinite(curve[3:-3]).all()
    assert np.abs(curve[3:-3]).max() < 1e-3
    assert spot_peaks(relative_difference(curve, 3), k=3, p=0.1, fps=30).empty


def test_short_video_is_all_nan():
    curve = mdmd_curve(np.stack([texture()] * 6), 3)
    assert curve.shape == (6,) and np.isnan(curve).all()
    assert spot_peaks(curve, k=3, p=0.1, fps=30).empty


@pytest.mark.parametrize("flow", ["dis", "tvl1"])
def test_moving_patch_peaks_where_it_moves_and_is_spotted(flow):
    k = 4
    curve = mdmd_curve(moving_patch_video(), k, flow=flow)
    assert np.isnan(curve[:k]).all() and np.isnan(curve[-k:]).all()
    # the current frame is moved while head and tail are still only for frames in MOVE
    assert set(np.flatnonzero(curve > 0.5 * np.nanmax(curve))) == set(MOVE)
    assert np.nanmax(curve) > 0.2
    relative = relative_difference(curve, k)
    assert int(np.nanargmax(relative)) in MOVE
    table = spot_peaks(relative, k=k, p=0.1, fps=30)
    assert len(table) == 1
    row = table.iloc[0]
    assert row.onset <= 21 and row.offset >= 22 and row.onset >= 16 and row.offset <= 27
    assert row.type == "micro"


def test_stream_equals_in_memory():
    frames = moving_patch_video(30)
    in_memory = mdmd_curve(frames, 3)
    streamed = mdmd_curve_stream(iter(list(frames)), 3)
    np.testing.assert_array_equal(in_memory, streamed)
    assert np.isnan(mdmd_curve_stream(iter(list(frames[:5])), 3)).all()


def test_stream_reads_lazily_and_pairs_head_current_and_tail():
    k = 3
    frames = np.zeros((30, SIZE, SIZE), dtype=np.uint8)
    frames[:, 0, 0] = np.arange(30)         # each frame carries its number
    yielded = []
    pairs = []

    def stream():
        for frame in frames:
            yielded.append(int(frame[0, 0]))
            yield frame

    def flow(head: np.ndarray, other: np.ndarray) -> np.ndarray:
        pairs.append((int(head[0, 0]), int(other[0, 0]), len(yielded)))
        return np.zeros((*head.shape, 2), dtype=np.float32)

    curve = mdmd_curve_stream(stream(), k, flow=flow)
    assert curve.shape == (30,) and np.isnan(curve[:k]).all() and np.isnan(curve[-k:]).all()
    assert (curve[k:-k] == 0).all()
    # the first value is computed once 2k + 1 frames have been read, not after the whole video
    assert pairs[0] == (0, k, 2 * k + 1) and pairs[1] == (0, 2 * k, 2 * k + 1)
    assert [(head, other) for head, other, _ in pairs] == [
        (i - k, i + shift) for i in range(k, 30 - k) for shift in (0, k)]


def test_sector_directions_quadrants_in_image_coordinates():
    flow = np.array([[[1, 1], [-1, 1], [-1, -1], [1, -1], [0, 0], [1, 0]]], dtype=np.float32)
    assert direction_bins(flow).tolist() == [[0, 1, 2, 3, -1, 0]]
    # the baseline code's atan(u / v) bins merge opposite quadrants
    assert direction_bins(flow, direction_rule="megc2020_code").tolist() == [[0, 3, 0, 3, -1, 1]]


def test_main_direction_is_the_quadrant_with_most_vectors():
    # one 10 x 10 block: 40 vectors right-down of length sqrt(2), 30 left-up of length 5, 30 right-up of length 4.2
    current = np.zeros((10, 10, 2), dtype=np.float32)
    flat = current.reshape(-1, 2)
    flat[:40] = (1, 1)
    flat[40:70] = (-3, -4)
    flat[70:] = (3, -3)
    tail = np.zeros_like(current)
    # main quadrant right-down (40 vectors), not the longer left-up ones
    assert block_mdmd(current, tail, 1)[0, 0] == pytest.approx(np.sqrt(2))
    # the baseline code's rule merges right-down and left-up (70 vectors): top third are the 5s
    assert block_mdmd(current, tail, 1, direction_rule="megc2020_code")[0, 0] == pytest.approx(5.0)


def test_block_value_is_mean_of_largest_third_of_per_pixel_differences():
    current = np.zeros((3, 3, 2), dtype=np.float32)
    current[..., 0] = np.arange(1, 10).reshape(3, 3)        # all to the right, lengths 1..9
    tail = np.zeros_like(current)
    assert block_mdmd(current, tail, 1)[0, 0] == pytest.approx(8.0)      # mean of 9, 8, 7
    tail[..., 1] = 1.0                                                     # removes 1 from every length
    assert block_mdmd(current, tail, 1)[0, 0] == pytest.approx(7.0)
    tail[..., 1] = 20.0                                                    # returning further: negative, kept
    assert block_mdmd(current, tail, 1)[0, 0] < 0


def test_blocks_are_independent_and_still_blocks_are_zero():
    current = np.zeros((12, 12, 2), dtype=np.float32)
    current[4:8, 8:12] = (0, 2)     # block (1, 2) of 3 x 3 moves down
    values = block_mdmd(current, np.zeros_like(current), 3)
    expected = np.zeros((3, 3))
    expected[1, 2] = 2.0
    np.testing.assert_allclose(values, expected)
    assert frame_mdmd(values) == pytest.approx(2.0 / 3)      # mean of the 3 largest of 9
    with pytest.raises(ValueError):
        block_mdmd(current, np.zeros_like(current), 13)


def test_remainder_pixels_are_left_out():
    current = np.zeros((13, 13, 2), dtype=np.float32)
    current[12, :] = (5, 0)          # the 13th row is not in any of the 2 x 2 blocks of 6 x 6
    assert (block_mdmd(current, np.zeros_like(current), 2) == 0).all()


def test_frame_value_is_mean_of_top_third_of_blocks():
    values = np.arange(36, dtype=float).reshape(6, 6)
    assert frame_mdmd(values) == pytest.approx(np.arange(24, 36).mean())
    assert frame_mdmd(values, top_blocks=1 / 36) == 35.0


def test_relative_difference_and_its_nan_ends():
    curve = np.array([np.nan, 0, 0, 4, 0, 0, np.nan])
    relative = relative_difference(curve, 3)     # neighbours 2 frames away
    np.testing.assert_allclose(relative, [np.nan, np.nan, np.nan, 4, np.nan, np.nan, np.nan])
    with pytest.raises(ValueError):
        relative_difference(curve, 1)


def test_spot_peaks_threshold_distance_types_and_merging():
    curve = np.zeros(100)
    curve[10:13] = [2, 5, 2]        # 3 frames above: micro at 10 fps (0.5 s = 5 frames)
    curve[40:48] = [2, 3, 4, 6, 4, 3, 2, 2]   # 8 frames: macro
    curve[70:73] = [1, 1.5, 1]      # below the threshold at p = 0.25
    curve[0], curve[-1] = np.nan, np.nan
    table = spot_peaks(curve, k=3, p=0.25, fps=10)
    assert list(table.columns) == SPOT_COLUMNS
    mean = np.nanmean(curve)
    assert 1.5 < mean + 0.25 * (6 - mean) < 2      # so 2 counts as above, 1.5 does not
    assert table[["onset", "offset"]].values.tolist() == [[10, 12], [40, 47]]
    assert table["type"].tolist() == ["micro", "macro"]
    assert table["score"].tolist() == [5.0, 6.0]
    # peak windows of k = 3 frames either side: 7 frames, macro at 10 fps, micro at 30 fps
    windows = spot_peaks(curve, k=3, p=0.25, fps=10, interval="peak_window")
    assert windows[["onset", "offset"]].values.tolist() == [[8, 14], [40, 46]]
    assert windows["type"].tolist() == ["macro", "macro"]
    assert spot_peaks(curve, k=3, p=0.25, fps=30, interval="peak_window")["type"].tolist() == ["micro", "micro"]
    # dropping the short one
    assert spot_peaks(curve, k=3, p=0.25, fps=10, min_seconds=0.5)["onset"].tolist() == [40]


def test_spot_peaks_minimum_distance_and_overlap_merging():
    curve = np.zeros(60)
    curve[[20, 22, 26]] = [5, 4, 3]     # 22 within k = 4 of 20: dropped; 26 is 6 away: kept
    table = spot_peaks(curve, k=4, p=0.1, fps=100, interval="peak_window")
    # windows [16, 24] and [22, 30] share frames: one interval scored by the highest peak
    assert table[["onset", "offset"]].values.tolist() == [[16, 30]]
    assert table["score"].tolist() == [5.0]
    assert table["type"].tolist() == ["micro"]
    # the window of a peak at the edge is clipped to the curve
    edge = np.zeros(20)
    edge[1] = 3.0
    assert spot_peaks(edge, k=4, p=0.1, fps=100, interval="peak_window")[["onset", "offset"]].values.tolist() \
        == [[0, 5]]


def test_spot_peaks_without_peaks_gives_empty_table_with_columns():
    for curve in (np.zeros(30), np.full(30, np.nan), np.array([])):
        table = spot_peaks(curve, k=3, p=0.2, fps=30)
        assert isinstance(table, pd.DataFrame) and table.empty
        assert list(table.columns) == SPOT_COLUMNS
        assert table["onset"].dtype == np.int64 and table["score"].dtype == np.float64
    with pytest.raises(ValueError):
        spot_peaks(np.zeros(5), k=3, p=1.5, fps=30)


def test_frames_must_be_grey_uint8_of_one_shape():
    with pytest.raises(ValueError):
        mdmd_curve(np.zeros((10, SIZE, SIZE), dtype=np.float32), 2)
    with pytest.raises(ValueError):
        mdmd_curve_stream(iter([texture(), texture()[:40]]), 1)
