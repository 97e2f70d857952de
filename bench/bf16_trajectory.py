"""bf16 training over many steps on each oneDNN kernel path: does the AMX path drift from fp32 more than
the same bf16 arithmetic without AMX tiles?

For each path (ONEDNN_MAX_CPU_ISA: the CPU's best, e.g. AMX; AVX512_CORE_BF16; AVX2), in a fresh
process each: the RCNN (M = 8, 3 recurrent steps, 4 classes) from one initialisation, trained with the
paper's SGD (lr 0.01, momentum 0.9, weight decay 5e-4) on the same --steps batches of 16 clips twice,
in fp32 and under bf16 autocast. The clips carry a learnable signal (the class is which quarter of the
clip's rows is brighter), so the loss has somewhere to go. Per path: the loss of both runs every
--every steps, the batch accuracy over the last 10 steps, and the relative distance of the bf16 weights
from the fp32 weights at the end. --seeds repeats it with other initialisations and batches (the seed sets
both) and ends with a summary per path over the seeds.

    .venv/bin/python bench/bf16_trajectory.py [--steps 60] [--isas default AVX512_CORE_BF16 AVX2] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORKER = r'''
import json, sys
import torch
import torch.nn.functional as F
from pipeline.model import RCNN, RCNNConfig

steps, every, seed = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(2)
generator = torch.Generator().manual_seed(seed)
batches = []
for _ in range(steps):
    labels = torch.randint(0, 4, (16,), generator=generator)
    clips = torch.randint(0, 200, (16, 3, 1966, 30), generator=generator, dtype=torch.uint8)
    for i, label in enumerate(labels.tolist()):
        rows = slice(label * 491, (label + 1) * 491)
        clips[i, :, rows] = (clips[i, :, rows].int() + 40).clamp(max=255).to(torch.uint8)
    batches.append((clips, labels))


def run(bf16):
    torch.manual_seed(seed)
    model = RCNN(RCNNConfig(maps=8, recurrent_steps=3, n_classes=4))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, weight_decay=5e-4)
    losses, correct = [], []
    for clips, labels in batches:
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = model(clips).float()
        loss = F.cross_entropy(logits, labels)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
        correct.append(float((logits.argmax(1) == labels).float().mean()))
    return losses, correct, torch.cat([p.detach().flatten() for p in model.parameters()])


l32, c32, w32 = run(False)
l16, c16, w16 = run(True)
print(json.dumps({"loss_fp32": l32[::every] + [l32[-1]], "loss_bf16": l16[::every] + [l16[-1]],
                  "acc_fp32_last10": sum(c32[-10:]) / 10, "acc_bf16_last10": sum(c16[-10:]) / 10,
                  "weight_distance": float((w16 - w32).norm() / w32.norm())}))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isas", nargs="+", default=["default", "AVX512_CORE_BF16", "AVX2"])
    parser.add_argument("--steps", type=int, default=60)
    parser.add_argument("--every", type=int, default=10)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--json")
    args = parser.parse_args()
    with open("/proc/cpuinfo") as handle:
        print(f"CPU with amx_bf16: {'amx_bf16' in handle.read()}")
    results: dict[str, dict[int, dict]] = {}
    for isa in args.isas:
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if isa != "default":
            env["ONEDNN_MAX_CPU_ISA"] = isa
        for seed in args.seeds:
            out = subprocess.run([sys.executable, "-c", WORKER, str(args.steps), str(args.every), str(seed)], env=env,
                                 capture_output=True, text=True, check=True)
            results.setdefault(isa, {})[seed] = r = json.loads(out.stdout.strip().splitlines()[-1])
            print(f"{isa} seed {seed}: weights {r['weight_distance']:.4f} from fp32; accuracy over the last 10 "
                  f"steps fp32 {r['acc_fp32_last10']:.3f}, bf16 {r['acc_bf16_last10']:.3f}")
            print("  loss fp32 " + " ".join(f"{v:.3f}" for v in r["loss_fp32"]))
            print("  loss bf16 " + " ".join(f"{v:.3f}" for v in r["loss_bf16"]))
    if len(args.seeds) > 1:
        for isa, runs in results.items():
            def spread(key: str, runs: dict = runs) -> str:
                values = [r[key][-1] if isinstance(r[key], list) else r[key] for r in runs.values()]
                return f"{sum(values) / len(values):.3f} ({min(values):.3f}-{max(values):.3f})"
            worse = sum(r["loss_bf16"][-1] > r["loss_fp32"][-1] for r in runs.values())
            print(f"{isa}, {len(runs)} seeds: final loss fp32 {spread('loss_fp32')}, bf16 {spread('loss_bf16')} "
                  f"(bf16 higher in {worse}); accuracy last 10 fp32 {spread('acc_fp32_last10')}, bf16 "
                  f"{spread('acc_bf16_last10')}; weight distance {spread('weight_distance')}")
    if args.json:
        with open(args.json, "w") as handle:
            json.dump(results, handle, indent=2)


if __name__ == "__main__":
    main()
