"""Central crop, temporal resampling weights, jitter_clip and the tensors stage (pipeline/jitter.py)."""

from __future__ import annotations

import json
import zlib

import h5py
import numpy as np
import pytest

from pipeline.artifacts import file_sha256, open_h5_for_write, read_provenance, write_clip
from pipeline.errors import BadInputError
from pipeline.jitter import (
    RESAMPLING_METHODS,
    central_pixel_indices,
    clip_rng,
    count_distinct_variants,
    jitter_clip,
    resample_weights,
    resize_frames,
    subtract_onset,
    tensors_stage,
)

METHODS = list(RESAMPLING_METHODS)
PAPER = {"keep_ratios": [1.0, 0.9, 0.8, 0.7, 0.6, 0.5], "kernels": METHODS, "frames_out": 30,
         "crop": 0.8, "pixels": 1966}
CLASSES = ["positive", "negative", "surprise", "others"]


def random_clip(n_frames: int, height: int = 64, width: int = 48, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n_frames, height, width, 3), dtype=np.uint8)


# --- central crop --------------------------------------------------------------------------------

def test_central_pixels_of_a_64x48_face_are_the_papers_1966():
    indices = central_pixel_indices(64, 48, crop=0.8, pixels=1966)
    assert indices.shape == (1966,) and np.all(np.diff(indices) > 0)  # distinct, raster order
    mask = np.zeros(64 * 48, bool)
    mask[indices] = True
    mask = mask.reshape(64, 48)
    rows, cols = np.nonzero(mask.any(axis=1))[0], np.nonzero(mask.any(axis=0))[0]
    # 80% of 64 rows = 51.2 and of 48 columns = 38.4: the box spans rows 6..57 and columns 5..42,
    # full but for the last ring's final 10 pixels (raster tie-break leaves them out of row 57).
    assert (rows.min(), rows.max(), cols.min(), cols.max()) == (6, 57, 5, 42)
    assert mask[6:57, 5:43].all()
    assert mask[57, 5:33].all() and not mask[57, 33:43].any()
    # nearest the centre: every kept pixel is at least as close (box distance) as every dropped one
    y, x = np.mgrid[0:64, 0:48]
    distance = np.maximum(np.abs(x - 23.5) / 48, np.abs(y - 31.5) / 64)
    assert distance[mask].max() <= distance[~mask].min()


def test_central_pixels_reject_a_count_that_does_not_match_the_crop():
    with pytest.raises(ValueError, match="1966"):
        central_pixel_indices(128, 96, crop=0.8, pixels=1966)  # would need 7864


# --- resampling weights --------------------------------------------------------------------------

@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("n_in", [2, 7, 23, 30, 45, 100])
def test_resample_weights_rows_sum_to_one(method, n_in):
    weights = resample_weights(n_in, 30, method)
    assert weights.shape == (30, n_in)
    np.testing.assert_allclose(weights.sum(axis=1), 1.0, atol=1e-12)


@pytest.mark.parametrize("method", METHODS)
def test_resample_weights_are_identity_when_lengths_match(method):
    np.testing.assert_allclose(resample_weights(30, 30, method), np.eye(30), atol=1e-12)


@pytest.mark.parametrize("method", ["bilinear", "triangle"])
def test_linear_upsampling_reproduces_a_ramp(method):
    ramp = 3.0 * np.arange(12) + 5.0
    out = resample_weights(12, 30, method) @ ramp
    # imresize's half-pixel mapping: output j sits at u = (j + 0.5) * 12 / 30 - 0.5, and the
    # boundary frames are replicated, so the ramp is evaluated at u clipped to 0..11.
    position = np.clip((np.arange(30) + 0.5) * 12 / 30 - 0.5, 0, 11)
    np.testing.assert_allclose(out, 3.0 * position + 5.0, atol=1e-12)


def test_nearest_picks_existing_frames():
    weights = resample_weights(45, 30, "nearest")
    assert set(np.unique(weights)) == {0.0, 1.0} and np.all(weights.sum(axis=1) == 1)
    # u = 1.5 j + 0.25, rounded: 0.25 -> 0, 1.75 -> 2, 3.25 -> 3, 4.75 -> 5, ...
    assert weights.argmax(axis=1)[:6].tolist() == [0, 2, 3, 5, 6, 8]
    assert resample_weights(15, 30, "nearest").argmax(axis=1).tolist() == np.repeat(np.arange(15), 2).tolist()


def test_antialiased_kernels_widen_when_downsampling_and_point_samplers_do_not():
    # 60 -> 30 frames: output 15 sits at u = 2 * 15 + 0.5 = 30.5, between input frames 30 and 31
    taps = {m: np.flatnonzero(resample_weights(60, 30, m)[15]).tolist() for m in METHODS}
    assert taps["nearest"] == [31] and taps["bilinear"] == [30, 31] and taps["bicubic"] == [29, 30, 31, 32]
    assert taps["box"] == [30, 31] and taps["triangle"] == [29, 30, 31, 32]  # support 1, 2 stretched x2
    np.testing.assert_allclose(resample_weights(60, 30, "triangle")[15, 29:33], [0.125, 0.375, 0.375, 0.125])


@pytest.mark.parametrize(("method", "pil_name"),
                         [("box", "BOX"), ("triangle", "BILINEAR"), ("cubic", "BICUBIC"), ("lanczos3", "LANCZOS")])
@pytest.mark.parametrize("n_in", [45, 23])
def test_kernel_methods_match_pillow_away_from_the_ends(method, pil_name, n_in):
    # Pillow's resize uses the same antialiased kernels and half-pixel mapping (a = -0.5 cubic);
    # only the boundary differs (Pillow renormalises, imresize replicates), so compare the middle.
    image = pytest.importorskip("PIL.Image")
    signal = np.random.default_rng(1).random(n_in).astype(np.float32)
    pil = np.asarray(image.fromarray(signal[:, None], mode="F")
                     .resize((1, 30), getattr(image.Resampling, pil_name)))[:, 0]
    ours = resample_weights(n_in, 30, method) @ signal
    np.testing.assert_allclose(ours[8:-8], pil[8:-8], atol=1e-6)


def test_unknown_method_lists_the_valid_names():
    with pytest.raises(ValueError, match="nearest, bilinear, bicubic, box, triangle, cubic, lanczos2, lanczos3"):
        resample_weights(10, 30, "spline")


# --- jitter_clip ---------------------------------------------------------------------------------

def test_jitter_clip_shape_and_eight_distinct_methods():
    variants = jitter_clip(random_clip(45), rng=clip_rng(0, "sub01/EP01"), **PAPER)
    assert variants.shape == (48, 3, 1966, 30) and variants.dtype == np.uint8
    # keep-ratio 1.0 downsamples 45 -> 30 frames: the 8 methods give 8 different tensors
    assert len({variants[k].tobytes() for k in range(8)}) == 8


def test_full_nearest_variant_of_a_30_frame_clip_is_the_cropped_clip():
    frames = random_clip(30, seed=3)
    variants = jitter_clip(frames, rng=clip_rng(0, "c"), **PAPER)
    cropped = frames.reshape(30, 64 * 48, 3)[:, central_pixel_indices(64, 48, 0.8, 1966)]
    np.testing.assert_array_equal(variants[0], cropped.transpose(2, 1, 0))  # (3, pixels, frames)
    # keep-ratio 0.5 keeps 15 of the 30 frames: nearest upsampling shows each kept frame twice
    half = variants[5 * 8]
    np.testing.assert_array_equal(half[..., 0::2], half[..., 1::2])
    kept = [np.flatnonzero((cropped.transpose(2, 1, 0) == half[..., [2 * i]]).all(axis=(0, 1)))
            for i in range(15)]
    assert all(len(k) == 1 for k in kept) and np.all(np.diff(np.concatenate(kept)) > 0)


def test_jitter_is_reproducible_per_clip_and_seed():
    frames = random_clip(40, seed=5)
    first = jitter_clip(frames, rng=clip_rng(7, "sub02/EP03"), **PAPER)
    np.testing.assert_array_equal(first, jitter_clip(frames, rng=clip_rng(7, "sub02/EP03"), **PAPER))
    other_seed = jitter_clip(frames, rng=clip_rng(8, "sub02/EP03"), **PAPER)
    assert np.array_equal(first[:8], other_seed[:8])  # keep-ratio 1.0 keeps every frame
    assert not np.array_equal(first[8:], other_seed[8:])


# --- tensors stage -------------------------------------------------------------------------------

TINY = {"height": 10, "width": 8, "crop": 0.8, "pixels": 51, "frames": 6, "keep_ratios": [1.0, 0.5],
        "kernels": ["nearest", "lanczos3"], "seed": 3, "classes": CLASSES}  # round(0.64 * 10 * 8) = 51 pixels


def write_store(path, clips: dict[str, tuple[int, str, str]]) -> dict[str, np.ndarray]:
    """A magnified.h5-like clip store of 10 x 8 frames: clip_id -> (n_frames, subject, label)."""
    frames = {}
    with open_h5_for_write(path) as h5:
        for clip_id, (n_frames, subject, label) in clips.items():
            frames[clip_id] = random_clip(n_frames, height=10, width=8, seed=zlib.crc32(clip_id.encode()))
            write_clip(h5, clip_id, frames[clip_id],
                       {"subject": subject, "emotion": label, "label": label, "label_index": CLASSES.index(label),
                        "onset": 0, "apex": n_frames // 2, "offset": n_frames - 1, "fps": 200.0})
    return frames


def test_tensors_stage_layout_values_and_provenance(tmp_path):
    clips = {"sub01_EP01": (12, "sub01", "positive"), "sub01_EP02": (9, "sub01", "others"),
             "sub02_EP01": (20, "sub02", "surprise")}
    frames = write_store(tmp_path / "magnified.h5", clips)
    out = tmp_path / "tensors.h5"
    tensors_stage(tmp_path / "magnified.h5", out, **TINY)

    with h5py.File(out, "r") as h5:
        x = h5["x"]
        assert x.shape == (3, 4, 3, 51, 6) and x.dtype == np.uint8 and x.chunks == (1, 4, 3, 51, 6)
        assert h5["clip_id"].asstr()[()].tolist() == list(clips)
        assert h5["subject"].asstr()[()].tolist() == ["sub01", "sub01", "sub02"]
        assert h5["label"].asstr()[()].tolist() == ["positive", "others", "surprise"]
        assert h5["label_index"].dtype == np.int64 and h5["label_index"][()].tolist() == [0, 3, 2]
        # 12 frames at keep-ratio 0.5 select 6 = frames: both kernels copy them, one tensor fewer
        assert h5["distinct_variants"].dtype == np.int64 and h5["distinct_variants"][()].tolist() == [3, 4, 4]
        assert h5["keep_ratio"][()].tolist() == [1.0, 1.0, 0.5, 0.5]
        assert h5["kernel"].asstr()[()].tolist() == ["nearest", "lanczos3", "nearest", "lanczos3"]
        assert json.loads(h5.attrs["classes"]) == CLASSES
        for n, clip_id in enumerate(clips):
            expected = jitter_clip(frames[clip_id], keep_ratios=[1.0, 0.5], kernels=["nearest", "lanczos3"],
                                   frames_out=6, crop=0.8, pixels=51, rng=clip_rng(3, clip_id))
            np.testing.assert_array_equal(x[n], expected)

    prov = read_provenance(out)
    assert prov["stage"] == "tensors"
    assert prov["params"] == {**TINY, "subtract_onset_frame": False}
    assert prov["inputs"]["magnified"]["path"] == str(tmp_path / "magnified.h5")
    assert prov["inputs"]["magnified"]["sha256"] == file_sha256(tmp_path / "magnified.h5")

    again = tmp_path / "again.h5"
    tensors_stage(tmp_path / "magnified.h5", again, **TINY)
    assert file_sha256(again) == file_sha256(out)  # same params and input: byte-identical


def test_tensors_stage_counts_the_distinct_variants_of_each_clip(tmp_path, capsys):
    # The paper's 6 keep-ratios x 8 kernels on 10 x 8 frames. A 30-frame clip: keep-ratio 1.0 keeps all 30
    # frames and every kernel copies them (1 tensor); 0.9 ... 0.5 upsample 27 ... 15 frames, where
    # nearest = box, bilinear = triangle and bicubic = cubic (5 tensors each): 1 + 5 x 5 = 26. A 13-frame
    # clip upsamples at every ratio: 6 x 5 = 30. A 70-frame clip downsamples at every ratio (0.5 keeps 35): 48.
    paper = {**TINY, "frames": 30, "keep_ratios": PAPER["keep_ratios"], "kernels": METHODS}
    write_store(tmp_path / "magnified.h5", {"thirty": (30, "s1", "positive"), "thirteen": (13, "s2", "others"),
                                            "seventy": (70, "s3", "surprise")})
    tensors_stage(tmp_path / "magnified.h5", tmp_path / "tensors.h5", **paper)
    with h5py.File(tmp_path / "tensors.h5", "r") as h5:
        counts = dict(zip(h5["clip_id"].asstr()[()], h5["distinct_variants"][()].tolist(), strict=True))
        assert counts == {"thirty": 26, "thirteen": 30, "seventy": 48}
        assert sorted(count_distinct_variants(h5["x"][n]) for n in range(3)) == [26, 30, 48]
    assert f"tensors {tmp_path.name}: distinct variants per clip: min/median/max 26/30/48 of 48" \
        in capsys.readouterr().err


def test_a_clips_tensors_do_not_depend_on_the_other_clips(tmp_path):
    write_store(tmp_path / "all.h5", {"a": (9, "s1", "positive"), "b": (14, "s2", "negative"),
                                      "c": (11, "s3", "others")})
    write_store(tmp_path / "b_only.h5", {"b": (14, "s2", "negative")})
    tensors_stage(tmp_path / "all.h5", tmp_path / "t_all.h5", **TINY)
    tensors_stage(tmp_path / "b_only.h5", tmp_path / "t_b.h5", **TINY)
    with h5py.File(tmp_path / "t_all.h5", "r") as a, h5py.File(tmp_path / "t_b.h5", "r") as b:
        np.testing.assert_array_equal(a["x"][1], b["x"][0])


def test_a_too_short_clip_fails_naming_it_and_leaves_no_file(tmp_path):
    write_store(tmp_path / "magnified.h5", {"ok": (10, "s1", "positive"), "sub07_short": (2, "s2", "others")})
    with pytest.raises(BadInputError, match="sub07_short.*2 frames"):
        tensors_stage(tmp_path / "magnified.h5", tmp_path / "tensors.h5", **TINY)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["magnified.h5"]


def test_a_label_outside_the_classes_fails_naming_the_clip(tmp_path):
    write_store(tmp_path / "magnified.h5", {"sub03_EP09": (10, "s3", "positive")})
    with pytest.raises(BadInputError, match="sub03_EP09.*'positive' is not one of the classes"):
        tensors_stage(tmp_path / "magnified.h5", tmp_path / "tensors.h5", **{**TINY, "classes": ["a", "b"]})


def test_pixels_that_do_not_match_the_frame_size_fail_before_any_work(tmp_path):
    write_store(tmp_path / "magnified.h5", {"sub04_EP01": (10, "s4", "others")})
    with pytest.raises(ValueError, match="10 x 8 do not give pixels = 1966"):
        tensors_stage(tmp_path / "magnified.h5", tmp_path / "tensors.h5", **{**TINY, "pixels": 1966})
    assert not (tmp_path / "tensors.h5").exists()


def test_magnified_frames_are_resized_by_area_averaging_before_the_crop(tmp_path):
    """The paper magnifies at the aligned size and resizes afterwards (Sec. II-A): a 20 x 16 store gives
    the tensors of its 2 x 2 block means."""
    big = random_clip(12, height=20, width=16, seed=7)
    with open_h5_for_write(tmp_path / "magnified.h5") as h5:
        write_clip(h5, "sub05_EP01", big, {"subject": "sub05", "emotion": "others", "label": "others",
                                           "label_index": 3, "onset": 0, "apex": 6, "offset": 11, "fps": 200.0})
    tensors_stage(tmp_path / "magnified.h5", tmp_path / "tensors.h5", **TINY)
    blocks = big.reshape(12, 10, 2, 8, 2, 3).astype(np.float64).mean(axis=(2, 4))
    small = resize_frames(big, 10, 8)
    assert small.shape == (12, 10, 8, 3)
    assert np.abs(small - blocks).max() <= 0.5 + 1e-9  # area averaging, rounded to uint8
    expected = jitter_clip(small, keep_ratios=[1.0, 0.5], kernels=["nearest", "lanczos3"], frames_out=6, crop=0.8,
                           pixels=51, rng=clip_rng(3, "sub05_EP01"))
    with h5py.File(tmp_path / "tensors.h5", "r") as h5:
        np.testing.assert_array_equal(h5["x"][0], expected)


def test_subtracting_the_onset_frame_keeps_only_the_change_around_mid_grey():
    clip = random_clip(5, height=4, width=3, seed=11)
    moved = subtract_onset(clip)
    assert (moved[0] == 128).all()
    expected = np.clip(clip.astype(int) - clip[:1].astype(int) + 128, 0, 255)
    np.testing.assert_array_equal(moved, expected)
