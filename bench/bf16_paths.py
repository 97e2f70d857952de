"""bf16 on the CPU's kernel paths: where the error of bf16 training comes from.

For each oneDNN kernel path (ONEDNN_MAX_CPU_ISA: the CPU's best, e.g. AMX; AVX512_CORE_BF16, the same bf16
arithmetic without AMX tiles; AVX2), in a fresh process each (oneDNN reads the variable once):

- conv: one convolution of the RCNN's shapes (3x3, M = 8 maps, batch 64, 1966 x 30) under bf16 autocast,
  forward output, input gradient and weight gradient, each against an fp64 reference computed from the
  same bf16-rounded inputs and weights (relative Frobenius error): the kernel's own arithmetic;
- step: one training step of the whole RCNN (M = 8, 3 recurrent steps, batch 32, random clips and
  labels) under bf16 autocast against the same step in fp32: the loss, and the cosine between the two
  gradients (all parameters as one vector) with the parameter whose gradient differs most.

    .venv/bin/python bench/bf16_paths.py [--isas default AVX512_CORE_BF16 AVX2]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

WORKER = r'''
import json
import torch
import torch.nn.functional as F
from pipeline.model import RCNN, RCNNConfig

torch.manual_seed(0)
torch.set_num_threads(2)


def relative(a, b):
    return float((a.detach().double() - b.detach()).norm() / b.detach().norm())


conv = torch.nn.Conv2d(8, 8, 3, padding=1)
x = torch.randn(64, 8, 1966, 30).relu() + 0.5
g = torch.randn(64, 8, 1966, 30) * 1e-3
ref = torch.nn.Conv2d(8, 8, 3, padding=1).double()
with torch.no_grad():
    ref.weight.copy_(conv.weight.bfloat16().double())
    ref.bias.copy_(conv.bias.double())
x_ref = x.bfloat16().double().requires_grad_()
ref(x_ref).backward(g.bfloat16().double())
x_bf = x.clone().requires_grad_()
with torch.autocast("cpu", dtype=torch.bfloat16):
    y = conv(x_bf)
y.float().backward(g)
result = {"conv_y": relative(y, ref(x_ref)), "conv_dx": relative(x_bf.grad, x_ref.grad),
          "conv_dw": relative(conv.weight.grad, ref.weight.grad)}

model = RCNN(RCNNConfig(maps=8, recurrent_steps=3, n_classes=4))
clips = torch.randint(0, 256, (32, 3, 1966, 30), dtype=torch.uint8)
labels = torch.randint(0, 4, (32,))


def step(bf16):
    model.zero_grad()
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
        loss = F.cross_entropy(model(clips).float(), labels)
    loss.backward()
    return float(loss), {n: p.grad.detach().clone() for n, p in model.named_parameters()}


loss32, g32 = step(False)
loss16, g16 = step(True)
cosine = F.cosine_similarity(torch.cat([v.flatten() for v in g16.values()]),
                             torch.cat([v.flatten() for v in g32.values()]), dim=0)
worst = max(g32, key=lambda n: float((g16[n] - g32[n]).norm() / g32[n].norm()))
result.update({"loss_fp32": loss32, "loss_bf16": loss16, "grad_cosine": float(cosine), "worst_param": worst,
               "worst_rel": float((g16[worst] - g32[worst]).norm() / g32[worst].norm())})
print(json.dumps(result))
'''


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--isas", nargs="+", default=["default", "AVX512_CORE_BF16", "AVX2"])
    args = parser.parse_args()
    with open("/proc/cpuinfo") as handle:
        amx = "amx_bf16" in handle.read()
    print(f"CPU with amx_bf16: {amx}")
    print(f"{'ONEDNN_MAX_CPU_ISA':<18} {'conv y':>8} {'conv dx':>8} {'conv dw':>8} {'loss fp32':>9} {'loss bf16':>9} "
          f"{'grad cos':>8}  worst parameter (rel. error)")
    for isa in args.isas:
        env = {k: v for k, v in os.environ.items() if k != "ONEDNN_MAX_CPU_ISA"}
        if isa != "default":
            env["ONEDNN_MAX_CPU_ISA"] = isa
        out = subprocess.run([sys.executable, "-c", WORKER], env=env, capture_output=True, text=True, check=True)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        print(f"{isa:<18} {r['conv_y']:8.5f} {r['conv_dx']:8.5f} {r['conv_dw']:8.5f} {r['loss_fp32']:9.5f} "
              f"{r['loss_bf16']:9.5f} {r['grad_cosine']:8.3f}  {r['worst_param']} ({r['worst_rel']:.2f})")


if __name__ == "__main__":
    main()
