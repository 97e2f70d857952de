"""Reading frames, with errors that name the clip and the file."""

from __future__ import annotations

import os

import cv2
import numpy as np

from pipeline.errors import BadInputError


def read_rgb(path: str | os.PathLike, clip_id: str) -> np.ndarray:
    """Decode one frame as uint8 (H, W, 3) RGB, or raise BadInputError naming clip and file."""
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise BadInputError(clip_id, path, "frame file is missing")
    # np.fromfile + imdecode also reads non-ASCII paths, which cv2.imread does not on every platform.
    data = np.fromfile(path, dtype=np.uint8)
    if data.size == 0:
        raise BadInputError(clip_id, path, "frame file is empty (0 bytes)")
    image = cv2.imdecode(data, cv2.IMREAD_COLOR)
    if image is None:
        raise BadInputError(clip_id, path, "frame does not decode as an image")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def write_rgb(path: str | os.PathLike, image: np.ndarray, jpeg_quality: int = 95) -> None:
    """Encode uint8 RGB to the format named by the file's extension."""
    path = os.fspath(path)
    ext = os.path.splitext(path)[1] or ".png"
    params = [cv2.IMWRITE_JPEG_QUALITY, int(jpeg_quality)] if ext.lower() in (".jpg", ".jpeg") else []
    ok, buffer = cv2.imencode(ext, cv2.cvtColor(image, cv2.COLOR_RGB2BGR), params)
    if not ok:
        raise OSError(f"could not encode {path}")
    buffer.tofile(path)
