"""`merflow predict`: a new video (or a folder of frames) through a trained model.

The clip is preprocessed exactly as the model's training data was: the face found with dlib and
aligned with one similarity transform (pipeline.faces), magnified with EVM (pipeline.evm), resized,
cropped and jittered into V tensors (pipeline.jitter), using the align, magnify and tensors params
that model.pt records (each artifact's provenance carries the params of the stages upstream of it,
see pipeline.artifacts.upstream_params). The class probabilities are the mean softmax over the V
jittered tensors, as in testing (pipeline.train.clip_softmax).

The whole input is taken as one clip from onset to offset: trim a longer video to the expression
first. EVM's temporal band-pass is given per frame (r1, r2); when the model's magnify params have a
`reference_fps`, r1 and r2 hold at that rate and are converted to the input's (as the magnify stage
does per clip), so the input's frame rate matters: a video's own, or `fps` for a folder of frames.
"""

from __future__ import annotations

import json
import os
import re
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import cv2
import numpy as np
import torch

from pipeline.devices import load_torch_file
from pipeline.errors import BadInputError, MerflowError

FRAME_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
PREPROCESSING_STAGES = ("align", "magnify", "tensors")


# --- reading the input ------------------------------------------------------------------------------

def natural_key(name: str) -> list:
    """img2.jpg before img10.jpg, as CASME II numbers its frames."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", name)]


def frame_paths(folder: Path) -> list[Path]:
    """The jpg/png/bmp frame files of a folder in natural order (MerflowError if there are none)."""
    paths = sorted((p for p in folder.iterdir() if p.suffix.lower() in FRAME_SUFFIXES and p.is_file()),
                   key=lambda p: natural_key(p.name))
    if not paths:
        raise MerflowError(f"{folder}: no frames ({', '.join(FRAME_SUFFIXES)}) in this folder")
    return paths


def read_frame_dir(folder: Path) -> tuple[np.ndarray, list[str]]:
    """The jpg/png/bmp frames of a folder in natural order, as uint8 (T, H, W, 3) RGB, and their paths."""
    from pipeline.imageio import read_rgb
    paths = frame_paths(folder)
    frames = [read_rgb(path, folder.name) for path in paths]
    for path, frame in zip(paths, frames, strict=True):
        if frame.shape != frames[0].shape:
            raise MerflowError(f"{path}: frame is {frame.shape[1]}x{frame.shape[0]}, the first frame "
                               f"{paths[0].name} is {frames[0].shape[1]}x{frames[0].shape[0]}")
    return np.stack(frames), [os.fspath(p) for p in paths]


def read_video(path: Path) -> tuple[np.ndarray, list[str], float | None]:
    """Every frame of a video file (cv2.VideoCapture) as uint8 (T, H, W, 3) RGB, names path#N, and the
    frame rate the container states (None if it states none)."""
    capture = cv2.VideoCapture(os.fspath(path))
    try:
        if not capture.isOpened():
            raise MerflowError(f"{path}: not a readable video or image folder (OpenCV cannot open it)")
        fps = capture.get(cv2.CAP_PROP_FPS)
        frames = []
        while True:
            ok, frame = capture.read()
            if not ok:
                break
            frames.append(cv2.cvtColor(frame, cv2.COLOR_BGR2RGB))
    finally:
        capture.release()
    if not frames:
        raise MerflowError(f"{path}: not a readable video (no frame decodes)")
    return np.stack(frames), [f"{path}#frame{t}" for t in range(len(frames))], (fps if fps > 0 else None)


def read_input(path: str | os.PathLike) -> tuple[np.ndarray, list[str], float | None]:
    """Frames, their names and the frame rate (None for a folder of frames) of a video or frame folder."""
    path = Path(path)
    if path.is_dir():
        return (*read_frame_dir(path), None)
    if not path.is_file():
        raise MerflowError(f"{path}: no such video file or frame folder")
    if path.stat().st_size == 0:
        raise MerflowError(f"{path}: the file is empty (0 bytes)")
    return read_video(path)


# --- the model and the params it was trained with ---------------------------------------------------

def load_checkpoint(model_pt: str | os.PathLike) -> dict:
    """model.pt as pipeline.train writes it, checked for the keys predict needs."""
    model_pt = Path(model_pt)
    checkpoint = load_torch_file(model_pt, "a merflow model.pt")
    missing = [key for key in ("state_dict", "config", "classes", "provenance") if key not in checkpoint]
    if not isinstance(checkpoint, dict) or missing:
        raise MerflowError(f"{model_pt}: not a merflow model.pt (missing {', '.join(missing)})")
    return checkpoint


def preprocessing_params(checkpoint: Mapping, model_pt: str | os.PathLike) -> dict[str, dict]:
    """{align, magnify, tensors: params} that the model's training tensors were made with."""
    upstream = checkpoint["provenance"].get("upstream", "{}")
    upstream = json.loads(upstream) if isinstance(upstream, str) else dict(upstream)
    missing = [stage for stage in PREPROCESSING_STAGES if stage not in upstream]
    if missing:
        raise MerflowError(f"{model_pt}: the model does not record the {', '.join(missing)} params its input "
                           "was made with (trained by an older merflow); retrain it, or pass --params with "
                           "the params files it was trained with")
    return {stage: dict(upstream[stage]) for stage in PREPROCESSING_STAGES}


def params_from_files(params: Mapping) -> dict[str, dict]:
    """The align, magnify and tensors sections of loaded params files, as the stages record them (the
    magnify stage also records align.eye_y, its QC strip's eye row)."""
    from pipeline.stages import stage_params
    return {stage: stage_params(params, stage) if stage == "magnify" else dict(params[stage])
            for stage in PREPROCESSING_STAGES}


# Recorded magnify params that do not change a clip's tensors: eye_y (the QC strip's eye row) and device
# (the NumPy and torch paths agree within 1 grey level; predict runs the NumPy path).
NOT_PREPROCESSING = {"magnify": {"eye_y", "device"}}


def params_differences(recorded: Mapping[str, Mapping], wanted: Mapping[str, Mapping]) -> list[str]:
    """'stage.key: model X, params Y' for every preprocessing param that differs (classes aside: the
    tensors stage records the mapping's classes, which the model's own class list covers; nor the
    NOT_PREPROCESSING keys)."""
    lines = []
    for stage in PREPROCESSING_STAGES:
        mine, theirs = recorded.get(stage, {}), wanted.get(stage, {})
        for key in sorted((set(mine) | set(theirs)) - {"classes"} - NOT_PREPROCESSING.get(stage, set())):
            if mine.get(key, "(not set)") != theirs.get(key, "(not set)"):
                lines.append(f"{stage}.{key}: model {json.dumps(mine.get(key))}, params {json.dumps(theirs.get(key))}")
    return lines


def check_model_fits(checkpoint: Mapping, prep: Mapping[str, Mapping], model_pt: str | os.PathLike) -> None:
    """The network's input size and classes agree with the tensors params (a mismatch means the
    checkpoint was edited or assembled from different runs)."""
    config, tensors = checkpoint["config"], prep["tensors"]
    problems = []
    if config["pixels"] != tensors["pixels"] or config["frames"] != tensors["frames"]:
        problems.append(f"the network takes {config['pixels']} pixels x {config['frames']} frames, the tensors "
                        f"params make {tensors['pixels']} x {tensors['frames']}")
    if config["n_classes"] != len(checkpoint["classes"]):
        problems.append(f"the network has {config['n_classes']} outputs for classes {checkpoint['classes']}")
    if "classes" in tensors and list(tensors["classes"]) != list(checkpoint["classes"]):
        problems.append(f"classes {checkpoint['classes']} but the tensors were labelled {tensors['classes']}")
    if problems:
        raise MerflowError(f"{model_pt}: the model and the params it records disagree: " + "; ".join(problems))


def build_model(checkpoint: Mapping) -> torch.nn.Module:
    from pipeline.model import RCNN, RCNNConfig
    model = RCNN(RCNNConfig(**checkpoint["config"]))
    model.load_state_dict(checkpoint["state_dict"])
    return model.to(memory_format=torch.channels_last).eval()     # as the training stage holds it


# --- preprocessing and prediction -------------------------------------------------------------------

def magnify_kwargs(magnify_params: Mapping[str, Any], fps: float | None) -> dict[str, Any]:
    """pipeline.evm.magnify's keyword arguments for a clip at `fps`: r1 and r2 converted from the
    params' reference_fps as the magnify stage does (params without one filter per frame). EVM runs on
    the NumPy path whatever device the model's training clips were magnified on."""
    skipped = ("enabled", "reference_fps", "eye_y", "device")
    kwargs = {k: v for k, v in magnify_params.items() if k not in skipped}
    if "reference_fps" in magnify_params and fps is not None:
        from pipeline.evm import rate_at_fps
        for rate in ("r1", "r2"):
            kwargs[rate] = rate_at_fps(kwargs[rate], fps, magnify_params["reference_fps"])
    return kwargs


def clip_tensors(frames: np.ndarray, frame_names: list[str], prep: Mapping[str, Mapping], clip_id: str,
                 fps: float | None = None) -> tuple[np.ndarray, int]:
    """The clip's V jittered tensors, uint8 (V, 3, pixels, frames), and the frame its face was found on."""
    from pipeline.evm import magnify
    from pipeline.faces import align_clip, clip_landmarks
    from pipeline.jitter import MIN_SELECTED_FRAMES, clip_rng, jitter_clip, resize_frames, selected_frame_count
    from pipeline.jitter import subtract_onset as subtract_onset_frame

    align, tensors = prep["align"], prep["tensors"]
    shortest = selected_frame_count(len(frames), min(tensors["keep_ratios"]))
    if shortest < MIN_SELECTED_FRAMES:
        raise MerflowError(f"{clip_id}: {len(frames)} frame(s); keep-ratio {min(tensors['keep_ratios'])} would "
                           f"keep {shortest}, at least {MIN_SELECTED_FRAMES} are needed")
    try:
        landmarks, landmark_frame = clip_landmarks(frames, frame_names, clip_id, upsample=align["detector_upsample"],
                                                   min_score=align["min_score"])
    except BadInputError as error:
        raise MerflowError(f"{clip_id}: {error.reason}") from None
    aligned = align_clip(frames, landmarks, height=align["height"], width=align["width"], eye_y=align["eye_y"],
                         eye_distance=align["eye_distance"])
    if prep["magnify"].get("enabled", True):
        aligned = magnify(aligned, **magnify_kwargs(prep["magnify"], fps))
    resized = resize_frames(aligned, tensors["height"], tensors["width"])
    if tensors.get("subtract_onset_frame", False):
        resized = subtract_onset_frame(resized)
    variants = jitter_clip(resized, keep_ratios=tensors["keep_ratios"], kernels=tensors["kernels"],
                           frames_out=tensors["frames"], crop=tensors["crop"], pixels=tensors["pixels"],
                           rng=clip_rng(tensors["seed"], clip_id))
    return variants, landmark_frame


def mean_softmax(model: torch.nn.Module, variants: np.ndarray, checkpoint: Mapping) -> np.ndarray:
    """Class probabilities of one clip, computed as the training stage tested the model: on the CPU,
    in the precision and batch size it was trained with (fp32 for a model that records none)."""
    from pipeline.train import clip_softmax
    params = checkpoint.get("params", {})
    return clip_softmax(model, variants, params.get("batch_size", 64), torch.device("cpu"),
                        params.get("precision", "fp32"))


def predict(input_path: str | os.PathLike, model_pt: str | os.PathLike, params: Mapping | None = None,
            fps: float | None = None) -> dict[str, Any]:
    """Class probabilities of one clip. With `params` (loaded params files), refuse a model whose
    preprocessing params differ from them; without, use the model's own (or fail if it has none).
    `fps` overrides the input's frame rate (a folder of frames has none of its own)."""
    checkpoint = load_checkpoint(model_pt)
    if params is None:
        prep = preprocessing_params(checkpoint, model_pt)
    else:
        wanted = params_from_files(params)
        try:
            prep = preprocessing_params(checkpoint, model_pt)
        except MerflowError:
            print(f"warning: {model_pt} records no preprocessing params; using those given, which cannot be "
                  "checked against the model's training data", file=sys.stderr)
            prep = wanted
        differences = params_differences(prep, wanted)
        if differences:
            raise MerflowError(f"{model_pt} was trained with different params than those given:\n  "
                               + "\n  ".join(differences))
    check_model_fits(checkpoint, prep, model_pt)
    model = build_model(checkpoint)

    input_path = Path(input_path)
    print(f"reading {input_path}", file=sys.stderr)
    frames, frame_names, input_fps = read_input(input_path)
    fps = fps or input_fps
    if fps is None and "reference_fps" in prep["magnify"]:
        fps = prep["magnify"]["reference_fps"]
        print(f"no frame rate given: taking the frames to be at the model's magnify.reference_fps, {fps:g} fps "
              "(--fps to set it)", file=sys.stderr)
    clip_id = input_path.stem or input_path.name
    print(f"{len(frames)} frames of {frames.shape[2]}x{frames.shape[1]}: detecting, aligning, magnifying, "
          f"jittering", file=sys.stderr)
    variants, landmark_frame = clip_tensors(frames, frame_names, prep, clip_id, fps)
    probabilities = mean_softmax(model, variants, checkpoint)
    classes = list(checkpoint["classes"])
    return {"input": os.fspath(input_path), "model": os.fspath(model_pt), "frames": len(frames), "fps": fps,
            "face_frame": landmark_frame, "variants": len(variants),
            "method": checkpoint.get("params", {}).get("method"), "classes": classes,
            "probabilities": {c: round(float(p), 6) for c, p in zip(classes, probabilities, strict=True)},
            "predicted": classes[int(np.argmax(probabilities))]}


def format_prediction(result: Mapping[str, Any]) -> str:
    """A few lines for a person: input, model, one bar per class, the prediction."""
    lines = [f"{result['input']}: {result['frames']} frames, face found on frame {result['face_frame']}, "
             f"{result['variants']} jittered tensors",
             f"model: {result['model']}" + (f" ({result['method']})" if result.get("method") else "")]
    width = max(len(c) for c in result["classes"])
    for name, p in result["probabilities"].items():
        marker = "  <- predicted" if name == result["predicted"] else ""
        lines.append(f"  {name:<{width}}  {p:6.3f}  {'#' * round(40 * p)}{marker}")
    return "\n".join(lines)
