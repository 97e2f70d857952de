"""Benchmark: a flow network's leave-one-subject-out folds trained together (pipeline/baselines/stacked.py)
against one fold at a time, on data of the MEGC 2019 composite's size.

    .venv/bin/python bench/flow_folds.py --method ststnet --epochs 3 --sample-folds 4 --threads 2 [--folds-per-pass 8]

The data: 442 clips of random 28 x 28 flow from 68 subjects (the composite's counts), 3 classes; the
folds: one per subject. Both ways run the same schedule (Adam at the method's lr, batch 256) for
--epochs epochs and the time per epoch is projected to the method's params.yaml schedule:

- together: every fold, --folds-per-pass folds stacked at a time (`train_folds`; each fold's test clips
  scored after every epoch, as the stage records them);
- alone: `fit_network` on --sample-folds of the folds, one at a time in this process, times 68; plus
  what a per-fold job adds, the start of a Python process that imports the fold stage's module with
  torch (timed with --startup-runs runs).

The number of floating-point operations per epoch is counted from the network's layers, so the table
says what fraction of the CPU's peak each way reaches (the peak: a 2048 x 2048 float32 matrix product).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time

import numpy as np
import torch

from pipeline.baselines.flownets import build_network, fit_network
from pipeline.baselines.stacked import FOLDS_PER_PASS, train_folds
from pipeline.devices import keep_freed_memory

CLIPS, SUBJECTS, CLASSES, SIZE = 442, 68, 3, 28
SCHEDULE = {"ststnet": (500, 5e-5), "off_apexnet": (3000, 1e-4)}


def composite_like(method: str, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor, list[torch.Tensor]]:
    rng = np.random.default_rng(seed)
    channels = 3 if method == "ststnet" else 2
    x = torch.from_numpy(rng.uniform(0, 255, (CLIPS, channels, SIZE, SIZE)).astype(np.float32))
    y = torch.from_numpy(rng.integers(0, CLASSES, CLIPS))
    subject = np.concatenate([np.arange(SUBJECTS), rng.integers(0, SUBJECTS, CLIPS - SUBJECTS)])
    return x, y, [torch.from_numpy(np.flatnonzero(subject != s)) for s in range(SUBJECTS)]


def flops_per_clip(method: str) -> float:
    """Multiply-adds of one forward pass, times 2 (FLOPs), times 3 (forward, and the backward's two
    products; the first convolution's input needs no gradient, which this ignores)."""
    if method == "ststnet":
        macs = 16 * 3 * 9 * 30 * 30 + 400 * CLASSES
    else:
        macs = 2 * (6 * 25 * 28 * 28 + 16 * 6 * 25 * 14 * 14) + 1568 * 1024 + 1024 * 1024 + 1024 * CLASSES
    return 2.0 * macs * 3


def peak_gflops(threads: int) -> float:
    a, b = torch.rand(2048, 2048), torch.rand(2048, 2048)
    a @ b
    started = time.perf_counter()
    for _ in range(5):
        a @ b
    return 2 * 2048 ** 3 * 5 / (time.perf_counter() - started) / 1e9


def startup_seconds(runs: int) -> float:
    code = "import pipeline.baselines.flownets, pipeline.flow, pipeline.fold_results"
    times = []
    for _ in range(runs):
        started = time.perf_counter()
        subprocess.run([sys.executable, "-c", code], check=True)
        times.append(time.perf_counter() - started)
    return float(np.median(times))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--method", choices=list(SCHEDULE), default="ststnet")
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--allocator", choices=("keep", "default"), default="keep",
                        help="keep: glibc keeps freed memory, as the training stages set it; default: glibc's own")
    parser.add_argument("--sample-folds", type=int, default=4)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--folds-per-pass", type=int, default=FOLDS_PER_PASS)
    parser.add_argument("--startup-runs", type=int, default=3)
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.allocator == "keep":
        keep_freed_memory()             # as the training stages do (pipeline/devices.py)
    schedule, lr = SCHEDULE[args.method]
    x, y, train_rows = composite_like(args.method)

    started = time.perf_counter()
    test_rows = [torch.from_numpy(np.setdiff1d(np.arange(len(x)), rows.numpy())) for rows in train_rows]
    train_folds(args.method, x, y, train_rows, test_rows, folds_per_pass=args.folds_per_pass, n_classes=CLASSES,
                input_size=SIZE, dropout=0.5, epochs=args.epochs, lr=lr, batch_size=256, seed=0, desc="together")
    together = (time.perf_counter() - started) / args.epochs

    alone = []
    for fold in range(args.sample_folds):
        torch.manual_seed(0)
        model = build_network(args.method, CLASSES, SIZE, 0.5)
        started = time.perf_counter()
        fit_network(model, x[train_rows[fold]], y[train_rows[fold]], epochs=args.epochs, lr=lr, batch_size=256,
                    seed=0, desc=f"fold {fold}")
        alone.append((time.perf_counter() - started) / args.epochs)
    alone_epoch = float(np.mean(alone)) * SUBJECTS
    startup = startup_seconds(args.startup_runs)
    work = flops_per_clip(args.method) * sum(len(r) for r in train_rows) / 1e9      # GFLOP per epoch, all folds
    peak = peak_gflops(args.threads)
    result = {
        "method": args.method, "threads": args.threads, "folds_per_pass": args.folds_per_pass,
        "epochs_timed": args.epochs, "schedule": schedule,
        "together_s_per_epoch": round(together, 3), "alone_s_per_epoch_all_folds": round(alone_epoch, 3),
        "job_start_s": round(startup, 2), "together_projected_min": round(together * schedule / 60, 1),
        "alone_projected_min": round((alone_epoch * schedule + SUBJECTS * startup) / 60, 1),
        "gflop_per_epoch": round(work, 1), "together_gflops": round(work / together, 1),
        "alone_gflops": round(work / alone_epoch, 1), "peak_gflops": round(peak, 1)}
    result["ratio"] = round(result["alone_projected_min"] / result["together_projected_min"], 2)
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
