"""Where training runs: the torch device, host-to-device copies, bf16 autocast, determinism; and
reading a torch file a user points at, with a clear error.

Shared by pipeline/train.py and `merflow predict`, so that a checkpoint is evaluated the way it was
tested (same precision, same memory layout).
"""

from __future__ import annotations

import os
import sys
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import numpy as np
import torch

from pipeline.errors import MerflowError

PRECISIONS = ("fp32", "bf16")        # train.precision: the dtype of autocast's convs (see `autocast`)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Let glibc's malloc keep the memory a process frees and hand it out again, instead of returning
    every large block to the kernel: a CPU training step allocates and frees several 100 MB tensors (the
    RCNN's first maps and their gradients), which malloc serves by mmap above 32 MB, so each step
    faulted in and zeroed the same pages again (about 140,000 page faults a step at M = 8, batch 64).
    With mmap off and trimming off, a fold's steps reuse one heap: a demo fold 7 % faster on the 2-core
    Xeon, for a peak resident size 8 % larger (bench/README.md). False where the C library is not glibc
    (nothing changes)."""
    if not sys.platform.startswith("linux"):
        return False
    import ctypes
    try:
        libc = ctypes.CDLL(None)
        mallopt = libc.mallopt
    except (OSError, AttributeError):
        return False
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise MerflowError(f"train.device is {device!r} but torch sees no CUDA device (use auto or cpu)")
    return torch.device(device)


def to_device(array: np.ndarray, device: torch.device) -> torch.Tensor:
    """A host array on the device; on CUDA through pinned memory, so the copy does not wait for
    the GPU to finish the previous batch."""
    tensor = torch.from_numpy(array)
    if device.type == "cuda":
        tensor = tensor.pin_memory().to(device, non_blocking=True)
    return tensor


def to_device_images(samples: np.ndarray, device: torch.device) -> torch.Tensor:
    """uint8 clips on the device in channels_last (~2x faster convs for this net, also on CPU); they
    become float inside the model, so only a quarter of the bytes cross to a GPU."""
    return to_device(samples, device).contiguous(memory_format=torch.channels_last)


def autocast(device: torch.device, precision: str = "fp32"):
    """bf16 autocast (convs and the linear layer compute in bf16; the weights, BatchNorm's statistics and
    the loss stay fp32) or plain fp32, the default: bf16's speed and how it learns depend on the CPU
    (bench/README.md, "Precision and CPU kernel paths")."""
    if precision not in PRECISIONS:
        raise MerflowError(f"train.precision must be one of {PRECISIONS}, got {precision!r}")
    return torch.autocast(device.type, dtype=torch.bfloat16) if precision == "bf16" else nullcontext()


def check_precision(device: torch.device, precision: str) -> None:
    """Refuse an unknown precision before any work; warn when bf16 is asked of a CPU that has no
    native bf16 (it still works, only slowly)."""
    if precision not in PRECISIONS:
        raise MerflowError(f"train.precision must be one of {PRECISIONS}, got {precision!r}")
    if precision == "bf16" and device.type == "cpu" and not torch.ops.mkldnn._is_mkldnn_bf16_supported():
        print("warning: train.precision is bf16 but this CPU has no native bf16 (avx512_bf16/AMX); "
              "training will be slower than with fp32", file=sys.stderr)


def set_determinism(deterministic: bool) -> None:
    """train.deterministic: cuDNN's autotuner off and torch's deterministic algorithms on (an error
    where an op has none), so a GPU run gives the same weights every time; off, cuDNN picks the
    fastest kernels per shape, which can differ from run to run. The CPU path is deterministic
    either way. CUBLAS_WORKSPACE_CONFIG is what cuBLAS needs for deterministic matrix products."""
    torch.backends.cudnn.benchmark = not deterministic
    torch.backends.cudnn.deterministic = deterministic
    torch.use_deterministic_algorithms(deterministic)
    if deterministic:
        os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def load_torch_file(path: str | os.PathLike, what: str) -> Any:
    """torch.load on the CPU with weights_only; a missing or unreadable file is a MerflowError that
    names the file and `what` it should have been."""
    path = Path(path)
    if not path.is_file():
        raise MerflowError(f"{path}: no such file (expected {what})")
    try:
        return torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:       # torch raises many types for a file that is not one it wrote
        raise MerflowError(f"{path}: not {what} ({type(error).__name__}: {error})") from None
