"""Benchmark: the baselines' feature extractors per clip, and merflow's LBP-TOP against scikit-image.

    .venv/bin/python bench/baselines.py [--repeats 15] [--aligned data/casme2/aligned.h5] [--json out.json]

1. LBP-TOP on a 30 x 64 x 48 volume (the issue's size): merflow's vectorised version against scikit-image's
   `local_binary_pattern` run slice by slice over the XY, XT and YT planes (the only way to get the three
   planes from it; it has no elliptical neighbourhoods, so both use radii 1, 1, 1 there) plus the same
   uniform mapping and block histograms. Both must give the same feature (checked, max |diff| printed).
   The two are timed in alternation, so that both see the same load on a shared machine.
2. Every extractor (LBP-TOP, LBP-SIP, TICS, MDMO) with params.yaml's settings, on a 30 x 64 x 48 clip
   (the feature alone: the input is already at that size) and at params.yaml's sizes from the aligned
   frames of one clip (resize and temporal resampling included, reading the store not). The clip is
   the first of --aligned when it names a store (MDMO then uses its landmarks), else a synthetic
   textured 40 x 256 x 192 clip with a template face's landmarks.

Times are the best of --repeats runs, in milliseconds per clip.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
from skimage.feature import local_binary_pattern

from pipeline.baselines.clips import (
    grey,
    grey_volume,
    iter_aligned_clips,
    resample_frames,
    resize_frames,
    scale_landmarks,
)
from pipeline.baselines.lbpsip import lbpsip_features
from pipeline.baselines.lbptop import block_histograms, lbptop_features, n_uniform_bins, uniform_mapping
from pipeline.baselines.mdmo import mdmo_features
from pipeline.baselines.tics import fit_colour_space, sample_pixels, tics_features
from pipeline.config import load_params

REPO = Path(__file__).resolve().parent.parent
GOAL_SPEEDUP = 10.0       # the goal: LBP-TOP at least 10x faster than scikit-image slice by slice


def best_ms(functions: dict[str, Callable[[], object]], repeats: int) -> dict[str, float]:
    """Best wall time of each function over `repeats` rounds, the functions run in turn in every round."""
    best = dict.fromkeys(functions, np.inf)
    for _ in range(repeats):
        for name, function in functions.items():
            started = time.perf_counter()
            function()
            best[name] = min(best[name], time.perf_counter() - started)
    return {name: seconds * 1e3 for name, seconds in best.items()}


def skimage_lbptop(volume: np.ndarray, points: int, radius: int, blocks: tuple[int, int, int]) -> np.ndarray:
    """LBP-TOP from scikit-image's 2-D LBP, one slice at a time, cropped to merflow's interior."""
    r = radius
    xy = np.stack([local_binary_pattern(frame, points, r) for frame in volume])
    xt = np.stack([local_binary_pattern(volume[:, y, :], points, r) for y in range(volume.shape[1])], axis=1)
    yt = np.stack([local_binary_pattern(volume[:, :, x].T, points, r) for x in range(volume.shape[2])], axis=2)
    yt = yt.transpose(1, 0, 2)                       # (y, t, x) slices -> (t, y, x)
    mapping = uniform_mapping(points)
    histograms = [block_histograms(mapping[codes[r:-r, r:-r, r:-r].astype(np.intp)], n_uniform_bins(points), blocks)
                  for codes in (xy, xt, yt)]
    return np.concatenate(histograms, axis=1).ravel()


def template_landmarks(height: int, width: int) -> np.ndarray:
    """A crude but well-ordered 68-point face filling a height x width frame (iBUG numbering), for MDMO's
    ROIs when there is no aligned store to take real landmarks from."""
    cx, s = width / 2, width / 48
    angle = np.linspace(np.pi, 0, 17)
    jaw = np.c_[cx - 20 * s * np.cos(angle), 24 * s + 28 * s * np.sin(angle)]
    brows = [np.c_[np.linspace(x0, x0 + 12 * s, 5), np.full(5, 14 * s)] for x0 in (cx - 18 * s, cx + 6 * s)]
    nose = np.c_[np.full(4, cx), np.linspace(20 * s, 32 * s, 4)]
    nostrils = np.c_[np.linspace(cx - 4 * s, cx + 4 * s, 5), np.full(5, 35 * s)]
    eyes = [np.c_[x0 + s * np.array([0, 3, 6, 9, 6, 3]), 20 * s + s * np.array([0, -2, -2, 0, 2, 2])]
            for x0 in (cx - 14 * s, cx + 5 * s)]
    outer, inner = np.linspace(np.pi, -np.pi, 13)[:12], np.linspace(np.pi, -np.pi, 9)[:8]
    mouth = np.c_[cx - 9 * s * np.cos(outer), 42 * s - 4 * s * np.sin(outer)]
    lips = np.c_[cx - 6 * s * np.cos(inner), 42 * s - 2 * s * np.sin(inner)]
    return np.vstack([jaw, *brows, nose, nostrils, *eyes, mouth, lips]) * [1, height / 64]


def synthetic_clip(frames: int = 40, height: int = 256, width: int = 192, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): smooth colour texture drifting down by a pixel every 8 frames, plus noise."""
    rng = np.random.default_rng(seed)
    base = cv2.GaussianBlur(rng.uniform(0, 255, (height, width, 3)).astype(np.float32), (0, 0), 2.0)
    base = (base - base.mean()) / base.std() * 40 + 128
    return np.stack([np.clip(np.roll(base, t // 8, axis=0) + rng.normal(0, 2, base.shape), 0, 255)
                     for t in range(frames)]).astype(np.uint8)


def extractors(frames: np.ndarray, landmarks: np.ndarray, params: dict, size: tuple[int, int, int] | None
               ) -> dict[str, Callable[[], np.ndarray]]:
    """name -> extractor of one clip. size (T, H, W): every method on an input already at that size (the
    feature alone); None: params.yaml's sizes, from the aligned frames (resizing and resampling included)."""
    lt, ls, tc, md = params["lbptop"], params["lbpsip"], params["tics"], params["mdmo"]
    flow = {k: md[k] for k in ("bins", "pyr_scale", "levels", "winsize", "iterations", "poly_n", "poly_sigma")}
    aligned_hw = frames.shape[1:3]
    colour_at = lambda t, h, w: resample_frames(resize_frames(frames, h, w), t)  # noqa: E731
    pixels = sample_pixels(colour_at(tc["frames"], tc["height"], tc["width"]), 5000, np.random.default_rng(0))
    unmixing, mean = fit_colour_space(pixels, seed=0)
    if size is not None:
        t, h, w = size
        volume, colour = grey(colour_at(t, h, w)), colour_at(t, h, w)
        marks = scale_landmarks(landmarks, aligned_hw, (h, w))
        return {
            "LBP-TOP": lambda: lbptop_features(volume, points=lt["points"], radii=lt["radii"], blocks=lt["blocks"]),
            "LBP-SIP": lambda: lbpsip_features(volume, radius_xy=ls["radius_xy"], radius_t=ls["radius_t"],
                                               blocks=ls["blocks"]),
            "TICS": lambda: tics_features(colour, unmixing, mean, points=tc["points"], radii=tc["radii"],
                                          blocks=tc["blocks"]),
            "MDMO": lambda: mdmo_features(volume, marks, **flow),
        }
    mdmo_marks = scale_landmarks(landmarks, aligned_hw, (md["height"], md["width"]))
    return {
        "LBP-TOP": lambda: lbptop_features(grey_volume(frames, height=lt["height"], width=lt["width"],
                                                       n_frames=lt["frames"]),
                                           points=lt["points"], radii=lt["radii"], blocks=lt["blocks"]),
        "LBP-SIP": lambda: lbpsip_features(grey_volume(frames, height=ls["height"], width=ls["width"],
                                                       n_frames=ls["frames"]),
                                           radius_xy=ls["radius_xy"], radius_t=ls["radius_t"], blocks=ls["blocks"]),
        "TICS": lambda: tics_features(colour_at(tc["frames"], tc["height"], tc["width"]), unmixing, mean,
                                      points=tc["points"], radii=tc["radii"], blocks=tc["blocks"]),
        "MDMO": lambda: mdmo_features(grey(resize_frames(frames, md["height"], md["width"])), mdmo_marks, **flow),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--aligned", type=Path, default=REPO / "data" / "casme2" / "aligned.h5",
                        help="an aligned store to take the first clip from (default: the demo's)")
    parser.add_argument("--params", type=Path, default=REPO / "params.yaml")
    parser.add_argument("--json", type=Path, help="also write the timings here")
    args = parser.parse_args()
    params = load_params(args.params)
    results: dict = {}

    # 1. LBP-TOP on a 30 x 64 x 48 volume: merflow vs scikit-image slice by slice, in alternation.
    volume = np.random.default_rng(0).integers(0, 256, (30, 64, 48)).astype(np.uint8)
    ours = lbptop_features(volume.astype(np.float32), points=(8, 8, 8), radii=(1, 1, 1), blocks=(5, 5, 1))
    reference = skimage_lbptop(volume, 8, 1, (5, 5, 1))
    difference = float(np.abs(ours - reference).max())
    assert np.allclose(ours, reference, atol=1e-6), f"merflow's LBP-TOP differs from scikit-image's by {difference}"
    times = best_ms({
        "merflow": lambda: lbptop_features(volume, points=(8, 8, 8), radii=(1, 1, 1), blocks=(5, 5, 1)),
        "skimage": lambda: skimage_lbptop(volume, 8, 1, (5, 5, 1)),
        "merflow_radii_114": lambda: lbptop_features(volume, points=(8, 8, 8), radii=(1, 1, 4), blocks=(5, 5, 1)),
    }, args.repeats)
    speedup = times["skimage"] / times["merflow"]
    results["lbptop_vs_skimage"] = {**{f"{k}_ms": round(v, 3) for k, v in times.items()},
                                    "speedup": round(speedup, 1), "max_abs_diff": difference}
    print(f"LBP-TOP, one 30x64x48 clip, P = 8 on each plane, 5x5 blocks, best of {args.repeats}")
    print(f"  features agree: {ours.size} values, max |merflow - scikit-image| = {difference:.1e}")
    print(f"  merflow (vectorised numpy), radii 1,1,1     {times['merflow']:8.2f} ms")
    print(f"  scikit-image, slice by slice, radii 1,1,1   {times['skimage']:8.2f} ms   ({speedup:.1f}x merflow's)")
    print(f"  merflow, radii 1,1,4 (params.yaml's)        {times['merflow_radii_114']:8.2f} ms")
    print(f"  goal >= {GOAL_SPEEDUP:.0f}x faster: {'met' if speedup >= GOAL_SPEEDUP else 'NOT met'}")

    # 2. Every extractor with params.yaml's settings, at 30x64x48 and at params.yaml's sizes.
    if args.aligned.is_file():
        clip = next(iter_aligned_clips(args.aligned))
        frames, landmarks, source = clip.frames, clip.landmarks, f"clip {clip.clip_id} of {args.aligned}"
    else:
        frames = synthetic_clip()
        landmarks = template_landmarks(*frames.shape[1:3])
        source = "a synthetic textured 40x256x192 clip (no aligned store)"
    lt, ls, tc, md = params["lbptop"], params["lbpsip"], params["tics"], params["mdmo"]
    sizes = {"LBP-TOP": f"{lt['frames']}x{lt['height']}x{lt['width']}",
             "LBP-SIP": f"{ls['frames']}x{ls['height']}x{ls['width']}",
             "TICS": f"{tc['frames']}x{tc['height']}x{tc['width']}x3",
             "MDMO": f"{len(frames)}x{md['height']}x{md['width']}"}
    small = extractors(frames, landmarks, params, (30, 64, 48))
    full = extractors(frames, landmarks, params, None)
    small_ms, full_ms = best_ms(small, args.repeats), best_ms(full, args.repeats)
    print(f"\nFeature extractors per clip, params.yaml's settings, from {source}; best of {args.repeats}")
    print(f"  {'method':8s} {'30x64x48 (feature only)':>24s}   {'params.yaml size (+ resize/resampling)':>40s}")
    results["extractors"] = {}
    for name in small:
        dims_small, dims_full = len(small[name]()), len(full[name]())
        print(f"  {name:8s} {small_ms[name]:10.1f} ms ({dims_small:5d} dims)   "
              f"{sizes[name]:>16s} {full_ms[name]:9.1f} ms ({dims_full:5d} dims)")
        results["extractors"][name] = {"ms_30x64x48": round(small_ms[name], 2), "dims_30x64x48": dims_small,
                                       "size": sizes[name], "ms": round(full_ms[name], 2), "dims": dims_full}
    results["source"] = source
    if args.json:
        args.json.write_text(json.dumps(results, indent=2) + "\n")


if __name__ == "__main__":
    main()
