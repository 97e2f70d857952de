"""EVM (pipeline/evm.py) against MIT's amplify_spatial_lpyr_temporal_iir.m.

The reference here is a plain transcription of the MATLAB code, frame by frame and channel by channel,
in float64, with matlabPyrTools' buildLpyr / reconLpyr / corrDn / upConv written with scipy's
correlate1d: 'reflect1' is scipy's mode="mirror" (x[-k] = x[k]); corrDn keeps the even samples; upConv
puts the samples at the even indices of a zero image, mirrors that and convolves.
"""

from __future__ import annotations

import json
import os

import cv2
import h5py
import numpy as np
import pytest
from scipy.ndimage import correlate1d

from pipeline import evm, pyramid
from pipeline.artifacts import read_clip, read_provenance, write_clip
from pipeline.errors import BadInputError

MIT = dict(alpha=10, lambda_c=16, r1=0.4, r2=0.05, chrom_attenuation=0.1, exaggeration=2)

# ---------------------------------------------------------------------------------------------------
# Reference: amplify_spatial_lpyr_temporal_iir.m, transcribed

BINOM5 = np.sqrt(2) * np.array([1, 4, 6, 4, 1]) / 16          # namedFilter('binom5')
RGB2NTSC = np.array([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]])


def max_pyr_ht(size: tuple[int, int]) -> int:
    if min(size) < 5:
        return 0
    return 1 + max_pyr_ht((size[0] // 2, size[1] // 2))


def corr_dn(image: np.ndarray, axis: int) -> np.ndarray:
    filtered = correlate1d(image, BINOM5, axis=axis, mode="mirror")
    return filtered[::2] if axis == 0 else filtered[:, ::2]


def up_conv(image: np.ndarray, length: int, axis: int) -> np.ndarray:
    shape = list(image.shape)
    shape[axis] = length
    zeros = np.zeros(shape)
    if axis == 0:
        zeros[::2] = image
    else:
        zeros[:, ::2] = image
    out = correlate1d(zeros, BINOM5, axis=axis, mode="mirror")
    if length == 5:   # the MEX edge handler drops the mirrored tap of the last of 5 outputs
        if axis == 0:
            out[4] -= BINOM5[4] * image[1]
        else:
            out[:, 4] -= BINOM5[4] * image[:, 1]
    return out


def build_lpyr(image: np.ndarray, height: int) -> list[np.ndarray]:
    if height <= 1:
        return [image]
    low = corr_dn(corr_dn(image, axis=1), axis=0)
    high = up_conv(up_conv(low, image.shape[0], axis=0), image.shape[1], axis=1)
    return [image - high] + build_lpyr(low, height - 1)


def recon_lpyr(pyramid: list[np.ndarray]) -> np.ndarray:
    if len(pyramid) == 1:
        return pyramid[0]
    coarser = recon_lpyr(pyramid[1:])
    height, width = pyramid[0].shape
    return pyramid[0] + up_conv(up_conv(coarser, height, axis=0), width, axis=1)


def scale_pyramid(pyramid: list[np.ndarray], height: int, width: int, alpha, lambda_c, exaggeration):
    """The MIT loop over levels, coarsest first."""
    n_levels = len(pyramid)
    delta = lambda_c / 8 / (1 + alpha)
    wavelength = (height ** 2 + width ** 2) ** 0.5 / 3
    out = list(pyramid)
    for level in range(n_levels, 0, -1):
        current_alpha = (wavelength / delta / 8 - 1) * exaggeration
        if level == n_levels or level == 1:
            out[level - 1] = 0 * pyramid[level - 1]
        elif current_alpha > alpha:
            out[level - 1] = alpha * pyramid[level - 1]
        else:
            out[level - 1] = current_alpha * pyramid[level - 1]
        wavelength /= 2
    return out


def reference_magnify(frames, alpha, lambda_c, r1, r2, chrom_attenuation, exaggeration):
    n_frames, height, width, _ = frames.shape
    n_levels = 1 + max_pyr_ht((height, width))
    out = [frames[0]]                                  # the first frame is written unchanged

    def pyramids_of(frame):
        return [build_lpyr(frame[:, :, c], n_levels) for c in range(3)]

    lowpass1 = pyramids_of(frames[0] / 255 @ RGB2NTSC.T)
    lowpass2 = pyramids_of(frames[0] / 255 @ RGB2NTSC.T)
    for i in range(1, n_frames):
        frame = frames[i] / 255 @ RGB2NTSC.T
        pyr = pyramids_of(frame)
        output = np.zeros(frame.shape)
        for c in range(3):
            lowpass1[c] = [(1 - r1) * lp + r1 * p for lp, p in zip(lowpass1[c], pyr[c], strict=True)]
            lowpass2[c] = [(1 - r2) * lp + r2 * p for lp, p in zip(lowpass2[c], pyr[c], strict=True)]
            filtered = [a - b for a, b in zip(lowpass1[c], lowpass2[c], strict=True)]
            output[:, :, c] = recon_lpyr(scale_pyramid(filtered, height, width, alpha, lambda_c, exaggeration))
        output[:, :, 1:] *= chrom_attenuation
        rgb = (frame + output) @ np.linalg.inv(RGB2NTSC).T
        out.append(np.floor(np.clip(rgb, 0, 1) * 255 + 0.5).astype(np.uint8))
    return np.stack(out)


# ---------------------------------------------------------------------------------------------------
# Pyramid pieces


def test_level_shapes_and_gains_follow_maxpyrht_and_the_mit_schedule():
    assert pyramid.level_shapes(64, 48) == [(64, 48), (32, 24), (16, 12), (8, 6), (4, 3)]
    assert pyramid.level_shapes(31, 45) == [(31, 45), (16, 23), (8, 12), (4, 6)]
    assert pyramid.level_shapes(140, 170)[-1] == (5, 6) and len(pyramid.level_shapes(140, 170)) == 6
    assert pyramid.level_shapes(4, 100) == [(4, 100)]
    # 64x48: lambda = 80/3 at the residual, delta = 16/8/11; alpha_l = 2 (lambda / delta / 8 - 1), <= 10
    gains = pyramid.level_gains(64, 48, alpha=10, lambda_c=16, exaggeration=2)
    delta = 16 / 8 / 11
    expected = [0, 2 * (80 / 24 / delta / 8 - 1), 2 * (80 / 12 / delta / 8 - 1), 10, 0]
    np.testing.assert_allclose(gains, expected)
    assert gains[1] == pytest.approx(2.5833, abs=1e-4) and gains[2] == pytest.approx(7.1667, abs=1e-4)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_reduce_and_expand_are_corrdn_and_upconv_on_every_size(dtype):
    rng = np.random.default_rng(0)
    tolerance = 1e-12 if dtype == np.float64 else 1e-5
    for height in range(5, 27):
        for width in (5, 6, 7, 10, 13, 24):
            image = rng.standard_normal((height, width))
            expected = corr_dn(corr_dn(image, axis=1), axis=0) / 2      # binom5 has DC gain sqrt(2)
            got = evm.reduce(np.repeat(image[..., None], 3, axis=2).astype(dtype))
            np.testing.assert_allclose(got, np.repeat(expected[..., None], 3, axis=2), atol=tolerance)
            coarse = rng.standard_normal(((height + 1) // 2, (width + 1) // 2))
            expected = up_conv(up_conv(coarse, height, axis=0), width, axis=1) * 2
            got = evm.expand(np.repeat(coarse[..., None], 3, axis=2).astype(dtype), (height, width))
            np.testing.assert_allclose(got, np.repeat(expected[..., None], 3, axis=2), atol=tolerance)


def test_upsample_to_five_has_the_mex_edge_quirk():
    # upConv(eye(3), binom5, 'reflect1', [2 1], [1 1], [5 3]) * 8 / sqrt(2), as the MEX file computes it
    mex = np.array([[6, 2, 0], [4, 4, 0], [1, 6, 1], [0, 4, 4], [0, 1, 6]]) / 8
    np.testing.assert_allclose(evm.upsample(np.eye(3), 5, axis=0), mex)
    np.testing.assert_allclose(evm.upsample(np.eye(4), 7, axis=0)[-1], [0, 0, 2 / 8, 6 / 8])
    np.testing.assert_allclose(evm.upsample(np.eye(4), 8, axis=0)[-2:], [[0, 0, 1 / 8, 7 / 8], [0, 0, 0, 1]])


# ---------------------------------------------------------------------------------------------------
# Whole clips


def random_clip(rng, n_frames, height, width, smooth):
    if not smooth:
        return rng.integers(0, 256, (n_frames, height, width, 3), dtype=np.uint8)
    y, x = np.mgrid[0:height, 0:width]
    frames = []
    for t in range(n_frames):
        shift = 0.6 * np.sin(2 * np.pi * 0.05 * t)
        image = (128 + 60 * np.sin(2 * np.pi * (x + shift) / 17)[..., None] * [1, 0.8, 0.6]
                 + 30 * np.cos(2 * np.pi * (y - shift) / 23)[..., None] + rng.normal(0, 2, (height, width, 3)))
        frames.append(np.clip(np.round(image), 0, 255))
    return np.stack(frames).astype(np.uint8)


@pytest.mark.parametrize("shape", [(12, 64, 48), (10, 31, 45), (8, 40, 40), (8, 20, 33)])   # 40: a 5-px level
@pytest.mark.parametrize("smooth", [False, True])
def test_agrees_with_the_per_frame_matlab_transcription(shape, smooth):
    clip = random_clip(np.random.default_rng(sum(shape)), *shape, smooth=smooth)
    got = evm.magnify(clip, **MIT).astype(int)
    expected = reference_magnify(clip, **MIT).astype(int)
    difference = np.abs(got - expected)
    assert got.shape == clip.shape
    assert (difference <= 1).mean() >= 0.99
    assert difference.max() <= 2
    assert (difference == 0).mean() > 0.99              # float32 vs float64 rounding, nothing more
    assert np.abs(got - clip).max() > 10                # and it did magnify something


def test_a_clip_of_several_chunks_agrees_with_the_transcription_on_any_number_of_threads():
    shape = (2 * evm.CHUNK_FRAMES + 5, 20, 33)         # two whole chunks and a partial one: state carried
    clip = random_clip(np.random.default_rng(7), *shape, smooth=True)
    got = evm.magnify(clip, **MIT)
    difference = np.abs(got.astype(int) - reference_magnify(clip, **MIT))
    assert (difference <= 1).mean() >= 0.99 and difference.max() <= 2
    assert (difference == 0).mean() > 0.99
    assert np.abs(got.astype(int) - clip).max() > 10
    assert np.array_equal(evm.magnify(clip, **MIT, threads=2), got)
    assert np.array_equal(evm.magnify(clip, **MIT, threads=3), got)
    with pytest.raises(ValueError, match="threads"):
        evm.magnify(clip, threads=0)


def test_first_frame_and_static_clip_come_out_unchanged():
    rng = np.random.default_rng(1)
    clip = random_clip(rng, 9, 31, 45, smooth=False)
    assert np.array_equal(evm.magnify(clip)[0], clip[0])
    static = np.repeat(clip[:1], 9, axis=0)
    assert np.array_equal(evm.magnify(static), static)


def test_uniform_flicker_is_not_amplified():
    rng = np.random.default_rng(2)
    texture = rng.integers(60, 190, (1, 48, 64, 3))
    flicker = np.round(40 * np.sin(2 * np.pi * 0.04 * np.arange(60)))[:, None, None, None]   # in the pass band
    clip = (texture + flicker).astype(np.uint8)
    assert np.array_equal(evm.magnify(clip), clip)


def test_frames_too_small_for_a_band_are_returned_as_they_are():
    clip = np.random.default_rng(3).integers(0, 256, (5, 9, 10, 3), dtype=np.uint8)   # 2 levels only
    assert np.array_equal(evm.magnify(clip), clip)
    with pytest.raises(ValueError, match="uint8"):
        evm.magnify(clip.astype(np.float32))


# ---------------------------------------------------------------------------------------------------
# Motion of a grating: the amplification the temporal filter predicts


def iir_response(cycles_per_frame: float, r1: float = 0.4, r2: float = 0.05) -> complex:
    """Frequency response of the band-pass: difference of y[n] = r x[n] + (1 - r) y[n-1] for r1, r2."""
    z = np.exp(-2j * np.pi * cycles_per_frame)
    return r1 / (1 - (1 - r1) * z) - r2 / (1 - (1 - r2) * z)


def moving_grating(n_frames, size, wavelength_px, cycles_per_frame, phase_amplitude=0.15):
    """Grey vertical stripes whose phase oscillates: 128 + 60 cos(2 pi x / wavelength + eps sin(2 pi f t))."""
    t = np.arange(n_frames)[:, None]
    x = np.arange(size)[None, :]
    rows = 128 + 60 * np.cos(2 * np.pi * x / wavelength_px + phase_amplitude * np.sin(2 * np.pi * cycles_per_frame * t))
    return np.repeat(np.repeat(np.round(rows)[:, None, :, None], size, axis=1), 3, axis=3).astype(np.uint8)


def spatial_gain(size, wavelength_px):
    """How much the reference's per-level gains scale a sin(2 pi x / wavelength) pattern (the spatial
    profile of the grating's motion), measured on the reference pyramid away from the borders."""
    pattern = np.repeat(np.sin(2 * np.pi * np.arange(size) / wavelength_px)[None, :], size, axis=0)
    pyramid = build_lpyr(pattern, 1 + max_pyr_ht((size, size)))
    scaled = recon_lpyr(scale_pyramid(pyramid, size, size, alpha=10, lambda_c=16, exaggeration=2))
    inner = np.s_[:, 16:-16]
    return float((scaled[inner] * pattern[inner]).sum() / (pattern[inner] ** 2).sum())


def amplitude_at(video, cycles_per_frame, first_frame):
    """Per-pixel amplitude of the temporal component at `cycles_per_frame` (least squares, from
    `first_frame` on, after the IIR start-up)."""
    t = np.arange(first_frame, len(video))
    basis = np.stack([np.cos(2 * np.pi * cycles_per_frame * t), np.sin(2 * np.pi * cycles_per_frame * t),
                      np.ones(len(t))], axis=1)
    coefficients = np.linalg.lstsq(basis, video[first_frame:].reshape(len(t), -1), rcond=None)[0]
    return np.hypot(coefficients[0], coefficients[1]).reshape(video.shape[1:])


@pytest.mark.parametrize("size, wavelength_px, cycles_per_frame, n_frames, settled",
                         [(128, 32, 0.04, 160, 110),      # in the pass band: two periods after settling
                          (64, 32, 0.04, 160, 110),
                          (64, 16, 0.0005, 2200, 200)])   # far below it: one period of 2000 frames
def test_grating_motion_is_amplified_as_the_filter_response_predicts(size, wavelength_px, cycles_per_frame,
                                                                     n_frames, settled):
    clip = moving_grating(n_frames, size, wavelength_px, cycles_per_frame)
    out = evm.magnify(clip, **MIT)
    assert np.ptp(out.astype(int), axis=3).max() <= 1                     # grey stays grey
    inner = np.s_[:, 16:-16]
    before = amplitude_at(clip[..., 0].astype(float), cycles_per_frame, settled)[inner]
    after = amplitude_at(out.mean(axis=3), cycles_per_frame, settled)[inner]
    measured = after.sum() / before.sum()
    # linear in intensity: the motion's component at f is multiplied by 1 + g H(f), g the pyramid's
    # gain for this spatial frequency and H the IIR band-pass's response
    predicted = abs(1 + spatial_gain(size, wavelength_px) * iir_response(cycles_per_frame))
    assert measured == pytest.approx(predicted, rel=0.03)
    if cycles_per_frame == 0.04:
        assert 6 < measured < 9                          # not 1 + alpha = 11: |H| < 1 even at its peak
    else:
        assert measured < 1.2                            # essentially untouched


# ---------------------------------------------------------------------------------------------------
# Frame-rate invariance: r1, r2 hold at the reference fps and are converted per clip


def test_rates_keep_their_decay_per_second():
    assert evm.rate_at_fps(0.4, 200, 200) == pytest.approx(0.4)
    assert evm.rate_at_fps(0.4, 100, 200) == pytest.approx(0.64)            # 1 - 0.6^2: two steps in one
    assert evm.rate_at_fps(0.05, 400, 200) == pytest.approx(1 - 0.95 ** 0.5)
    for fps in (30, 60, 100, 200):                                          # the same state left after 1 s
        assert (1 - evm.rate_at_fps(0.05, fps, 200)) ** fps == pytest.approx(0.95 ** 200)
    with pytest.raises(ValueError, match="positive"):
        evm.rate_at_fps(0.4, 0, 200)


@pytest.mark.parametrize("fps", [200, 100])
def test_a_grating_at_the_same_hz_gets_the_same_gain_at_every_frame_rate(fps):
    hz, seconds, settled_s = 8.0, 0.8, 0.55                # 8 Hz: 0.04 cycles/frame at 200 fps, 0.08 at 100
    clip = moving_grating(round(seconds * fps), 128, 32, hz / fps)
    rates = {name: evm.rate_at_fps(MIT[name], fps, 200) for name in ("r1", "r2")}
    params = {**MIT, **rates}
    inner = np.s_[:, 16:-16]
    settled = round(settled_s * fps)
    before = amplitude_at(clip[..., 0].astype(float), hz / fps, settled)[inner].sum()
    measured = amplitude_at(evm.magnify(clip, **params).mean(axis=3), hz / fps, settled)[inner].sum() / before
    g = spatial_gain(128, 32)
    predicted = abs(1 + g * iir_response(hz / fps, rates["r1"], rates["r2"]))
    at_200 = abs(1 + g * iir_response(hz / 200))
    assert measured == pytest.approx(predicted, rel=0.03)
    assert measured == pytest.approx(at_200, rel=0.03)     # the filter's |H| at 8 Hz: 0.791 and 0.792
    if fps != 200:                                         # the paper's r1, r2 per frame would cut it to 0.643
        unconverted = abs(1 + g * iir_response(hz / fps))
        assert unconverted < 0.85 * measured


def test_stage_filters_each_clip_with_the_rates_for_its_fps(tmp_path):
    aligned, out, qc = tmp_path / "aligned.h5", tmp_path / "magnified.h5", tmp_path / "qc"
    frames = face_like_clip(20)
    write_aligned(aligned, {"at100": (frames, {**CLIP_ATTRS, "fps": 100}), "at200": (frames, CLIP_ATTRS)})
    evm.magnify_stage(aligned, out, qc, **stage_params())
    at100, attrs = read_clip(out, "at100")
    assert attrs["fps"] == 100
    assert np.array_equal(at100, evm.magnify(frames, **{**MIT, "r1": 0.64, "r2": 1 - 0.95 ** 2}))
    assert np.array_equal(read_clip(out, "at200")[0], evm.magnify(frames, **MIT))
    assert not np.array_equal(at100, read_clip(out, "at200")[0])
    write_aligned(aligned, {"nofps": (frames, {k: v for k, v in CLIP_ATTRS.items() if k != "fps"})})
    with pytest.raises(BadInputError, match="nofps.*fps"):
        evm.magnify_stage(aligned, out, qc, **stage_params())


# ---------------------------------------------------------------------------------------------------
# The stage


CLIP_ATTRS = {"subject": "s01", "emotion": "happiness", "label": "positive", "onset": 10, "apex": 21,
              "offset": 33, "fps": 200}


def write_aligned(path, clips):
    with h5py.File(path, "w") as h5:
        for clip_id, (frames, attrs) in clips.items():
            write_clip(h5, clip_id, frames, attrs)


def face_like_clip(n_frames=24, seed=0):
    return random_clip(np.random.default_rng(seed), n_frames, 64, 48, smooth=True)


def stage_params(enabled=True, device="cpu"):
    return dict(enabled=enabled, reference_fps=200, eye_y=0.34, device=device, **MIT)


def test_stage_writes_layout_provenance_and_qc(tmp_path):
    aligned, out, qc = tmp_path / "aligned.h5", tmp_path / "magnified.h5", tmp_path / "magnify_qc"
    clips = {"s01_ep01": (face_like_clip(24, 0), CLIP_ATTRS),
             "s02_ep03": (face_like_clip(18, 1), {**CLIP_ATTRS, "subject": "s02", "apex": 12})}
    write_aligned(aligned, clips)
    evm.magnify_stage(aligned, out, qc, **stage_params())

    for clip_id, (frames, attrs) in clips.items():
        magnified, stored_attrs = read_clip(out, clip_id)
        assert np.array_equal(magnified, evm.magnify(frames, **MIT))
        assert stored_attrs == attrs
        strip = cv2.cvtColor(cv2.imread(os.fspath(qc / f"{clip_id}.png")), cv2.COLOR_BGR2RGB)
        scale, gap, caption = 4, 4, 14                   # 64 rows -> about 256 px
        assert strip.shape[1] == 3 * 48 * scale + 2 * gap
        assert strip.shape[0] == caption + 64 * scale + 2 * (gap + caption + len(frames) * scale)
        top = strip[caption:caption + 64 * scale]
        before, after, difference = (top[:, i * (48 * scale + gap):][:, : 48 * scale] for i in range(3))
        apex = attrs["apex"] - attrs["onset"]
        # the top panels are the apex frame before, after and 128 + 4 (after - before), enlarged (the
        # row ticks sit mid-pixel, so every 4th pixel is the frame's)
        assert np.array_equal(before[::scale, ::scale], frames[apex])
        assert np.array_equal(after[::scale, ::scale], magnified[apex])
        change = magnified[apex].astype(int) - frames[apex]
        assert np.array_equal(difference[::scale, ::scale], np.clip(128 + 4 * change, 0, 255))
        assert np.abs(change).max() > 0
        eyes_before = strip[caption + 64 * scale + gap + caption:][: len(frames) * scale, : 48 * scale]
        assert np.array_equal(eyes_before[::scale, ::scale], frames[:, round(0.34 * 64)])   # x-t slices at eye_y
        slice_height = caption + len(frames) * scale
        mouth = strip[caption + 64 * scale + 2 * gap + slice_height + caption:][: len(frames) * scale]
        mouth_before, mouth_after = (mouth[:, i * (48 * scale + gap):][:, : 48 * scale] for i in range(2))
        assert np.array_equal(mouth_before[::scale, ::scale], frames[:, round(0.75 * 64)])
        assert np.array_equal(mouth_after[::scale, ::scale], magnified[:, round(0.75 * 64)])
    assert sorted(os.listdir(qc)) == ["s01_ep01.png", "s02_ep03.png"]

    provenance = read_provenance(out)
    assert provenance["stage"] == "magnify"
    assert provenance["params"] == stage_params()
    assert provenance["inputs"]["aligned"]["path"] == os.fspath(aligned)
    assert sorted(os.listdir(tmp_path)) == ["aligned.h5", "magnified.h5", "magnify_qc"]   # no temp files

    first_bytes = out.read_bytes()                       # reruns replace both outputs, byte-identical
    evm.magnify_stage(aligned, out, qc, **stage_params())
    assert out.read_bytes() == first_bytes
    assert sorted(os.listdir(tmp_path)) == ["aligned.h5", "magnified.h5", "magnify_qc"]


def test_stage_disabled_copies_frames_and_records_params(tmp_path):
    aligned, out, qc = tmp_path / "aligned.h5", tmp_path / "magnified.h5", tmp_path / "qc"
    frames = face_like_clip(20)
    write_aligned(aligned, {"c1": (frames, CLIP_ATTRS)})
    evm.magnify_stage(str(aligned), str(out), str(qc), **stage_params(enabled=False))   # as Snakemake
    copied, _ = read_clip(out, "c1")
    assert np.array_equal(copied, frames)
    with h5py.File(out, "r") as h5:
        assert json.loads(h5.attrs["params"])["enabled"] is False
    assert (qc / "c1.png").is_file()


def test_stage_names_a_bad_clip_and_leaves_nothing_behind(tmp_path):
    aligned, out, qc = tmp_path / "aligned.h5", tmp_path / "magnified.h5", tmp_path / "qc"
    write_aligned(aligned, {"good": (face_like_clip(20), CLIP_ATTRS),
                            "late_apex": (face_like_clip(20), {**CLIP_ATTRS, "apex": 45})})
    with pytest.raises(BadInputError, match="late_apex.*apex 45 is outside"):
        evm.magnify_stage(aligned, out, qc, **stage_params())
    assert sorted(os.listdir(tmp_path)) == ["aligned.h5"]
