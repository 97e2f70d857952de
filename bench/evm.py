"""EVM benchmark: merflow's magnify against the PyPI EVM packages, on the same clips, in one run.

    make bench                         # creates .venv-bench (the peers) and runs this
    .venv/bin/python bench/evm.py --repeats 5 --json /tmp/evm.json

Clips (T x H x W, deterministic): 60x224x224, 30x64x48 (the paper's aligned size) and 30x140x170, each
a face (scikit-image's astronaut photo) moving by half a pixel at 8 Hz (200 fps) with camera noise.
For every implementation and clip: frames per second (best of `repeats` runs after a warm-up: the
machine is shared, so the best run is the least disturbed one), by the wall clock and by the process's
CPU time, and agreement with merflow's output (share of values within 1 grey level). merflow runs
with one thread (the default) and with two. merflow runs here; every peer runs in the benchmark venv's
interpreter (bench/peers.py), so nothing of theirs is ever installed for users.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, os.fspath(ROOT))

from pipeline import evm  # noqa: E402  (after the path: bench/ is run as a script)

CLIP_SHAPES = [(60, 224, 224), (30, 64, 48), (30, 140, 170)]
FPS = 200.0                          # CASME II's rate; the peers with a band in Hz are given it
MOTION_HZ, MOTION_PX, NOISE_GREY = 8.0, 0.5, 1.0
MIT = dict(alpha=10, lambda_c=16, r1=0.4, r2=0.05, chrom_attenuation=0.1, exaggeration=2)
PEERS = ["vidmag-cpu", "vidmag-torch", "eulerian-magnification", "pyeulervid"]
MAX_RUNS = 500
AGREES_WITH_MIT = 0.99               # share of values within 1 grey level of merflow's (MIT-faithful) output


def bench_clip(n_frames: int, height: int, width: int, seed: int = 0) -> np.ndarray:
    """A face moving sideways by MOTION_PX * sin(2 pi MOTION_HZ t) with Gaussian camera noise, uint8 RGB."""
    from skimage import data
    face = cv2.resize(data.astronaut()[20:260, 140:340], (width, height), interpolation=cv2.INTER_AREA)
    rng = np.random.default_rng(seed)
    frames = []
    for t in range(n_frames):
        shift = MOTION_PX * math.sin(2 * math.pi * MOTION_HZ * t / FPS)
        moved = cv2.warpAffine(face.astype(np.float32), np.float32([[1, 0, shift], [0, 1, 0]]), (width, height),
                               flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REFLECT_101)
        frames.append(np.clip(np.round(moved + rng.normal(0, NOISE_GREY, moved.shape)), 0, 255))
    return np.stack(frames).astype(np.uint8)


def clip_name(shape: tuple[int, int, int]) -> str:
    return "x".join(map(str, shape))


def best_seconds(run: Callable[[], np.ndarray], repeats: int, min_seconds: float) -> tuple[dict, np.ndarray]:
    """Best wall time and best process CPU time after a warm-up, over at least `repeats` runs and as
    many more as fit in `min_seconds` (bench/peers.py times the peers by the same rule). CPU time
    counts every thread of the process, so it is the fairer figure on a busy machine for
    single-threaded code and the harsher one for multi-threaded code."""
    out = run()
    seconds: list[float] = []
    cpu_seconds: list[float] = []
    while len(seconds) < repeats or (sum(seconds) < min_seconds and len(seconds) < MAX_RUNS):
        start, cpu_start = time.perf_counter(), time.process_time()
        out = run()
        seconds.append(time.perf_counter() - start)
        cpu_seconds.append(time.process_time() - cpu_start)
    return {"seconds": min(seconds), "cpu_seconds": min(cpu_seconds), "runs": len(seconds)}, out


def agreement(got: np.ndarray, reference: np.ndarray) -> float:
    return float((np.abs(got.astype(np.int16) - reference) <= 1).mean())


def run_peer(python: Path, peer: str, clips_dir: Path, out_dir: Path, repeats: int,
             min_seconds: float) -> dict[str, dict]:
    """Run bench/peers.py for one peer in the benchmark interpreter; its records by clip name."""
    command = [os.fspath(python), os.fspath(ROOT / "bench" / "peers.py"), peer, os.fspath(clips_dir),
               os.fspath(out_dir / peer), "--repeats", str(repeats), "--min-seconds", str(min_seconds)]
    result = subprocess.run(command, capture_output=True, text=True)
    records = {}
    for line in result.stdout.splitlines():
        if line.startswith("{"):
            record = json.loads(line)
            records[record["clip"]] = record
    if result.returncode != 0 and not records:
        tail = result.stderr.strip().splitlines()[-1:] or ["no output"]
        records = {name: {"error": f"exit {result.returncode}: {tail[0][:200]}"} for name in
                   map(clip_name, CLIP_SHAPES)}
    return records


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--repeats", type=int, default=3, help="timed runs per clip at least (the best is kept)")
    parser.add_argument("--min-seconds", type=float, default=2.0, help="...and more runs until this much time")
    parser.add_argument("--bench-python", type=Path, default=ROOT / ".venv-bench" / "bin" / "python",
                        help="interpreter that has the peers installed (make bench-venv)")
    parser.add_argument("--peers", nargs="*", default=PEERS, choices=PEERS)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()

    clips = {clip_name(shape): bench_clip(*shape) for shape in CLIP_SHAPES}
    results: dict[str, dict[str, dict]] = {"merflow": {}, "merflow-2-threads": {}, "merflow-torch-cpu": {}}
    reference = {}
    timing = (args.repeats, args.min_seconds)
    for name, clip in clips.items():
        record, reference[name] = best_seconds(lambda clip=clip: evm.magnify(clip, **MIT), *timing)
        results["merflow"][name] = {**record, "agreement": 1.0}
        print(f"merflow {name}: {len(clip) / record['seconds']:.0f} fps", file=sys.stderr)
    for name, clip in clips.items():
        record, out = best_seconds(lambda clip=clip: evm.magnify(clip, **MIT, threads=2), *timing)
        results["merflow-2-threads"][name] = {**record, "agreement": agreement(out, reference[name])}
    for name, clip in clips.items():
        record, out = best_seconds(lambda clip=clip: evm.magnify(clip, **MIT, device="cpu"), *timing)
        results["merflow-torch-cpu"][name] = {**record, "agreement": agreement(out, reference[name])}
    try:
        import torch
        has_cuda = torch.cuda.is_available()
    except ImportError:
        has_cuda = False
    if has_cuda:
        results["merflow-torch-cuda"] = {}
        for name, clip in clips.items():
            def on_gpu(clip: np.ndarray = clip) -> np.ndarray:
                out = evm.magnify(clip, **MIT, device="cuda")
                torch.cuda.synchronize()
                return out
            record, out = best_seconds(on_gpu, *timing)
            results["merflow-torch-cuda"][name] = {**record, "agreement": agreement(out, reference[name])}

    if not args.bench_python.exists():
        print(f"{args.bench_python} not found: the peers are not timed (make bench creates it)", file=sys.stderr)
        args.peers = []
    with tempfile.TemporaryDirectory(prefix="merflow-evm-bench-") as tmp:
        clips_dir, out_dir = Path(tmp) / "clips", Path(tmp) / "out"
        clips_dir.mkdir()
        for name, clip in clips.items():
            np.save(clips_dir / f"{name}.npy", clip)
        for peer in args.peers:
            print(f"timing {peer} ...", file=sys.stderr)
            results[peer] = run_peer(args.bench_python, peer, clips_dir, out_dir, *timing)
            for name, record in results[peer].items():
                if "seconds" in record:
                    record["agreement"] = agreement(np.load(out_dir / peer / f"{name}.npy"), reference[name])

    for records in results.values():
        for name, record in records.items():
            if "seconds" in record:
                record["fps"] = int(name.split("x")[0]) / record["seconds"]
                record["cpu_fps"] = int(name.split("x")[0]) / record["cpu_seconds"]
    print("frames per second, best wall time:")
    print(markdown_table(results, has_cuda, "fps"))
    print("\nframes per second, best process CPU time (all threads):")
    print(markdown_table(results, has_cuda, "cpu_fps"))
    if args.json:
        args.json.write_text(json.dumps({"results": results, "cpu_count": os.cpu_count(),
                                         "repeats": args.repeats}, indent=2))


def markdown_table(results: dict[str, dict[str, dict]], has_cuda: bool, fps: str = "fps") -> str:
    """frames per second (agreement with merflow) per implementation and clip, then merflow's (one
    thread) speed-up over the fastest peer that agrees with MIT and over the fastest peer of all;
    `fps` picks the figure: "fps" (wall time) or "cpu_fps" (process CPU time)."""
    names = [clip_name(shape) for shape in CLIP_SHAPES]
    lines = ["| implementation | " + " | ".join(f"{name} fps (agreement)" for name in names) + " |",
             "|---|" + "---|" * len(names)]
    for implementation, records in results.items():
        cells = []
        for name in names:
            record = records.get(name, {"error": "not run"})
            cells.append(f"{record[fps]:.0f} ({100 * record['agreement']:.1f} %)" if fps in record
                         else f"fails: {record['error'][:60]}")
        lines.append(f"| {implementation} | " + " | ".join(cells) + " |")
    if not has_cuda:
        lines.append("| merflow-torch-cuda | " + " | ".join(["not measured: no GPU"] * len(names)) + " |")
    peers = [key for key in results if not key.startswith("merflow")]
    for label, agreeing_only in (("x fastest peer that agrees with MIT", True), ("x fastest peer", False)):
        cells = []
        for name in names:
            rivals = [results[peer][name][fps] for peer in peers if fps in results[peer].get(name, {})
                      and (results[peer][name]["agreement"] >= AGREES_WITH_MIT or not agreeing_only)]
            cells.append(f"{results['merflow'][name][fps] / max(rivals):.1f}x" if rivals else "no such peer")
        lines.append(f"| merflow {label} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
