"""The paper's two single-frame rows of Table 2: "CNNs" and "Pre-trained CNNs" (Sec. III-D).

Both are VGG-Face's architecture (a VGG-16, Parkhi et al., BMVC 2015; the paper's [17] and [30]) that
"recognize[s] micro-expressions for single images":
- `cnn` ("CNNs"): the architecture trained from scratch on the micro-expression frames only ("trained
  merely with the augmented data"). Full VGG-16 widths (13 3x3 convs of 64..512 maps, fc 4096, 4096)
  at input_size x input_size; weights initialised as torchvision initialises a VGG (Kaiming normal for
  the convs, N(0, 0.01) for the linear layers, zero biases), seeded by `cnn.seed`. The paper gives no
  training settings for it; the defaults are VGG-Face's own (SGD, momentum 0.9, weight decay 5e-4,
  lr 0.01) for a fixed number of epochs, with no schedule or epoch picked on a test fold.
- `pretrained_cnn` ("Pre-trained CNNs"): VGG-Face's weights fine-tuned. merflow cannot download
  weights, so the user supplies them: `pretrained_cnn.weights` names a PyTorch state_dict of a VGG-16
  in torchvision's layout (features.0.weight ... classifier.6.bias; VGG-Face converted to it, or any
  VGG-16). Channel widths are read from the file, so the same code loads the full network or a small
  one. The convolutions and the first two fully connected layers come from the file; the last layer
  is replaced by a new one with one output per class (the 2622 identities of VGG-Face mean nothing
  here).

Frames are RGB in [0, 1], standardised with ImageNet's mean and std (torchvision's convention),
resized to input_size x input_size. Every training clip gives `frames_per_clip` frames around its
apex, each labelled with its clip's class; SGD with momentum for `epochs` epochs. A test clip's
prediction is the mean softmax over its frames. No model file is written (a VGG-16 is 0.5 GB per
fold); predictions.csv and metrics.json are.

Which frames: a single-frame classifier learns from what a frame shows, and the onset frame of a
clip is by definition the neutral face, the same for every class; frames spread from onset to offset
would label neutral faces with an emotion. So the frames are those nearest the apex: the apex
itself, then its neighbours at -1, +1, -2, +2, ... (the earlier one first at equal distance), skipping
positions outside the clip, until `frames_per_clip` are taken (`apex_frame_indices`). An apex at the
last frame thus takes the frames before it; a clip shorter than `frames_per_clip` gives each of its
frames once. The apex is the one the aligned store records (`apex`, a frame number, minus `onset`):
the sheet's where it codes one, otherwise pipeline/apex.py's estimate (`apex_source` says which);
a store without an apex (one written by hand) gets the estimate here. At 200 fps the neighbours are
5 ms apart, so the frames are nearly the same face at the peak of the movement.
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

from pipeline.apex import estimate_apex
from pipeline.artifacts import provenance
from pipeline.baselines.clips import AlignedClip, clip_row, iter_aligned_clips, resize_frames
from pipeline.devices import keep_freed_memory, load_torch_file
from pipeline.errors import MerflowError
from pipeline.selection import fold_rows, write_fold_with_epochs

# VGG-16: conv widths by block, "M" = 2x2 max pooling (torchvision's configuration "D").
VGG16_LAYOUT = [64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512, "M"]
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)
VGG16_CONV_WIDTHS = [w for w in VGG16_LAYOUT if w != "M"]
VGG16_FC_WIDTHS = [4096, 4096]
DEFAULT_FPS = 100.0     # the apex estimate's smoothing window for a store that records no fps


def conv_indices() -> list[int]:
    """Positions of the 13 convolutions in torchvision's `features` Sequential (conv, ReLU, ..., pool)."""
    indices, position = [], 0
    for item in VGG16_LAYOUT:
        if item == "M":
            position += 1
        else:
            indices.append(position)
            position += 2
    return indices


class VGG16(nn.Module):
    """torchvision's VGG-16 module layout (so its state_dict keys load as they are), any widths."""

    def __init__(self, conv_widths: Sequence[int], fc_widths: Sequence[int], n_classes: int):
        super().__init__()
        layers: list[nn.Module] = []
        widths = iter(conv_widths)
        in_channels = 3
        for item in VGG16_LAYOUT:
            if item == "M":
                layers.append(nn.MaxPool2d(2, 2))
            else:
                out_channels = next(widths)
                layers += [nn.Conv2d(in_channels, out_channels, 3, padding=1), nn.ReLU(inplace=True)]
                in_channels = out_channels
        self.features = nn.Sequential(*layers)
        self.avgpool = nn.AdaptiveAvgPool2d((7, 7))     # as torchvision: any input size >= 32 works
        self.classifier = nn.Sequential(
            nn.Linear(in_channels * 49, fc_widths[0]), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(fc_widths[0], fc_widths[1]), nn.ReLU(inplace=True), nn.Dropout(),
            nn.Linear(fc_widths[1], n_classes))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(torch.flatten(self.avgpool(self.features(x)), 1))


def vgg16_from_scratch(n_classes: int, seed: int) -> VGG16:
    """VGG-16 at full width with torchvision's initialisation, seeded."""
    torch.manual_seed(seed)
    model = VGG16(VGG16_CONV_WIDTHS, VGG16_FC_WIDTHS, n_classes)
    for module in model.modules():
        if isinstance(module, nn.Conv2d):
            nn.init.kaiming_normal_(module.weight, mode="fan_out", nonlinearity="relu")
            nn.init.zeros_(module.bias)
        elif isinstance(module, nn.Linear):
            nn.init.normal_(module.weight, 0, 0.01)
            nn.init.zeros_(module.bias)
    return model


def load_pretrained(weights: str | os.PathLike, n_classes: int, seed: int) -> VGG16:
    """A VGG16 with the file's convolutions and fc6/fc7, and a new seeded last layer of n_classes."""
    path = Path(weights)
    try:
        state = load_torch_file(path, "a PyTorch state_dict")
    except MerflowError as error:
        raise MerflowError(f"pretrained_cnn.weights: {error}") from None
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    needed = [f"features.{i}.{p}" for i in conv_indices() for p in ("weight", "bias")]
    needed += [f"classifier.{i}.{p}" for i in (0, 3) for p in ("weight", "bias")]
    missing = [key for key in needed if key not in state]
    if missing:
        raise MerflowError(f"pretrained_cnn.weights: {path} is not a VGG-16 state_dict in torchvision's layout; "
                           f"missing {missing[:4]}{' ...' if len(missing) > 4 else ''}")
    conv_widths = [int(state[f"features.{i}.weight"].shape[0]) for i in conv_indices()]
    fc_widths = [int(state["classifier.0.weight"].shape[0]), int(state["classifier.3.weight"].shape[0])]
    torch.manual_seed(seed)
    model = VGG16(conv_widths, fc_widths, n_classes)
    try:
        model.load_state_dict({key: state[key] for key in needed}, strict=False)
    except RuntimeError as error:
        raise MerflowError(f"pretrained_cnn.weights: {path} does not fit a VGG-16 ({error})") from None
    return model


def apex_frame_indices(onset: int, apex: int, offset: int, n_frames: int) -> list[int]:
    """Indices (0 = the onset frame) of the n_frames frames of the clip onset..offset (frame numbers,
    both included) nearest its apex: the apex first, then apex-1, apex+1, apex-2, apex+2, ..., those
    outside the clip skipped; every frame once when the clip has fewer than n_frames. An apex
    outside the clip is clamped to it."""
    length = offset - onset + 1
    if length < 1 or n_frames < 1:
        raise ValueError(f"need a clip of at least 1 frame and n_frames >= 1, got onset {onset}, offset {offset}, "
                         f"n_frames {n_frames}")
    centre = min(max(apex - onset, 0), length - 1)
    picked = [centre]
    for distance in range(1, length):
        if len(picked) >= n_frames:
            break
        picked += [i for i in (centre - distance, centre + distance) if 0 <= i < length]
    return picked[:n_frames]


def clip_apex_index(clip: AlignedClip) -> int:
    """The clip's apex index in its frames: the store's, else estimated from the aligned face."""
    if clip.apex is not None:
        return clip.apex
    return estimate_apex(clip.frames, clip.fps or DEFAULT_FPS)


def clip_frames(frames: np.ndarray, n_frames: int, input_size: int, apex: int) -> np.ndarray:
    """(n, 3, S, S) float32 network inputs: the n frames nearest the apex (index in frames), standardised."""
    pick = apex_frame_indices(0, apex, len(frames) - 1, n_frames)
    images = resize_frames(frames[pick], input_size, input_size).astype(np.float32) / 255.0
    images = (images - np.float32(IMAGENET_MEAN)) / np.float32(IMAGENET_STD)
    return np.ascontiguousarray(images.transpose(0, 3, 1, 2))


def cnn_fold_stage(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, classes: Sequence[str],
                   input_size: int, frames_per_clip: int, epochs: int, lr: float, batch_size: int, momentum: float,
                   weight_decay: float, seed: int, threads: int, selections: Sequence[str] = ("last",),
                   selection: str = "last", inner: Mapping[str, Any] | None = None) -> None:
    """Train VGG-16 from scratch on the training clips' frames of one fold and test on the fold."""
    params = dict(input_size=input_size, frames_per_clip=frames_per_clip, epochs=epochs, lr=lr,
                  batch_size=batch_size, momentum=momentum, weight_decay=weight_decay, seed=seed)
    frame_cnn_fold(aligned_h5, folds_csv, int(fold), out_dir, lambda: vgg16_from_scratch(len(classes), seed),
                   method="cnn", classes=classes, params=params, threads=threads, selections=selections,
                   selection=selection, inner=inner)


def pretrained_cnn_fold_stage(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, *, classes: Sequence[str],
                              weights: str | None, input_size: int, frames_per_clip: int, epochs: int, lr: float,
                              batch_size: int, momentum: float, weight_decay: float, seed: int, threads: int,
                              selections: Sequence[str] = ("last",), selection: str = "last",
                              inner: Mapping[str, Any] | None = None) -> None:
    """Fine-tune the user's VGG-16 on the training clips' frames of one fold and test on the fold."""
    if not weights:
        raise MerflowError("pretrained_cnn needs pretrained_cnn.weights (a VGG-16 state_dict); without it the "
                           "method is reported as not run and has no fold jobs")
    params = dict(weights=os.fspath(weights), input_size=input_size, frames_per_clip=frames_per_clip, epochs=epochs,
                  lr=lr, batch_size=batch_size, momentum=momentum, weight_decay=weight_decay, seed=seed)
    frame_cnn_fold(aligned_h5, folds_csv, int(fold), out_dir, lambda: load_pretrained(weights, len(classes), seed),
                   method="pretrained_cnn", classes=classes, params=params, threads=threads, weights=weights,
                   selections=selections, selection=selection, inner=inner)


def cnn_inner_fold_stage(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, **params: Any) -> None:
    """The CNN on one fold, scored at the epoch best on validation subjects of its training clips."""
    cnn_fold_stage(aligned_h5, folds_csv, fold, out_dir, selection="inner", **params)


def pretrained_cnn_inner_fold_stage(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, **params: Any) -> None:
    """The pre-trained CNN on one fold, scored at the epoch best on validation subjects of its training clips."""
    pretrained_cnn_fold_stage(aligned_h5, folds_csv, fold, out_dir, selection="inner", **params)


def clip_probabilities(model: VGG16, inputs: Sequence[np.ndarray], rows: np.ndarray) -> np.ndarray:
    """(len(rows), classes) float32: each clip's mean softmax over its frames, in eval mode."""
    model.eval()
    with torch.inference_mode():
        found = [model(torch.from_numpy(inputs[r])).softmax(dim=1).mean(dim=0).numpy() for r in rows]
    model.train()
    return np.stack(found).astype(np.float32) if found else np.zeros((0, 0), np.float32)


def frame_cnn_fold(aligned_h5: Path, folds_csv: Path, fold: int, out_dir: Path, make_model: Callable[[], VGG16], *,
                   method: str, classes: Sequence[str], params: dict, threads: int,
                   weights: str | os.PathLike | None = None, selections: Sequence[str] = ("last",),
                   selection: str = "last", inner: Mapping[str, Any] | None = None) -> None:
    """Train make_model() on the frames nearest the apex of the fold's training clips (params: input_size,
    frames_per_clip, epochs, lr, batch_size, momentum, weight_decay, seed) and score the test clips by
    their frames' mean softmax: after every epoch with `test` among `selections` or with selection inner
    (pipeline/selection.py), after the last otherwise."""
    started = time.perf_counter()
    torch.set_num_threads(threads)
    keep_freed_memory()
    class_index = {name: i for i, name in enumerate(classes)}
    inputs, table = [], []
    for clip in iter_aligned_clips(aligned_h5):
        if clip.label not in class_index:
            raise MerflowError(f"{aligned_h5}: clip {clip.clip_id} has label {clip.label!r}, not in {list(classes)}")
        inputs.append(clip_frames(clip.frames, params["frames_per_clip"], params["input_size"], clip_apex_index(clip)))
        table.append(clip_row(clip))
    clips = pd.DataFrame(table)
    folds = pd.read_csv(folds_csv, dtype={"clip_id": str, "subject": str, "label": str})
    rows = fold_rows(clips, folds, fold, os.fspath(aligned_h5), selection, inner)
    every_epoch = selection == "inner" or "test" in selections

    model = make_model()
    x_train = torch.from_numpy(np.concatenate([inputs[r] for r in rows.train]))
    y_train = torch.from_numpy(np.concatenate([np.full(len(inputs[r]), class_index[clips["label"][r]])
                                               for r in rows.train]))
    optimizer = torch.optim.SGD(model.parameters(), lr=params["lr"], momentum=params["momentum"],
                                weight_decay=params["weight_decay"])
    generator = torch.Generator().manual_seed(params["seed"])
    by_epoch = []
    model.train()
    for epoch in tqdm(range(1, params["epochs"] + 1), desc=f"{method} fold {fold}", unit="epoch"):
        for batch in torch.randperm(len(x_train), generator=generator).split(params["batch_size"]):
            loss = F.cross_entropy(model(x_train[batch]), y_train[batch])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
        if every_epoch or epoch == params["epochs"]:
            by_epoch.append(clip_probabilities(model, inputs, rows.watched))
    sources = {"aligned": aligned_h5, "folds": folds_csv, **({"weights": weights} if weights else {})}
    record = provenance(method, {**params, "fold": fold, "selection": selection}, sources)
    extra = {"n_train_clips": len(rows.train), "n_train_samples": len(x_train), "method": method, "fold": fold,
             "seconds": round(time.perf_counter() - started, 3), "provenance": record}
    write_fold_with_epochs(out_dir, clips, rows.test, rows.validation, np.stack(by_epoch), [], classes=classes,
                           selection=selection, inner=inner, extra=extra, record=record, epochs=params["epochs"],
                           every_epoch=every_epoch)
