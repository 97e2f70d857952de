"""Epoch checkpoints: resuming a training fold that was killed.

After every epoch a fold's whole training state (model, optimizer, epoch, NumPy and torch RNG states,
log) is written atomically to out_dir/checkpoint.pt. A rerun whose params, inputs and training code
give the same `resume_key` continues after the last finished epoch; any other checkpoint, or one that
cannot be read, is ignored with a warning and the fold trains from scratch.
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import torch

from pipeline.artifacts import atomic_output, canonical_json, file_sha256

CHECKPOINT_NAME = "checkpoint.pt"
# What the training maths runs: a checkpoint made by other code is not resumed.
CODE_FILES = tuple(Path(__file__).with_name(name) for name in ("train.py", "model.py", "devices.py"))


def resume_key(params: dict, tensors_h5: Path, folds_csv: Path) -> str:
    """What a checkpoint must have been made from to be resumed: the fold's params, the checksums of
    its inputs and of the training code (a checkpoint of other data, params or code is ignored)."""
    made_from = {"params": params, "tensors": file_sha256(tensors_h5), "folds": file_sha256(folds_csv),
                 "code": [file_sha256(path) for path in CODE_FILES]}
    return canonical_json(made_from)


def save_epoch_checkpoint(path: Path, key: str, epoch: int, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                          rng: np.random.Generator, log: list[dict], train_seconds: float,
                          train_samples: int) -> None:
    """Everything the next epoch depends on, written atomically (a kill leaves the previous one)."""
    state = {"key": key, "epoch": epoch, "log": log, "train_seconds": train_seconds,
             "train_samples": train_samples,
             "model": {k: v.detach().cpu() for k, v in model.state_dict().items()},
             "optimizer": optimizer.state_dict(), "numpy_rng": rng.bit_generator.state,
             "torch_rng": torch.get_rng_state(),
             "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else []}
    with atomic_output(path) as tmp, open(tmp, "wb") as handle:
        torch.save(state, handle)


def resume_from_checkpoint(path: Path, key: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
                           rng: np.random.Generator) -> tuple[int, list[dict], float, int]:
    """Restore the state of a checkpoint made from the same key: (epochs done, log, train seconds,
    train samples); (0, [], 0.0, 0) and nothing restored when there is none to resume."""
    if not path.is_file():
        return 0, [], 0.0, 0
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # whatever makes it unreadable, the answer is to start over
        print(f"warning: {path} cannot be read ({type(error).__name__}: {error}); training from scratch",
              file=sys.stderr)
        return 0, [], 0.0, 0
    if not isinstance(state, dict) or state.get("key") != key:
        print(f"warning: {path} was made from other params, inputs or code; training from scratch",
              file=sys.stderr)
        return 0, [], 0.0, 0
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    if state["cuda_rng"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng"])
    print(f"resuming from {path}: epoch {state['epoch']} done", file=sys.stderr)
    return state["epoch"], state["log"], state["train_seconds"], state["train_samples"]
