"""The flow networks of every fold trained together: one model whose weights are the folds' models
stacked, each fold on its own training clips, batches, initialisation and dropout masks.

The stage (`ststnet_folds`, `off_apexnet_folds`: params' `folds_together`, the default) writes
results/{ds}/{protocol}/{method}/seed{s}/folds_trained.h5: per fold its test clips, their class
probabilities and its training losses; each fold's own job then writes its predictions.csv and
metrics.json from it (pipeline/baselines/flownet_folds.py), the files every Table 2 row has.

Training the 68 leave-one-subject-out folds of the MEGC 2019 composite one job at a time runs a tiny
network (STSTNet: 1.7 k weights) on a few hundred 28 x 28 inputs per fold, hundreds of times over: the
kernels are too small to keep a CPU busy. Here the folds' weights are stacked on a leading fold axis,
the convolutions run as one grouped convolution (group f: fold f's filters on fold f's batch) and the
fully connected layers as one batched matrix product, so one step trains every fold at once.

What one fold sees is what `pipeline.baselines.flownets.fit_network` gives it when it is trained alone:
- the same initial weights (the network built after `torch.manual_seed(seed)`), the same shuffles (a
  generator seeded with `seed`, one permutation of its training clips per epoch, batches of
  `batch_size`), the same dropout masks (drawn from a generator in the state the global one has after
  the network is built, in the order the modules draw them) and the same Adam update;
- batch normalisation over its own batch only: folds' batches differ in size (each fold leaves out
  another subject), so a batch is padded to the largest and the padding is masked out of the loss and
  of the batch statistics; a fold without a batch at a step (fewer batches this epoch, or a last batch
  of one clip, which batch normalisation cannot train on) is not updated at that step.
No fold reads another fold's clips: a fold's batch is drawn from its own training rows, and its test
clips are scored by its own weights after the last epoch. The results equal the one-by-one runs up to
floating-point summation order (tests/test_flow.py).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn
from tqdm import tqdm

from pipeline.artifacts import atomic_output, open_h5_for_write, provenance, write_array, write_provenance
from pipeline.baselines.flownets import OFFApexNet, STSTNet, build_network, network_inputs, parameter_count
from pipeline.devices import keep_freed_memory
from pipeline.flow import read_flow
from pipeline.fold_results import class_indices
from pipeline.protocols import fold_numbers
from pipeline.selection import fold_rows

# Folds stacked in one pass. More folds per pass only adds memory traffic once their activations outgrow
# the caches: on a 2-core Xeon, STSTNet took 101-114 ms per fold and epoch with 1-8 folds a pass and
# 162 ms with all 68 (bench/README.md).
FOLDS_PER_PASS = 8
BN_EPS, BN_MOMENTUM = 1e-5, 0.1                  # nn.BatchNorm2d's defaults
ADAM_BETAS, ADAM_EPS = (0.9, 0.999), 1e-8        # torch.optim.Adam's defaults


def stacked(parameter: torch.Tensor, folds: int) -> nn.Parameter:
    """One fold's tensor repeated on a new leading fold axis."""
    return nn.Parameter(parameter.detach().unsqueeze(0).repeat(folds, *[1] * parameter.dim()).clone())


class FoldDropout:
    """Dropout with a generator per fold, drawing each fold's mask for its real rows as F.dropout does."""

    def __init__(self, states: Sequence[torch.Tensor]):
        self.generators = []
        for state in states:
            generator = torch.Generator()
            generator.set_state(state)
            self.generators.append(generator)

    def __call__(self, x: torch.Tensor, mask: torch.Tensor, p: float) -> torch.Tensor:
        """x: (B, F, ...) with fold f's real rows first (mask: B, F); each fold's mask drawn from its generator."""
        if p == 0:
            return x
        noise = torch.ones_like(x)
        for fold, (generator, n) in enumerate(zip(self.generators, mask.sum(dim=0).tolist(), strict=True)):
            if n:
                noise[:n, fold] = torch.empty((n, *x.shape[2:]), dtype=x.dtype).bernoulli_(1 - p, generator=generator)
        return x * noise.div_(1 - p)


class VarMean(torch.autograd.Function):
    """torch.var_mean over (batch, height, width) of x (B, F, C, H, W), biased, with a backward of one
    pass (d/dx = (g_mean + 2 g_var (x - mean)) / n), not autograd's several full-size temporaries."""

    @staticmethod
    def forward(ctx, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:  # type: ignore[override]
        var, mean = torch.var_mean(x, dim=(0, 3, 4), correction=0)
        ctx.save_for_backward(x, mean)
        return var, mean

    @staticmethod
    def backward(ctx, grad_var: torch.Tensor, grad_mean: torch.Tensor) -> torch.Tensor:  # type: ignore[override]
        x, mean = ctx.saved_tensors
        n = x.shape[0] * x.shape[3] * x.shape[4]
        slope = (2 * grad_var / n)[..., None, None]
        offset = (grad_mean / n)[..., None, None] - slope * mean[..., None, None]
        return torch.addcmul(offset, x, slope)


def batch_statistics(x: torch.Tensor, rows: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Per fold and channel, the mean and biased variance of x (B, F, C, H, W) over each fold's first
    rows[f] rows. The other rows are padding whose value is known, `pad` (F, C, 1, 1) at every pixel (a
    zero input through the convolution and ReLU): the statistics of all rows are taken in one pass and
    the padding's share removed exactly (Chan et al.'s merging of two groups' moments, backwards)."""
    var_all, mean_all = VarMean.apply(x)
    var_all, mean_all = var_all[..., None, None], mean_all[..., None, None]
    pixels = x.shape[3] * x.shape[4]
    n_all = x.shape[0] * pixels
    n_real = (rows.to(x.dtype) * pixels)[:, None, None, None]
    n_pad = n_all - n_real
    real = n_real.clamp(min=1)
    mean = (n_all * mean_all - n_pad * pad) / real
    m2 = n_all * var_all - n_real * (mean - mean_all) ** 2 - n_pad * (pad - mean_all) ** 2
    return mean, m2.clamp(min=0) / real


class FoldBatchNorm(nn.Module):
    """nn.BatchNorm2d per fold: batch statistics over a fold's own rows, running statistics per fold."""

    def __init__(self, norm: nn.BatchNorm2d, folds: int):
        super().__init__()
        self.weight = stacked(norm.weight.view(-1, 1, 1), folds)
        self.bias = stacked(norm.bias.view(-1, 1, 1), folds)
        self.register_buffer("running_mean", stacked(norm.running_mean.view(-1, 1, 1), folds).data)
        self.register_buffer("running_var", stacked(norm.running_var.view(-1, 1, 1), folds).data)

    def affine(self, x: torch.Tensor, rows: torch.Tensor, pad: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """The per-fold scale and shift (F, C, 1, 1) that normalise x, as nn.BatchNorm2d computes them
        (alpha = weight / sqrt(var + eps), beta = bias - mean * alpha); in training, the running statistics
        of each fold with rows at this step move as BatchNorm2d's do (unbiased variance)."""
        if self.training:
            mean, var = batch_statistics(x, rows, pad)
            with torch.no_grad():
                keep = (rows > 0)[:, None, None, None]
                count = (rows.to(x.dtype) * (x.shape[3] * x.shape[4]))[:, None, None, None]
                unbiased = var * count / (count - 1).clamp(min=1)
                self.running_mean.copy_(torch.where(keep, (1 - BN_MOMENTUM) * self.running_mean + BN_MOMENTUM * mean,
                                                    self.running_mean))
                self.running_var.copy_(torch.where(keep, (1 - BN_MOMENTUM) * self.running_var +
                                                   BN_MOMENTUM * unbiased, self.running_var))
        else:
            mean, var = self.running_mean, self.running_var
        alpha = self.weight * torch.rsqrt(var + BN_EPS)
        return alpha, self.bias - mean * alpha


def grouped_conv(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor, padding: int,
                 relu: bool = False) -> torch.Tensor:
    """x (B, F, C, H, W), weight (F, O, C, k, k): each fold's filters on its own inputs -> (B, F, O, H', W'),
    through a ReLU if asked (in place: the convolution's backward does not read its output)."""
    b, folds = x.shape[:2]
    out = F.conv2d(x.reshape(b, folds * x.shape[2], *x.shape[3:]), weight.reshape(-1, *weight.shape[2:]),
                   bias.reshape(-1), padding=padding, groups=folds)
    if relu:
        out = torch.relu_(out)
    return out.reshape(b, folds, weight.shape[1], *out.shape[2:])


def pooled(x: torch.Tensor, pool: nn.Module) -> torch.Tensor:
    b, folds = x.shape[:2]
    out = pool(x.reshape(b, folds * x.shape[2], *x.shape[3:]))
    return out.reshape(b, folds, x.shape[2], *out.shape[2:])


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
    """x (B, F, I), weight (F, O, I), bias (F, O) -> (B, F, O)."""
    return torch.einsum("bfi,foi->bfo", x, weight) + bias


class StackedSTSTNet(nn.Module):
    """`folds` copies of one STSTNet, trained as one.

    A stream is conv -> ReLU -> batch norm -> 3 x 3 max pooling; batch norm is a per-channel affine map
    (scale alpha, shift beta) once its statistics are known, so it is applied after the pooling, on a
    ninth of the pixels: max pooling commutes with x -> alpha x + beta where alpha > 0, and where alpha < 0
    the pooled value is the window's minimum instead. The same pixel is picked and the same arithmetic
    done on it as in STSTNet's order; only the 30 x 30 maps' statistics are read at full size."""

    def __init__(self, model: STSTNet, folds: int):
        super().__init__()
        # The three streams read the same input with 3 x 3 filters: one convolution of all 16 filters.
        convs, norms = [stream[0] for stream in model.streams], [stream[2] for stream in model.streams]
        self.widths = [conv.out_channels for conv in convs]
        self.conv_weight = stacked(torch.cat([conv.weight for conv in convs]), folds)
        self.conv_bias = stacked(torch.cat([conv.bias for conv in convs]), folds)
        merged = nn.BatchNorm2d(sum(self.widths))
        with torch.no_grad():
            for name in ("weight", "bias", "running_mean", "running_var"):
                getattr(merged, name).copy_(torch.cat([getattr(norm, name) for norm in norms]))
        self.norm = FoldBatchNorm(merged, folds)
        self.dropout = model.streams[0][4].p
        self.max_pool, self.avg_pool = model.streams[0][3], model.pool
        self.fc_weight, self.fc_bias = stacked(model.fc.weight, folds), stacked(model.fc.bias, folds)

    def forward(self, x: torch.Tensor, mask: torch.Tensor, dropout: FoldDropout | None) -> torch.Tensor:
        """x (B, F, 3, H, W), fold f's real rows first, mask (B, F) True on them -> logits (B, F, classes)."""
        counts = mask.sum(dim=0)
        y = grouped_conv(x, self.conv_weight, self.conv_bias, padding=2, relu=True)
        pad = torch.relu(self.conv_bias)[..., None, None]             # a padding row's value: zero input
        alpha, beta = self.norm.affine(y, counts, pad)
        pooled_max = pooled(y, self.max_pool)
        negative = (alpha < 0).expand(-1, -1, *pooled_max.shape[3:])
        if bool(negative.any()):
            pooled_max = torch.where(negative, -pooled(-y, self.max_pool), pooled_max)
        y = torch.addcmul(beta, pooled_max, alpha)
        if self.training and dropout:                                  # each stream's masks, in stream order
            y = torch.cat([dropout(part, mask, self.dropout) for part in y.split(self.widths, dim=2)], dim=2)
        features = pooled(y, self.avg_pool)
        return linear(features.flatten(2), self.fc_weight, self.fc_bias)


class StackedOFFApexNet(nn.Module):
    """`folds` copies of one OFF-ApexNet, trained as one."""

    def __init__(self, model: OFFApexNet, folds: int):
        super().__init__()
        self.convs = nn.ParameterList()
        for stream in model.streams:
            for conv in (stream[0], stream[3]):
                self.convs.extend([stacked(conv.weight, folds), stacked(conv.bias, folds)])
        self.fcs = nn.ParameterList()
        for layer in (model.classifier[0], model.classifier[3], model.classifier[6]):
            self.fcs.extend([stacked(layer.weight, folds), stacked(layer.bias, folds)])
        self.dropout = model.classifier[2].p
        self.pool = model.streams[0][2]

    def forward(self, x: torch.Tensor, mask: torch.Tensor, dropout: FoldDropout | None) -> torch.Tensor:
        """x (B, F, 2, H, W), fold f's real rows first, mask (B, F) True on them -> logits (B, F, classes)."""
        streams = []
        for index in range(2):
            y = x[:, :, index:index + 1]
            for layer in range(2):
                weight, bias = self.convs[4 * index + 2 * layer], self.convs[4 * index + 2 * layer + 1]
                y = pooled(torch.relu(grouped_conv(y, weight, bias, padding=2)), self.pool)
            streams.append(y.flatten(2))
        y = torch.cat(streams, dim=2)
        for layer in range(2):
            y = torch.relu(linear(y, self.fcs[2 * layer], self.fcs[2 * layer + 1]))
            y = dropout(y, mask, self.dropout) if self.training and dropout else y
        return linear(y, self.fcs[4], self.fcs[5])


def stack_network(method: str, model: nn.Module, folds: int) -> nn.Module:
    if method == "ststnet":
        return StackedSTSTNet(model, folds)
    return StackedOFFApexNet(model, folds)


class FoldAdam:
    """torch.optim.Adam on stacked parameters, each fold with its own step count; a fold not active at a
    step is left as it is (weights and moments), as if that step had not happened for it."""

    def __init__(self, parameters: Sequence[nn.Parameter], lr: float, folds: int):
        self.parameters, self.lr = list(parameters), lr
        self.steps = torch.zeros(folds, dtype=torch.long)
        self.moments = [(torch.zeros_like(p), torch.zeros_like(p)) for p in self.parameters]

    @torch.no_grad()
    def step(self, active: torch.Tensor) -> None:
        beta1, beta2 = ADAM_BETAS
        self.steps += active.long()
        # Python floats, as torch.optim.Adam computes its bias corrections
        corrections1 = [1 - beta1 ** int(n) if n else 1.0 for n in self.steps]
        corrections2 = [(1 - beta2 ** int(n)) ** 0.5 if n else 1.0 for n in self.steps]
        step_size = torch.tensor([-self.lr / c for c in corrections1])
        sqrt2 = torch.tensor(corrections2)
        every = bool(active.all())
        for parameter, (exp_avg, exp_avg_sq) in zip(self.parameters, self.moments, strict=True):
            shape = (-1, *[1] * (parameter.dim() - 1))
            grad = parameter.grad
            if every:                       # the common step: in place, torch.optim.Adam's own operations
                exp_avg.lerp_(grad, 1 - beta1)
                exp_avg_sq.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
                denom = (exp_avg_sq.sqrt() / sqrt2.to(parameter.dtype).view(shape)).add_(ADAM_EPS)
                parameter.add_(exp_avg.div(denom).mul_(step_size.to(parameter.dtype).view(shape)))
                parameter.grad = None
                continue
            keep = active.view(shape)
            new_avg = exp_avg.lerp(grad, 1 - beta1)
            new_sq = exp_avg_sq * beta2 + (1 - beta2) * grad * grad
            denom = new_sq.sqrt() / sqrt2.to(parameter.dtype).view(shape) + ADAM_EPS
            moved = parameter + step_size.to(parameter.dtype).view(shape) * (new_avg / denom)
            parameter.copy_(torch.where(keep, moved, parameter))
            exp_avg.copy_(torch.where(keep, new_avg, exp_avg))
            exp_avg_sq.copy_(torch.where(keep, new_sq, exp_avg_sq))
            parameter.grad = None


def padded(rows: Sequence[torch.Tensor], fill: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    """Each fold's rows (a list of index tensors, one per fold) as one (B, F) index, padded with row `fill`
    to the longest, and the mask (B, F) of the real entries."""
    width = max(len(r) for r in rows)
    index = torch.full((width, len(rows)), fill, dtype=torch.long)
    mask = torch.zeros(width, len(rows), dtype=torch.bool)
    for fold, r in enumerate(rows):
        index[:len(r), fold], mask[:len(r), fold] = r, True
    return index, mask


def fit_folds(method: str, inputs: torch.Tensor, labels: torch.Tensor, train_rows: Sequence[torch.Tensor], *,
              n_classes: int, input_size: int, dropout: float, epochs: int, lr: float, batch_size: int, seed: int,
              desc: str = "train", on_epoch: Callable[[nn.Module], None] | None = None
              ) -> tuple[nn.Module, list[list[float]]]:
    """Train one network per fold (fold f on inputs[train_rows[f]]) together; the stacked model and each
    fold's mean loss per epoch. `on_epoch` is called with the network after every epoch (and must leave
    it in training mode)."""
    folds = len(train_rows)
    torch.manual_seed(seed)
    model = build_network(method, n_classes, input_size, dropout)
    dropout_state = torch.get_rng_state()         # what a fold trained alone draws its dropout masks from
    network = stack_network(method, model, folds)
    fold_dropout = FoldDropout([dropout_state] * folds)
    optimizer = FoldAdam(list(network.parameters()), lr, folds)
    shuffles = [torch.Generator().manual_seed(seed) for _ in range(folds)]
    needs_pairs = method == "ststnet"             # batch normalisation cannot train on a single clip
    losses: list[list[float]] = [[] for _ in range(folds)]
    # Padding rows read an all-zero input (row len(inputs)): batch normalisation's statistics take their
    # value as the convolution's bias through the ReLU (`batch_statistics`).
    inputs = torch.cat([inputs, inputs.new_zeros(1, *inputs.shape[1:])])
    labels = torch.cat([labels, labels.new_zeros(1)])
    network.train()
    for _ in tqdm(range(epochs), desc=desc, unit="epoch", mininterval=5):
        batches = [rows[torch.randperm(len(rows), generator=g)].split(batch_size)
                   for rows, g in zip(train_rows, shuffles, strict=True)]
        totals = torch.zeros(folds, dtype=torch.float64)
        for step in range(max(len(b) for b in batches)):
            chosen = [b[step] if step < len(b) and (len(b[step]) > 1 or not needs_pairs) else b[0][:0]
                      for b in batches]
            if not any(len(c) for c in chosen):
                continue                          # no fold has a batch at this step
            index, mask = padded(chosen, fill=len(inputs) - 1)
            logits = network(inputs[index], mask, fold_dropout)
            per_clip = F.cross_entropy(logits.reshape(-1, n_classes), labels[index].reshape(-1),
                                       reduction="none").view(index.shape) * mask
            counts = mask.sum(dim=0)
            (per_clip.sum(dim=0) / counts.clamp(min=1)).sum().backward()
            optimizer.step(counts > 0)
            totals += per_clip.detach().sum(dim=0).double()
        for fold in range(folds):
            losses[fold].append(float(totals[fold]) / len(train_rows[fold]))
        if on_epoch is not None:
            on_epoch(network)
    return network, losses


def train_folds(method: str, inputs: torch.Tensor, labels: torch.Tensor, train_rows: Sequence[torch.Tensor],
                watch_rows: Sequence[torch.Tensor], *, folds_per_pass: int = FOLDS_PER_PASS,
                **schedule: object) -> tuple[list[torch.Tensor], list[list[float]]]:
    """Every fold trained (`fit_folds`, `folds_per_pass` folds at a time) and, after every epoch, scored on its
    watch rows (its test clips; with inner selection its validation clips too): each fold's class
    probabilities (epochs, rows, classes) and its losses per epoch. The last epoch's are the trained
    network's predictions; scoring changes nothing in training (eval mode, no random draw)."""
    probabilities: list[torch.Tensor] = []
    losses: list[list[float]] = []
    for start in range(0, len(train_rows), folds_per_pass):
        part = slice(start, start + folds_per_pass)
        seen: list[list[torch.Tensor]] = []

        def record(network: nn.Module, rows: Sequence[torch.Tensor] = watch_rows[part],
                   seen: list[list[torch.Tensor]] = seen) -> None:
            seen.append(predict_folds(network, inputs, rows))
            network.train()

        _, part_losses = fit_folds(method, inputs, labels, train_rows[part], on_epoch=record,
                                   **schedule)  # type: ignore[arg-type]
        probabilities.extend(torch.stack([epoch[fold] for epoch in seen]) for fold in range(len(part_losses)))
        losses.extend(part_losses)
    return probabilities, losses


@torch.inference_mode()
def predict_folds(network: nn.Module, inputs: torch.Tensor, test_rows: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each fold's class probabilities on its own test clips (its weights, batch norm's running statistics)."""
    network.eval()
    index, mask = padded(test_rows)
    probabilities = network(inputs[index], mask, None).softmax(-1)
    return [probabilities[:len(rows), fold].double() for fold, rows in enumerate(test_rows)]


def folds_stage(method: str, flow_h5: Path, folds_csv: Path, out_h5: Path, *, classes: Sequence[str], input_size: int,
                epochs: int, lr: float, batch_size: int, dropout: float, seed: int, threads: int,
                folds_together: bool = True, selection: str = "last",
                inner: Mapping[str, Any] | None = None) -> None:
    """Train `method` on every fold of the folds file together (fixed schedule), score each fold's test
    clips with its own weights after every epoch, and write them all to one store. With selection
    `inner` (params `epoch_selection`: `inner`) each fold trains without its validation subjects, which
    are scored after every epoch too (pipeline/selection.py)."""
    started = time.perf_counter()
    torch.set_num_threads(threads)
    keep_freed_memory()
    flow, clips = read_flow(flow_h5, input_size)
    labels = torch.from_numpy(class_indices(clips["label"].tolist(), classes, os.fspath(flow_h5)))
    folds = pd.read_csv(folds_csv, dtype={"clip_id": str, "subject": str, "label": str})
    numbers = fold_numbers(folds_csv)
    splits = [fold_rows(clips, folds, k, os.fspath(flow_h5), selection, inner) for k in numbers]
    inputs = torch.from_numpy(network_inputs(method, flow))
    probabilities, losses = train_folds(method, inputs, labels, [torch.as_tensor(s.train) for s in splits],
                                        [torch.as_tensor(s.watched) for s in splits], n_classes=len(classes),
                                        input_size=input_size, dropout=dropout, epochs=epochs, lr=lr,
                                        batch_size=batch_size, seed=seed, desc=f"{method} folds")
    params = dict(classes=list(classes), input_size=input_size, epochs=epochs, lr=lr, batch_size=batch_size,
                  dropout=dropout, seed=seed, threads=threads, folds_together=folds_together,
                  **({"inner": dict(inner or {})} if selection == "inner" else {}))
    weights = parameter_count(build_network(method, len(classes), input_size, dropout))
    seconds = time.perf_counter() - started
    with atomic_output(out_h5) as tmp, open_h5_for_write(tmp) as h5:
        write_provenance(h5, provenance(f"{method}_folds", params, {"flow": flow_h5, "folds": folds_csv}))
        h5.attrs.update({"method": method, "classes": list(classes), "parameters": weights,
                         "seconds": round(seconds, 3), "folds": len(numbers), "selection": selection})
        for number, split, probs, fold_losses in zip(numbers, splits, probabilities, losses, strict=True):
            group = h5.create_group(f"fold{number}")
            write_array(group, "test_rows", np.asarray(split.test, dtype=np.int64))
            write_array(group, "validation_rows", np.asarray(split.validation, dtype=np.int64))
            write_array(group, "watched_probabilities", probs.float().numpy())   # validation rows, then test
            write_array(group, "losses", np.asarray(fold_losses, dtype=np.float64))
            group.attrs["n_train_clips"] = len(split.train)
    print(f"{method}: {len(numbers)} folds x {epochs} epochs trained together in {seconds:.1f} s")


def ststnet_folds_stage(flow_h5: Path, folds_csv: Path, out_h5: Path, **params: object) -> None:
    """STSTNet on every fold together."""
    folds_stage("ststnet", flow_h5, folds_csv, out_h5, **params)  # type: ignore[arg-type]


def off_apexnet_folds_stage(flow_h5: Path, folds_csv: Path, out_h5: Path, **params: object) -> None:
    """OFF-ApexNet on every fold together."""
    folds_stage("off_apexnet", flow_h5, folds_csv, out_h5, **params)  # type: ignore[arg-type]


def ststnet_inner_folds_stage(flow_h5: Path, folds_csv: Path, out_h5: Path, **params: object) -> None:
    """STSTNet on every fold together, each without its validation subjects (selection inner)."""
    folds_stage("ststnet", flow_h5, folds_csv, out_h5, selection="inner", **params)  # type: ignore[arg-type]


def off_apexnet_inner_folds_stage(flow_h5: Path, folds_csv: Path, out_h5: Path, **params: object) -> None:
    """OFF-ApexNet on every fold together, each without its validation subjects (selection inner)."""
    folds_stage("off_apexnet", flow_h5, folds_csv, out_h5, selection="inner", **params)  # type: ignore[arg-type]
