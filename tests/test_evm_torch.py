"""The torch path of EVM (pipeline/evm_torch.py) against the NumPy path (pipeline/evm.py).

The NumPy path is checked against a transcription of MIT's MATLAB code in test_evm.py; here the torch
path is checked against it, on the CPU (and on CUDA where there is one): the same clip must come out
the same to within 1 grey level, chunking must not matter, and the pyramid steps must be corrDn /
upConv on every size.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch
from test_evm import CLIP_ATTRS, MIT, face_like_clip, random_clip, stage_params, write_aligned

import pipeline.evm_torch
from pipeline import evm
from pipeline.artifacts import read_clip, read_provenance
from pipeline.evm_torch import expand, magnify_torch, reduce

DEVICES = ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])


def test_reduce_and_expand_match_the_numpy_steps_on_every_size():
    rng = np.random.default_rng(0)
    for height in range(5, 20):
        for width in (5, 6, 7, 10, 13):
            image = rng.standard_normal((height, width, 3))
            got = reduce(torch.from_numpy(image).permute(2, 0, 1)[None])[0].permute(1, 2, 0).numpy()
            np.testing.assert_allclose(got, evm.reduce(image), atol=1e-12)
            coarse = rng.standard_normal(((height + 1) // 2, (width + 1) // 2, 3))
            got = expand(torch.from_numpy(coarse).permute(2, 0, 1)[None], (height, width))[0].permute(1, 2, 0)
            np.testing.assert_allclose(got.numpy(), evm.expand(coarse, (height, width)), atol=1e-12)


@pytest.mark.parametrize("device", DEVICES)
@pytest.mark.parametrize("shape", [(12, 64, 48), (10, 31, 45), (8, 40, 40), (9, 20, 33)])   # 40: a 5-px level
@pytest.mark.parametrize("smooth", [False, True])
def test_agrees_with_the_numpy_path_within_one_grey_level(device, shape, smooth):
    clip = random_clip(np.random.default_rng(sum(shape)), *shape, smooth=smooth)
    expected = evm.magnify(clip, **MIT).astype(int)
    got = magnify_torch(clip, **MIT, device=device, chunk_frames=4).astype(int)   # 3 chunks: state carried
    difference = np.abs(got - expected)
    assert got.shape == clip.shape
    assert difference.max() <= 1
    assert (difference == 0).mean() > 0.999              # float32 rounding at .5 boundaries, nothing more
    assert np.abs(got - clip).max() > 10                 # and it did magnify something


def test_chunks_do_not_change_the_result_and_magnify_routes_to_torch():
    clip = random_clip(np.random.default_rng(5), 11, 40, 36, smooth=True)
    whole = magnify_torch(clip, **MIT, device="cpu", chunk_frames=64)
    assert np.array_equal(magnify_torch(clip, **MIT, device="cpu", chunk_frames=1), whole)
    assert np.array_equal(magnify_torch(clip, **MIT, device="cpu", chunk_frames=5), whole)
    assert np.array_equal(evm.magnify(clip, **MIT, device="cpu"), whole)


def test_the_stage_device_param_picks_the_path(tmp_path, monkeypatch):
    """magnify.device "cpu" runs the NumPy path; a torch device runs magnify_torch there (run here on the
    CPU, whatever device was asked for), and the two stores agree within 1 grey level."""
    aligned = tmp_path / "aligned.h5"
    frames = face_like_clip(12)
    write_aligned(aligned, {"c1": (frames, CLIP_ATTRS)})
    asked = []

    def on_the_cpu(clip, *, device, **params):
        asked.append(device)
        return magnify_torch(clip, **params, device="cpu")

    monkeypatch.setattr(pipeline.evm_torch, "magnify_torch", on_the_cpu)
    evm.magnify_stage(aligned, tmp_path / "numpy.h5", tmp_path / "qc_numpy", **stage_params())
    assert asked == []
    evm.magnify_stage(aligned, tmp_path / "torch.h5", tmp_path / "qc_torch", **stage_params(device="cuda:1"))
    assert asked == ["cuda:1"]
    numpy_path, _ = read_clip(tmp_path / "numpy.h5", "c1")
    torch_path, _ = read_clip(tmp_path / "torch.h5", "c1")
    assert np.array_equal(numpy_path, evm.magnify(frames, **MIT))
    assert np.abs(torch_path.astype(int) - numpy_path).max() <= 1
    assert read_provenance(tmp_path / "torch.h5")["params"]["device"] == "cuda:1"


def test_static_clip_first_frame_and_flicker_come_out_unchanged():
    rng = np.random.default_rng(1)
    clip = random_clip(rng, 9, 31, 45, smooth=False)
    assert np.array_equal(magnify_torch(clip, device="cpu")[0], clip[0])
    static = np.repeat(clip[:1], 9, axis=0)
    assert np.array_equal(magnify_torch(static, device="cpu"), static)
    texture = rng.integers(60, 190, (1, 48, 64, 3))
    flicker = np.round(40 * np.sin(2 * np.pi * 0.04 * np.arange(40)))[:, None, None, None]
    flickering = (texture + flicker).astype(np.uint8)
    assert np.array_equal(magnify_torch(flickering, device="cpu"), flickering)


def test_bad_input_and_tiny_frames():
    clip = np.random.default_rng(3).integers(0, 256, (5, 9, 10, 3), dtype=np.uint8)   # 2 levels: no band
    assert np.array_equal(magnify_torch(clip, device="cpu"), clip)
    with pytest.raises(ValueError, match="uint8"):
        magnify_torch(clip.astype(np.float32), device="cpu")
    with pytest.raises(ValueError, match="chunk_frames"):
        magnify_torch(clip, device="cpu", chunk_frames=0)
