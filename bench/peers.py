"""Run one PyPI EVM package on the benchmark clips and time it (bench/evm.py calls this).

This script runs in the benchmark's own interpreter (.venv-bench, Python 3.12, made by `make bench`),
never in merflow's: the peers and their dependencies (a CUDA build of torch among them) are installed
only to be measured. It imports nothing from merflow.

    .venv-bench/bin/python bench/peers.py PEER CLIPS_DIR OUT_DIR --repeats 3 --min-seconds 2

CLIPS_DIR holds `<name>.npy` uint8 (T, H, W, 3) RGB clips; for every clip the peer's output is saved
as OUT_DIR/<name>.npy (uint8 RGB) and one JSON line per clip goes to stdout: the best wall time and
the best process CPU time after one warm-up run, over at least `repeats` runs and as many more as
fit in `min_seconds` (the rule bench/evm.py times merflow by), or the error the peer raised.

Every peer gets the settings nearest to MIT's amplify_spatial_lpyr_temporal_iir call (alpha = 10,
lambda_c = 16, r1 = 0.4, r2 = 0.05, chrominance x 0.1) at CASME II's 200 fps. Peers that take a band in
Hz get the band of the r1/r2 low-passes: a first-order low-pass that keeps a share r of every new
frame has the time constant of an analogue low-pass with cut-off -ln(1 - r) fps / (2 pi), i.e.
1.63 Hz (r2) to 16.3 Hz (r1) at 200 fps.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path

import numpy as np

FPS = 200.0
MAX_RUNS = 500
ALPHA, LAMBDA_C, R1, R2, CHROM_ATTENUATION = 10.0, 16.0, 0.4, 0.05, 0.1
FREQ_LOW_HZ = -math.log(1 - R2) * FPS / (2 * math.pi)
FREQ_HIGH_HZ = -math.log(1 - R1) * FPS / (2 * math.pi)


def pyramid_levels(height: int, width: int) -> int:
    """MIT's buildLpyr(frame, 'auto') depth, 1 + maxPyrHt, for the peers that need a level count."""
    levels = 1
    while height >= 5 and width >= 5:
        levels += 1
        height, width = height // 2, width // 2
    return levels


def vidmag_cpu(rgb: np.ndarray) -> np.ndarray:
    """vidmag's NumPy oracle of amplify_spatial_lpyr_temporal_iir (BGR in and out)."""
    from vidmag.cpu.magnify import motion_lpyr_iir_core
    out = motion_lpyr_iir_core(np.ascontiguousarray(rgb[..., ::-1]), FPS, alpha=ALPHA, lambda_c=LAMBDA_C,
                               r1=R1, r2=R2, chrom_attenuation=CHROM_ATTENUATION)
    return out[..., ::-1]


def vidmag_torch(rgb: np.ndarray) -> np.ndarray:
    """The same pipeline on vidmag's PyTorch backend (here on the CPU: no GPU)."""
    import vidmag
    out = vidmag.magnify(np.ascontiguousarray(rgb[..., ::-1]), preset="motion", backend="torch", fps=FPS,
                         alpha=ALPHA, lambda_c=LAMBDA_C, r1=R1, r2=R2, chrom_attenuation=CHROM_ATTENUATION)
    return out[..., ::-1]


def eulerian_magnification(rgb: np.ndarray) -> np.ndarray:
    """brycedrennan's package: RGB, an ideal (FFT) band-pass, one gain on the middle levels."""
    from eulerian_magnification import eulerian_magnification as magnify
    out = magnify(rgb / 255.0, fps=FPS, freq_min=FREQ_LOW_HZ, freq_max=FREQ_HIGH_HZ, amplification=ALPHA,
                  pyramid_levels=4, skip_levels_at_top=2)
    return np.floor(np.clip(out, 0, 1) * 255 + 0.5).astype(np.uint8)


def pyeulervid(rgb: np.ndarray) -> np.ndarray:
    """pyeulervid's MotionMagnifier (PyTorch on the CPU): YIQ, Butterworth band-pass, its own gains."""
    import torch
    from loguru import logger
    from pyevm import MotionMagnifier
    logger.remove()                      # it logs every call at INFO
    levels = pyramid_levels(*rgb.shape[1:3])
    magnifier = MotionMagnifier(alpha=ALPHA, freq_low=FREQ_LOW_HZ, freq_high=FREQ_HIGH_HZ, n_levels=levels,
                                lambda_c=LAMBDA_C)
    frames = torch.from_numpy(rgb).permute(0, 3, 1, 2).float() / 255
    with torch.no_grad():
        out = magnifier.process(frames, FPS)
    return (out.permute(0, 2, 3, 1).numpy() * 255 + 0.5).astype(np.uint8)


PEERS: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "vidmag-cpu": vidmag_cpu,
    "vidmag-torch": vidmag_torch,
    "eulerian-magnification": eulerian_magnification,
    "pyeulervid": pyeulervid,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("peer", choices=sorted(PEERS))
    parser.add_argument("clips_dir", type=Path)
    parser.add_argument("out_dir", type=Path)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--min-seconds", type=float, default=2.0)
    args = parser.parse_args()
    magnify = PEERS[args.peer]
    args.out_dir.mkdir(parents=True, exist_ok=True)
    for path in sorted(args.clips_dir.glob("*.npy")):
        clip = np.load(path)
        record: dict = {"peer": args.peer, "clip": path.stem}
        try:
            out = magnify(clip)          # warm-up: imports, allocator, thread pools
            seconds: list[float] = []
            cpu_seconds: list[float] = []
            while len(seconds) < args.repeats or (sum(seconds) < args.min_seconds and len(seconds) < MAX_RUNS):
                start, cpu_start = time.perf_counter(), time.process_time()
                out = magnify(clip)
                seconds.append(time.perf_counter() - start)
                cpu_seconds.append(time.process_time() - cpu_start)
            if out.shape != clip.shape or out.dtype != np.uint8:
                raise ValueError(f"returned {out.dtype} {out.shape} for {clip.shape}")
            np.save(args.out_dir / path.name, out)
            record.update(seconds=min(seconds), cpu_seconds=min(cpu_seconds), runs=len(seconds))
        except Exception as error:       # a peer that fails on a clip is a result, not a crash
            record["error"] = f"{type(error).__name__}: {error}".splitlines()[0][:200]
            traceback.print_exc(file=sys.stderr)
        print(json.dumps(record), flush=True)


if __name__ == "__main__":
    main()
