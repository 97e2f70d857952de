"""Benchmark: the baselines' feature extractors per clip, and merflow's LBP-TOP against scikit-image.

    .venv/bin/python bench/baselines.py [--repeats 7] [--aligned data/casme2/aligned.h5]

Every extractor runs on one clip at the sizes of params.yaml (a real aligned clip if --aligned names a
store, else a synthetic 30-frame textured clip) and, for the comparison the issue asks for, LBP-TOP on
a 30 x 64 x 48 volume: merflow's vectorised version against scikit-image's `local_binary_pattern` run
slice by slice over the XY, XT and YT planes (the only way to get the three planes from it; it has no
elliptical neighbourhoods, so both use radii 1, 1, 1 here) plus the same uniform mapping and block
histograms. Both must give the same feature. Times are the best of --repeats runs (the machine may
be shared), in milliseconds per clip.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
from skimage.feature import local_binary_pattern

from pipeline.baselines.clips import grey, grey_volume, iter_aligned_clips, resample_frames, resize_frames
from pipeline.baselines.lbpsip import lbpsip_features
from pipeline.baselines.lbptop import PLANES, block_histograms, lbptop_features, uniform_mapping
from pipeline.baselines.mdmo import mdmo_features
from pipeline.baselines.tics import fit_colour_space, sample_pixels, tics_features
from pipeline.config import load_params

REPO = Path(__file__).resolve().parent.parent


def best_ms(function: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        started = time.perf_counter()
        function()
        times.append(time.perf_counter() - started)
    return min(times) * 1e3


def skimage_lbptop(volume: np.ndarray, points: int, radius: int, blocks: tuple[int, int, int]) -> np.ndarray:
    """LBP-TOP from scikit-image's 2-D LBP, one slice at a time, cropped to merflow's interior."""
    r = radius
    xy = np.stack([local_binary_pattern(frame, points, r) for frame in volume])
    xt = np.stack([local_binary_pattern(volume[:, y, :], points, r) for y in range(volume.shape[1])], axis=1)
    yt = np.stack([local_binary_pattern(volume[:, :, x].T, points, r) for x in range(volume.shape[2])], axis=2)
    yt = yt.transpose(1, 0, 2)                       # (y, t, x) slices -> (t, y, x)
    mapping = uniform_mapping(points)
    n_bins = int(mapping.max()) + 1
    histograms = [block_histograms(mapping[codes[r:-r, r:-r, r:-r].astype(np.intp)], n_bins, blocks)
                  for codes in (xy, xt, yt)]
    return np.concatenate(histograms, axis=1).ravel()


def synthetic_clip(frames: int = 40, height: int = 256, width: int = 192, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    base = rng.integers(0, 256, (height, width, 3)).astype(np.float32)
    return np.stack([np.clip(np.roll(base, t // 8, axis=0) + rng.normal(0, 2, base.shape), 0, 255)
                     for t in range(frames)]).astype(np.uint8)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=7)
    parser.add_argument("--aligned", type=Path, default=REPO / "data" / "casme2" / "aligned.h5",
                        help="an aligned store to take the first clip from (default: the demo's)")
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")

    # 1. LBP-TOP on a 30 x 64 x 48 volume: merflow vs scikit-image slice by slice.
    volume = np.random.default_rng(0).integers(0, 256, (30, 64, 48)).astype(np.uint8)
    ours = lbptop_features(volume.astype(np.float32), points=(8, 8, 8), radii=(1, 1, 1), blocks=(5, 5, 1))
    reference = skimage_lbptop(volume, 8, 1, (5, 5, 1))
    assert np.allclose(ours, reference, atol=1e-3), "merflow's LBP-TOP differs from scikit-image's"
    ours_ms = best_ms(lambda: lbptop_features(volume, points=(8, 8, 8), radii=(1, 1, 1), blocks=(5, 5, 1)),
                      args.repeats)
    skimage_ms = best_ms(lambda: skimage_lbptop(volume, 8, 1, (5, 5, 1)), args.repeats)
    paper_ms = best_ms(lambda: lbptop_features(volume, points=(8, 8, 8), radii=(1, 1, 4), blocks=(5, 5, 1)),
                       args.repeats)
    print("LBP-TOP, one 30x64x48 clip, P = 8 on each plane, 5x5 blocks (same features, max |diff| "
          f"{np.abs(ours - reference).max():.1e})")
    print(f"  merflow (vectorised numpy), radii 1,1,1   {ours_ms:8.2f} ms")
    print(f"  scikit-image, slice by slice, radii 1,1,1 {skimage_ms:8.2f} ms   ({skimage_ms / ours_ms:.1f}x slower)")
    print(f"  merflow, radii 1,1,4 (the params' radii)  {paper_ms:8.2f} ms")

    # 2. Every extractor on one clip at the params' sizes, from the aligned frames (read time excluded).
    if args.aligned.is_file():
        clip = next(iter_aligned_clips(args.aligned))
        frames, landmarks, source = clip.frames, clip.landmarks, f"{clip.clip_id} of {args.aligned}"
    else:                                   # no store: noise frames, and no landmarks for MDMO's ROIs
        frames, landmarks, source = synthetic_clip(), None, "a synthetic 40x256x192 clip"
    lt, ls, tc, md = params["lbptop"], params["lbpsip"], params["tics"], params["mdmo"]
    colour = resample_frames(resize_frames(frames, tc["height"], tc["width"]), tc["frames"])
    unmixing, mean = fit_colour_space(sample_pixels(colour, 5000, np.random.default_rng(0)), seed=0)
    scale = np.array([md["width"] / frames.shape[2], md["height"] / frames.shape[1]])
    # (landmarks + 0.5) * scale - 0.5: pipeline.baselines.clips.scale_landmarks, inlined below
    flow = {k: md[k] for k in ("pyr_scale", "levels", "winsize", "iterations", "poly_n", "poly_sigma")}
    extractors = {
        f"LBP-TOP  {lt['frames']}x{lt['height']}x{lt['width']}": lambda: lbptop_features(
            grey_volume(frames, height=lt["height"], width=lt["width"], n_frames=lt["frames"]),
            points=lt["points"], radii=lt["radii"], blocks=lt["blocks"]),
        f"LBP-SIP  {ls['frames']}x{ls['height']}x{ls['width']}": lambda: lbpsip_features(
            grey_volume(frames, height=ls["height"], width=ls["width"], n_frames=ls["frames"]),
            radius_xy=ls["radius_xy"], radius_t=ls["radius_t"], blocks=ls["blocks"]),
        f"TICS     {tc['frames']}x{tc['height']}x{tc['width']}x3": lambda: tics_features(
            resample_frames(resize_frames(frames, tc["height"], tc["width"]), tc["frames"]), unmixing, mean,
            points=tc["points"], radii=tc["radii"], blocks=tc["blocks"]),
        f"MDMO     {len(frames)}x{md['height']}x{md['width']}": lambda: mdmo_features(
            grey(resize_frames(frames, md["height"], md["width"])), (landmarks + 0.5) * scale - 0.5,
            bins=md["bins"], **flow),
    }
    if landmarks is None:
        del extractors[next(name for name in extractors if name.startswith("MDMO"))]
    print(f"\nFeature extractors per clip, params.yaml sizes, from {source} (resize and resampling included):")
    for name, extract in extractors.items():
        print(f"  {name:28s} {best_ms(extract, args.repeats):8.1f} ms   ({len(extract())} dims)")
    print(f"(planes: {', '.join(PLANES)}; best of {args.repeats})")


if __name__ == "__main__":
    main()
