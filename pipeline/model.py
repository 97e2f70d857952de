"""The RCNN of MER-RCNN (Xia et al., Table 1) and its ablations without recurrence.

Input: one micro-expression clip as a pixels x frames x colour tensor (1966 x 30 x 3, Sec. III-A),
in torch layout (N, 3, pixels, frames), uint8 or float in 0..255. Sizes through the network for the
paper's input (pixel axis x frame axis, every layer with M = `maps` feature maps):

    conv1 5x5, no pad    1962 x 26
    pool1 max 4x1         490 x 26   (then conv1's ReLU + BatchNorm)
    RCL2                  490 x 26
    pool2 max 4x1         122 x 26
    RCL3                  122 x 26
    pool3 max 4x4          30 x 6
    RCL4                   30 x 6
    pool4 max 4x2           7 x 3
    RCL5                    7 x 3
    global average pool     1 x 1   -> linear to C classes (softmax lives in the loss)

An RCL (recurrent convolutional layer, Liang & Hu, CVPR 2015; Xia et al. Eq. 2-3) unrolls a 1x1
feed-forward conv and ONE 3x3 recurrent conv shared by all steps:
    u = w_f * x,   h(0) = f(u),   h(t) = f(u + w_r * h(t-1)) for t = 1..recurrent_steps.
Two ablations remove the recurrence (neither is the paper's "CNNs" row, a single-frame CNN:
pipeline/baselines/frame_cnns.py):
- recurrent = False (the `rcnn_feedforward` method): only the recurrence is removed. Each RCL keeps
  both its convs and applies them once, in sequence: h = f(w_r * f(w_f * x)). The 3x3
  spatio-temporal conv, its receptive field within the layer and every conv weight stay; gone are
  the repeated application of the shared w_r and the feedback of u into every step (and the
  BatchNorms of steps 2 and 3: 2 * 2 * M parameters per RCL).
- recurrent_steps = 0: each RCL is just its 1x1 feed-forward conv, which removes the 3x3 convs as
  well (the ablation family `recurrent_steps`).

f = ReLU followed by a normalisation ("normalized activation function", Sec. II-C). Liang & Hu used
LRN; we use BatchNorm with its own statistics per unrolled step, as recurrent BatchNorm does
(Cooijmans et al., ICLR 2017; also Wang & Hu's gated RCNN, NIPS 2017): h(t)'s scale changes with t,
so one shared set of statistics would fit no step well. BatchNorm is the modern default, makes plain
SGD at the paper's small learning rate train from scratch in few epochs, and is cheaper than LRN in
torch. The recurrent weights stay shared; only the 2*M affine numbers per step are not.

Conv1's f comes after Pool1: max-pooling commutes exactly with ReLU, and normalising the pooled map
touches 4x fewer values (measured on 2 CPU threads, M = 8: 130 vs 95 samples/s).
"""

from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class RCNNConfig:
    maps: int = 32              # M: feature maps of every conv layer (Table 1)
    recurrent_steps: int = 3    # recurrent 3x3 convs per RCL; 0 = 1x1 convs only
    n_classes: int = 4          # C
    pixels: int = 1966          # pixels per channel of one frame, after the central crop
    frames: int = 30            # frames after temporal normalisation
    recurrent: bool = True      # False: each RCL applies its 3x3 conv once, feed-forward (module docstring)


class RecurrentConvLayer(nn.Module):
    """One RCL: u = w_f * x, h(0) = f(u), h(t) = f(u + w_r * h(t-1)), f = ReLU then BatchNorm.
    With recurrent False: h = f(w_r * f(u)), w_r applied once (recurrent_steps must be 1)."""

    def __init__(self, maps: int, recurrent_steps: int, recurrent: bool = True):
        super().__init__()
        if not recurrent and recurrent_steps != 1:
            raise ValueError(f"a feed-forward RCL applies its 3x3 conv once: recurrent_steps must be 1, "
                             f"got {recurrent_steps}")
        self.recurrent_steps = recurrent_steps
        self.feeds_back = recurrent
        self.feed_forward = nn.Conv2d(maps, maps, kernel_size=1)
        # One bias b_k per map (Eq. 2): the feed-forward conv carries it, the recurrent conv has none.
        self.recurrent = (nn.Conv2d(maps, maps, kernel_size=3, padding=1, bias=False)
                          if recurrent_steps > 0 else None)
        self.norms = nn.ModuleList(nn.BatchNorm2d(maps) for _ in range(recurrent_steps + 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        u = self.feed_forward(x)
        h = self.norms[0](F.relu(u))
        for step in range(1, self.recurrent_steps + 1):
            if not self.feeds_back:
                h = self.norms[step](torch.relu_(self.recurrent(h)))
                continue
            # f(u + w_r * h): summed and rectified in place in the conv's fresh output (~5-10% faster
            # on CPU; autograd allows it, the conv's backward needs its input, not its output).
            h = self.norms[step](torch.relu_(self.recurrent(h).add_(u)))
        return h


class RCNN(nn.Module):
    def __init__(self, config: RCNNConfig):
        super().__init__()
        self.config = config
        m, steps, recurrent = config.maps, config.recurrent_steps, config.recurrent
        # Layer names follow Table 1; the pools run along (pixel axis, frame axis). Conv1's ReLU and
        # BatchNorm follow its pool (see the module docstring), the RCLs apply f inside.
        self.body = nn.Sequential(OrderedDict([
            ("conv1", nn.Conv2d(3, m, kernel_size=5)),
            ("pool1", nn.MaxPool2d((4, 1))),
            ("relu1", nn.ReLU(inplace=True)),
            ("norm1", nn.BatchNorm2d(m)),
            ("rcl2", RecurrentConvLayer(m, steps, recurrent)),
            ("pool2", nn.MaxPool2d((4, 1))),
            ("rcl3", RecurrentConvLayer(m, steps, recurrent)),
            ("pool3", nn.MaxPool2d((4, 4))),
            ("rcl4", RecurrentConvLayer(m, steps, recurrent)),
            ("pool4", nn.MaxPool2d((4, 2))),
            ("rcl5", RecurrentConvLayer(m, steps, recurrent)),
        ]))
        self.classifier = nn.Linear(m, config.n_classes)
        # Per-channel mean and std of the training clips, in [0, 1] units, so that a checkpoint
        # carries its own input normalisation; the training stage sets them from the training fold.
        self.register_buffer("input_mean", torch.zeros(1, 3, 1, 1))
        self.register_buffer("input_std", torch.ones(1, 3, 1, 1))

    def set_input_normalisation(self, mean: list[float], std: list[float]) -> None:
        self.input_mean.copy_(torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.input_std.copy_(torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits (N, C) of uint8 (or 0..255 float) clips (N, 3, pixels, frames)."""
        x = (x.float() / 255.0 - self.input_mean) / self.input_std
        x = self.body(x)
        x = x.mean(dim=(2, 3))          # Pool5: global average pool over pixels and frames
        return self.classifier(x)
