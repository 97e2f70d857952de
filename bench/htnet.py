"""Benchmark: HTNet (pipeline/baselines/htnet.py) at the authors' size on this machine: training samples per
second (forward, backward and Adam step on batches of 256 random 28 x 28 inputs), and the projection to MEGC
2019's composite (68 leave-one-subject-out folds, about 436 training clips each, 800 epochs).

    .venv/bin/python bench/htnet.py --steps 3 --threads 2 [--device cuda] [--json out.json]

The first step (allocation, kernel selection) is left out of the timing. FLOP per sample are counted from the
network's layers (convolutions and linear maps as 2 x multiply-adds; attention over one token adds nothing
measurable), forward x 3 for a training step.
"""

from __future__ import annotations

import argparse
import json
import time

import torch
import torch.nn.functional as F

from pipeline.baselines.flownets import parameter_count
from pipeline.baselines.htnet import HTNet

FOLDS, TRAIN_CLIPS, EPOCHS = 68, 436, 800


def forward_flops(model: torch.nn.Module, x: torch.Tensor) -> float:
    """2 x multiply-adds of every convolution and linear layer, for one sample."""
    total = 0.0

    def count(module: torch.nn.Module, inputs: tuple, output: torch.Tensor) -> None:
        nonlocal total
        if isinstance(module, torch.nn.Conv2d):
            k = module.kernel_size[0] * module.kernel_size[1] * module.in_channels // module.groups
            total += 2.0 * k * output.numel()
        elif isinstance(module, torch.nn.Linear):
            total += 2.0 * module.in_features * output.numel()

    layers = [m for m in model.modules() if isinstance(m, torch.nn.Conv2d | torch.nn.Linear)]
    hooks = [m.register_forward_hook(count) for m in layers]
    with torch.inference_mode():
        model(x[:1])
    for hook in hooks:
        hook.remove()
    return total


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=256)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    torch.manual_seed(0)
    model = HTNet(n_classes=3).to(device)
    x = torch.rand(args.batch_size, 3, 28, 28, device=device) * 255
    y = torch.randint(0, 3, (args.batch_size,), device=device)
    optimizer = torch.optim.Adam(model.parameters(), lr=5e-5)
    times = []
    for _ in range(args.steps + 1):
        if device.type == "cuda":
            torch.cuda.synchronize()
        started = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        times.append(time.perf_counter() - started)
    per_step = sum(times[1:]) / args.steps
    samples_per_s = args.batch_size / per_step
    flops = forward_flops(model, x) * 3
    composite_s = FOLDS * TRAIN_CLIPS * EPOCHS / samples_per_s
    result = {"device": str(device), "threads": args.threads, "parameters": parameter_count(model),
              "batch_size": args.batch_size, "seconds_per_step": round(per_step, 3),
              "samples_per_second": round(samples_per_s, 1), "gflop_per_training_sample": round(flops / 1e9, 3),
              "gflops_reached": round(flops * samples_per_s / 1e9, 1),
              "one_fold_800_epochs_hours": round(TRAIN_CLIPS * EPOCHS / samples_per_s / 3600, 2),
              "composite_68_folds_hours": round(composite_s / 3600, 1)}
    print(json.dumps(result, indent=2))
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(result, handle, indent=2)


if __name__ == "__main__":
    main()
