"""Benchmark: the flow stage per clip and the flow networks' training per fold.

    .venv/bin/python bench/flow.py [--repeats 5] [--epochs 20] [--threads 1] [--only flow|train] [--json out.json]

1. Flow per clip at CASME II's aligned size (align.height x align.width of params.yaml, 256 x 192): a
   textured face whose centre moves 1.5 px between onset and apex; TV-L1 alone (flow.* of params.yaml),
   and everything the stage does per clip (apex estimate over a 40-frame clip, TV-L1, strain, resizing to
   flow.sizes, the QC image). Best of --repeats, milliseconds per clip, by the wall clock and by the
   process's CPU time.
2. Training per fold on a CASME II-sized fold (kfold5 of 256 clips: 205 training clips, 51 test clips,
   28 x 28 inputs, 4 classes): --epochs epochs of each network timed, then projected to the epochs of
   params.yaml (STSTNet 500, OFF-ApexNet 3000), plus predicting the test clips.

On a shared machine the wall clock says as much about the other jobs as about the code: the CPU time
per thread is printed beside it.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path

import cv2
import numpy as np
import torch

from pipeline.apex import estimate_apex
from pipeline.baselines.flownets import build_network, fit_network, network_inputs, parameter_count
from pipeline.config import load_params
from pipeline.flow import (
    FLOW_METHODS,
    flow_channels,
    flow_qc_image,
    flow_solver,
    onset_apex_flow,
    optical_strain,
    tvl1_solver,
)

REPO = Path(__file__).resolve().parent.parent
SOLVER_KEYS = ("tau", "data_weight", "theta", "scales", "warps", "epsilon", "inner_iterations", "outer_iterations",
               "scale_step", "median_filtering")


def best(function: Callable[[], object], repeats: int) -> tuple[float, float]:
    """Best wall and CPU milliseconds of `repeats` calls (after one warm-up call)."""
    function()
    walls, cpus = [], []
    for _ in range(repeats):
        wall, cpu = time.perf_counter(), time.process_time()
        function()
        walls.append(time.perf_counter() - wall)
        cpus.append(time.process_time() - cpu)
    return 1000 * min(walls), 1000 * min(cpus)


def moving_clip(height: int, width: int, n_frames: int = 40, seed: int = 0) -> np.ndarray:
    """uint8 (T, H, W, 3): a textured face whose centre moves up to 1.5 px right at the middle frame."""
    noise = cv2.GaussianBlur(np.random.default_rng(seed).random((height, width)).astype(np.float32), (0, 0), 2.0)
    face = (noise - noise.mean()) / noise.std() * 30 + 128
    frames = []
    for t in range(n_frames):
        step = 1.5 * (1 - abs(t - n_frames // 2) / (n_frames // 2))
        moved = cv2.warpAffine(face, np.float32([[1, 0, step], [0, 1, 0]]), (width, height),
                               borderMode=cv2.BORDER_REFLECT)
        frame = face.copy()
        frame[height // 4:3 * height // 4, width // 4:3 * width // 4] = \
            moved[height // 4:3 * height // 4, width // 4:3 * width // 4]
        frames.append(np.clip(frame, 0, 255))
    grey = np.stack(frames).astype(np.uint8)
    return np.repeat(grey[..., None], 3, axis=-1)


def bench_flow(params: dict, repeats: int) -> list[dict]:
    height, width = params["align"]["height"], params["align"]["width"]
    flow_params = params["flow"]
    solver = tvl1_solver(**{key: flow_params[key] for key in SOLVER_KEYS})
    clip = moving_clip(height, width)
    apex = len(clip) // 2

    def per_clip() -> None:
        used = estimate_apex(clip, 200.0)
        flow = onset_apex_flow(clip[0], clip[used], solver)
        for size in flow_params["sizes"]:
            flow_channels(flow, size)
        flow_qc_image("clip", clip[0], flow, used)

    flow = onset_apex_flow(clip[0], clip[apex], solver)
    rows = []
    for name, function in (("TV-L1 onset -> apex", lambda: onset_apex_flow(clip[0], clip[apex], solver)),
                           ("strain + resize", lambda: [flow_channels(flow, s) for s in flow_params["sizes"]]
                            and optical_strain(flow)),
                           ("whole clip (stage)", per_clip)):
        wall, cpu = best(function, repeats)
        rows.append({"what": name, "size": f"{height}x{width}", "ms_wall": round(wall, 1), "ms_cpu": round(cpu, 1)})
    for method in FLOW_METHODS:             # flow.method: each solver on the same pair, and how far from TV-L1
        other = flow_solver(method, dis_preset=flow_params.get("dis_preset", "medium"),
                            farneback=flow_params.get("farneback", {}),
                            **{key: flow_params[key] for key in SOLVER_KEYS})
        wall, cpu = best(lambda other=other: onset_apex_flow(clip[0], clip[apex], other), repeats)
        difference = np.linalg.norm(onset_apex_flow(clip[0], clip[apex], other) - flow, axis=-1).mean()
        rows.append({"what": f"flow.method {method} (mean end-point difference from TV-L1: {difference:.3f} px)",
                     "size": f"{height}x{width}", "ms_wall": round(wall, 1), "ms_cpu": round(cpu, 1)})
    centre = flow[height // 3:2 * height // 3, width // 3:2 * width // 3, 0]
    rows.append({"what": "check: median u at the centre (1.5 px moved)", "size": "", "ms_wall": round(
        float(np.median(centre)), 3), "ms_cpu": None})
    return rows


def bench_training(params: dict, epochs: int, threads: int) -> list[dict]:
    torch.set_num_threads(threads)
    rng = np.random.default_rng(0)
    n_train, n_test, n_classes = 205, 51, 4
    rows = []
    for method in ("ststnet", "off_apexnet"):
        settings = params[method]
        size = settings["input_size"]
        flow = rng.normal(size=(n_train + n_test, 3, size, size)).astype(np.float32)
        x = torch.from_numpy(network_inputs(method, flow))
        y = torch.from_numpy(rng.integers(0, n_classes, n_train + n_test))
        torch.manual_seed(0)
        model = build_network(method, n_classes, size, settings["dropout"])
        wall, cpu = time.perf_counter(), time.process_time()
        fit_network(model, x[:n_train], y[:n_train], epochs=epochs, lr=settings["lr"],
                    batch_size=settings["batch_size"], seed=0, desc=method)
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        model.eval()
        start = time.perf_counter()
        with torch.inference_mode():
            model(x[n_train:]).softmax(dim=1)
        predict = time.perf_counter() - start
        per_epoch_wall, per_epoch_cpu = wall / epochs, cpu / epochs / threads
        rows.append({"method": method, "parameters": parameter_count(model), "train_clips": n_train,
                     "threads": threads, "ms_per_epoch_wall": round(1000 * per_epoch_wall, 1),
                     "ms_per_epoch_cpu_per_thread": round(1000 * per_epoch_cpu, 1), "epochs": settings["epochs"],
                     "fold_s_wall": round(per_epoch_wall * settings["epochs"] + predict, 1),
                     "fold_s_cpu_per_thread": round(per_epoch_cpu * settings["epochs"], 1),
                     "predict_ms": round(1000 * predict, 1)})
    return rows


def print_table(rows: list[dict]) -> None:
    if not rows:
        return
    columns = list(rows[0])
    widths = {c: max(len(c), *(len(str(r[c])) for r in rows)) for c in columns}
    print("  ".join(c.ljust(widths[c]) for c in columns))
    for row in rows:
        print("  ".join(str(row[c]).ljust(widths[c]) for c in columns))
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--epochs", type=int, default=20, help="epochs timed per network (projected to params')")
    parser.add_argument("--threads", type=int, default=1, help="torch threads for training (flownets' `threads`)")
    parser.add_argument("--only", choices=("flow", "train"))
    parser.add_argument("--json", type=Path)
    args = parser.parse_args()
    params = load_params(REPO / "params.yaml")
    result: dict[str, list[dict]] = {}
    if args.only in (None, "flow"):
        result["flow"] = bench_flow(params, args.repeats)
        print_table(result["flow"])
    if args.only in (None, "train"):
        result["train"] = bench_training(params, args.epochs, args.threads)
        print_table(result["train"])
    if args.json:
        args.json.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
