"""Training throughput of the RCNN: samples per second for one SGD step (forward + backward + step) on
batches of 64 paper-sized clips (1966 x 30 x 3, uint8, channels_last), for M = 32, 64, 128 feature maps,
fp32 and bf16 autocast, on the CPU and on CUDA when torch sees one; then the projected wall time of the
full paper run (SMIC, CASME, CASME II: 164 + 195 + 256 clips, 5 folds, 48 jittered tensors per clip,
the paper's 4 epochs, plus testing every clip's 48 tensors once).

    .venv/bin/python bench/train.py                       # CPU (and CUDA if present), M = 32 64 128
    .venv/bin/python bench/train.py --maps 32 --steps 5 --repeats 3 --threads 2
    .venv/bin/python bench/train.py --compile             # also torch.compile'd models
    .venv/bin/python bench/train.py --loader /tmp/store   # HDF5 streaming alone: can it feed a GPU?

It calls the training code's own pieces (pipeline.devices.autocast, to_device_images) on random uint8
batches already in host memory: HDF5 reading is not measured (it runs in a thread beside training);
`--loader DIR` measures it apart, on a paper-sized store written to DIR.
Each figure is the best of --repeats timings of --steps steps, after 2 warm-up steps; on a shared
machine the best is the least disturbed. Results go to stdout as a table and, with --json, to a file.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from pipeline.devices import autocast, resolve_device, to_device_images  # noqa: E402
from pipeline.model import RCNN, RCNNConfig  # noqa: E402
from pipeline.train import sgd_step  # noqa: E402

PAPER_CLIPS = {"smic": 164, "casme": 195, "casme2": 256}   # Sec. III-B
FOLDS, VARIANTS, EPOCHS = 5, 48, 4                         # 5-fold CV, 6 x 8 jitter, lr 1e-3 halved to < 1e-4
PIXELS, FRAMES = 1966, 30


def paper_run_samples() -> tuple[int, int]:
    """(training samples, test samples) of the whole paper run for one method: every fold trains on
    the other 4/5 of the clips for EPOCHS epochs and tests its own fifth once."""
    clips = sum(PAPER_CLIPS.values())
    train = clips * (FOLDS - 1) * VARIANTS * EPOCHS       # each clip is in the training set of 4 folds
    test = clips * VARIANTS
    return train, test


def train_flops_per_sample(config: RCNNConfig) -> float:
    """Floating-point operations of one training sample (forward + backward), counted by torch's
    FlopCounterMode (convolutions and the linear layer; the elementwise work is not counted)."""
    from torch.utils.flop_counter import FlopCounterMode

    model = RCNN(config)
    sample = torch.zeros(1, 3, config.pixels, config.frames, dtype=torch.uint8)
    with FlopCounterMode(display=False) as counter:
        torch.nn.functional.cross_entropy(model(sample), torch.zeros(1, dtype=torch.int64)).backward()
    return float(counter.get_total_flops())


def time_steps(model: torch.nn.Module, device: torch.device, precision: str, batch_size: int, steps: int,
               repeats: int, train: bool) -> tuple[float, float]:
    """Best samples/s over `repeats` timings of `steps` training steps (or forward-only test batches),
    by the wall clock and by this process's CPU time divided by the thread count. On a machine shared
    with other work the wall clock undercounts; the CPU-time figure is what the threads would reach
    had they had the cores to themselves (it ignores waiting, so it overcounts when threads idle)."""
    rng = np.random.default_rng(0)
    batch = rng.integers(0, 256, (batch_size, 3, PIXELS, FRAMES), dtype=np.uint8)
    labels = rng.integers(0, model.config.n_classes, batch_size)
    optimizer = torch.optim.SGD(model.parameters(), lr=1e-3, momentum=0.9, weight_decay=5e-4)

    def step() -> None:
        if train:
            sgd_step(model, optimizer, batch, labels, device, precision)
        else:
            with torch.inference_mode(), autocast(device, precision):
                model(to_device_images(batch, device))

    model.train(train)
    for _ in range(2):                                    # warm-up: allocator, oneDNN/cuDNN plans, compile
        step()
    best = best_cpu = 0.0
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started, cpu_started = time.perf_counter(), time.process_time()
        for _ in range(steps):
            step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        best = max(best, steps * batch_size / (time.perf_counter() - started))
        best_cpu = max(best_cpu, steps * batch_size * torch.get_num_threads() / (time.process_time() - cpu_started))
    return best, best_cpu


def write_task(directory: Path, n_clips: int = 72, n_classes: int = 3, variants: int = 8, pixels: int = 400,
               frames: int = 16, amplitude: int = 10, seed: int = 0) -> tuple[Path, Path]:
    """A small recognition task with a faint signal: class c brightens a band of pixels in frames
    4c..4c+5 by `amplitude` grey levels over noise of +-40; 3 folds of 24 clips, 4 subjects per fold."""
    import h5py
    import pandas as pd

    rng = np.random.default_rng(seed)
    labels = np.arange(n_clips) % n_classes
    x = rng.integers(60, 140, (n_clips, variants, 3, pixels, frames), dtype=np.uint8)
    for i, label in enumerate(labels):
        start, first = rng.integers(0, pixels - 150), 4 * label + rng.integers(0, 2, variants)
        for v in range(variants):
            x[i, v, :, start:start + 150, first[v]:first[v] + 5] += amplitude
    classes = [f"class{c}" for c in range(n_classes)]
    subjects, clip_ids = [f"s{i // 6}" for i in range(n_clips)], [f"clip{i:03d}" for i in range(n_clips)]
    directory.mkdir(parents=True, exist_ok=True)
    with h5py.File(directory / "tensors.h5", "w") as h5:
        h5.create_dataset("x", data=x, chunks=(1, *x.shape[1:]))
        h5["clip_id"], h5["subject"] = clip_ids, subjects
        h5["label"], h5["label_index"] = [classes[c] for c in labels], labels.astype(np.int64)
        h5.attrs["classes"] = json.dumps(classes)
    pd.DataFrame({"clip_id": clip_ids, "subject": subjects, "label": [classes[c] for c in labels],
                  "fold": [i // 6 % 3 for i in range(n_clips)]}).to_csv(directory / "folds.csv", index=False)
    return directory / "tensors.h5", directory / "folds.csv"


def compare_precisions(directory: Path, seeds: list[int], threads: int) -> None:
    """Accuracy of fp32 and bf16 training on the faint task (3 folds x seeds), and whether bf16
    training is deterministic on the CPU (two runs with the same seed, byte-identical predictions)."""
    from pipeline.train import train_fold_stage

    tensors, folds = write_task(directory)
    params = dict(method="rcnn", maps=8, recurrent_steps=3, batch_size=32, lr=0.01, lr_decay=0.8,
                  min_lr=0.001, max_epochs=6, momentum=0.9, weight_decay=5e-4, device="cpu", threads=threads)
    for precision in ("fp32", "bf16"):
        accuracies = []
        for seed in seeds:
            for fold in range(3):
                out = directory / f"{precision}_seed{seed}_fold{fold}"
                train_fold_stage(tensors, folds, fold, out, seed=seed, precision=precision, **params)
                accuracies.append(json.loads((out / "metrics.json").read_text())["accuracy"])
        print(f"{precision}: accuracy {np.mean(accuracies):.3f} +- {np.std(accuracies, ddof=1):.3f} "
              f"over {len(accuracies)} folds ({len(seeds)} seeds x 3; chance 0.333): "
              + " ".join(f"{a:.2f}" for a in accuracies), flush=True)
    again = directory / "bf16_again"
    train_fold_stage(tensors, folds, 0, again, seed=seeds[0], precision="bf16", **params)
    same = (again / "predictions.csv").read_bytes() == \
        (directory / f"bf16_seed{seeds[0]}_fold0" / "predictions.csv").read_bytes()
    print(f"bf16 on CPU, same seed twice: predictions {'byte-identical' if same else 'DIFFER'}")


def drop_page_cache() -> None:
    """Empty the kernel's page cache (root only), so that the next read comes from the disk."""
    os.sync()
    try:
        Path("/proc/sys/vm/drop_caches").write_text("1\n")
    except OSError as error:
        raise SystemExit(f"--cold empties the page cache through /proc/sys/vm/drop_caches, which needs root: "
                         f"{error}") from error


def time_loader(directory: Path, n_clips: int, batch_size: int, repeats: int, cold: bool = False) -> dict:
    """Samples/s that the training loop's own loader (`shuffled_batches`: clips read from HDF5 by a
    thread, shuffled in a buffer, cut into batches, each batch then copied once more, as `to_device`
    copies it into pinned memory on CUDA) delivers with no model to feed: the ceiling it puts on
    training on any device.

    The store is paper-sized (n_clips x 48 variants x 3 x 1966 x 30 uint8, one chunk per clip, as
    the tensors stage writes it, ~8.5 MB a clip). Without `cold` every epoch reads it from the page
    cache, as a machine with the RAM for the store does from the second epoch on; with `cold` the
    page cache is emptied before each epoch (root only), so the store comes from the disk. The best
    of `repeats` epochs is reported."""
    import h5py

    from pipeline.loader import SHUFFLE_BUFFER_BYTES, shuffled_batches

    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "loader.h5"
    clip_shape = (VARIANTS, 3, PIXELS, FRAMES)
    rng = np.random.default_rng(0)
    with h5py.File(path, "w") as h5:
        x = h5.create_dataset("x", shape=(n_clips, *clip_shape), dtype=np.uint8, chunks=(1, *clip_shape))
        clip = rng.integers(0, 256, clip_shape, dtype=np.uint8)
        for row in range(n_clips):
            x[row] = np.roll(clip, row, axis=-1)
    clip_bytes = int(np.prod(clip_shape))
    clips_per_buffer = max(1, SHUFFLE_BUFFER_BYTES // clip_bytes)
    labels = np.arange(n_clips) % 4
    best = 0.0
    with h5py.File(path, "r") as h5:
        for _ in range(repeats):
            if cold:
                drop_page_cache()
            started, seen = time.perf_counter(), 0
            for samples, _, _ in shuffled_batches(h5["x"], np.arange(n_clips), labels, batch_size, rng,
                                                  clips_per_buffer):
                torch.from_numpy(samples).clone()        # stands in for the copy into pinned memory
                seen += len(samples)
            assert seen == n_clips * VARIANTS
            best = max(best, seen / (time.perf_counter() - started))
    path.unlink()
    return {"clips": n_clips, "cold": cold, "store_gb": round(n_clips * clip_bytes / 1e9, 2),
            "clips_per_buffer": clips_per_buffer, "samples_per_s": round(best, 1),
            "mb_per_s": round(best * clip_bytes / VARIANTS / 1e6, 1)}


def hours(seconds: float) -> str:
    return f"{seconds / 3600:.2f} h" if seconds >= 3600 else f"{seconds / 60:.1f} min"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--maps", type=int, nargs="+", default=[32, 64, 128])
    parser.add_argument("--precisions", nargs="+", default=["fp32", "bf16"], choices=["fp32", "bf16"])
    parser.add_argument("--devices", nargs="+", default=None, help="cpu, cuda (default: cpu, and cuda if present)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--steps", type=int, default=3, help="timed steps per repeat (CPU); x10 on CUDA")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2, help="CPU threads (torch.set_num_threads)")
    parser.add_argument("--recurrent-steps", type=int, default=3)
    parser.add_argument("--compile", action="store_true", help="also time torch.compile'd models")
    parser.add_argument("--json", type=Path, help="write the results here too")
    parser.add_argument("--accuracy", type=Path, metavar="DIR",
                        help="instead: compare fp32 and bf16 accuracy on a small faint task written to DIR")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1])
    parser.add_argument("--loader", type=Path, metavar="DIR",
                        help="instead: time the HDF5 loader alone on a paper-sized store written to DIR")
    parser.add_argument("--loader-clips", type=int, default=128, help="clips in the --loader store")
    parser.add_argument("--cold", action="store_true",
                        help="--loader: empty the page cache before each epoch (root only): read from disk")
    args = parser.parse_args()
    if args.loader:
        torch.set_num_threads(args.threads)
        result = time_loader(args.loader, args.loader_clips, args.batch_size, args.repeats, args.cold)
        train_samples, _ = paper_run_samples()
        source = "disk" if args.cold else "page cache"
        print(f"loader ({source}): {result['samples_per_s']:.0f} samples/s ({result['mb_per_s']:.0f} MB/s) over "
              f"{result['clips']} clips ({result['store_gb']} GB, {result['clips_per_buffer']} clips a buffer), "
              f"best of {args.repeats} epochs; the paper run's {train_samples:,} training samples at that "
              f"rate: {hours(train_samples / result['samples_per_s'])}")
        if args.json:
            args.json.write_text(json.dumps({"torch": torch.__version__, "loader": result}, indent=2) + "\n")
        return
    if args.accuracy:
        torch.set_num_threads(args.threads)
        compare_precisions(args.accuracy, args.seeds, args.threads)
        return

    torch.set_num_threads(args.threads)
    torch.backends.cudnn.benchmark = True
    devices = args.devices or ["cpu"] + (["cuda"] if torch.cuda.is_available() else [])
    train_samples, test_samples = paper_run_samples()
    cpu_name = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                     if line.startswith("model name")), platform.processor()) if Path("/proc/cpuinfo").exists() \
        else platform.processor()
    print(f"torch {torch.__version__}; CPU: {cpu_name}, {args.threads} threads; "
          f"native CPU bf16: {torch.ops.mkldnn._is_mkldnn_bf16_supported()}"
          + (f"; CUDA: {torch.cuda.get_device_name()}" if torch.cuda.is_available() else "; no CUDA"))
    print(f"paper run per method: {train_samples:,} training samples "
          f"({sum(PAPER_CLIPS.values())} clips x {FOLDS - 1} training folds x {VARIANTS} x {EPOCHS} epochs), "
          f"{test_samples:,} test samples\n")
    print(f"{'device':6} {'M':>4} {'precision':9} {'compiled':8} {'train/s':>9} {'(by CPU)':>9} {'TFLOP/s':>8} "
          f"{'test/s':>9} {'paper run':>10}")
    results = []
    for device_name in devices:
        device = resolve_device(device_name)
        steps = args.steps * (10 if device.type == "cuda" else 1)
        for maps in args.maps:
            for precision in args.precisions:
                for compiled in [False, True] if args.compile else [False]:
                    config = RCNNConfig(maps=maps, recurrent_steps=args.recurrent_steps, n_classes=4,
                                        pixels=PIXELS, frames=FRAMES)
                    flops = train_flops_per_sample(config)
                    torch.manual_seed(0)
                    model = RCNN(config)
                    model = model.to(device, memory_format=torch.channels_last)
                    if compiled:
                        model = torch.compile(model)
                    train_rate, train_cpu = time_steps(model, device, precision, args.batch_size, steps,
                                                       args.repeats, True)
                    test_rate, _ = time_steps(model, device, precision, args.batch_size, steps, args.repeats, False)
                    projected = train_samples / train_rate + test_samples / test_rate
                    row = {"device": device_name, "maps": maps, "precision": precision, "compiled": compiled,
                           "train_samples_per_s": round(train_rate, 1),
                           "train_samples_per_cpu_s": round(train_cpu, 1) if device.type == "cpu" else None,
                           "test_samples_per_s": round(test_rate, 1),
                           "train_gflop_per_sample": round(flops / 1e9, 3),
                           "train_tflop_per_s": round(train_rate * flops / 1e12, 3),
                           "paper_run_s": round(projected), "threads": args.threads}
                    results.append(row)
                    by_cpu = f"{train_cpu:9.1f}" if device.type == "cpu" else f"{'-':>9}"
                    print(f"{device_name:6} {maps:4d} {precision:9} {str(compiled):8} {train_rate:9.1f} {by_cpu} "
                          f"{train_rate * flops / 1e12:8.3f} {test_rate:9.1f} {hours(projected):>10}", flush=True)
                    del model
                    if device.type == "cuda":
                        torch.cuda.empty_cache()
    if args.json:
        args.json.write_text(json.dumps({"torch": torch.__version__, "cpu": cpu_name, "results": results},
                                        indent=2) + "\n")
    print(f"\npaper run = {train_samples:,} / train rate + {test_samples:,} / test rate, for one method "
          "(MER-RCNN); reading HDF5 is not included (see --loader). TFLOP/s = train rate x the convolutions' "
          "and linear layer's FLOPs per training sample (torch's FlopCounterMode)")


if __name__ == "__main__":
    main()
