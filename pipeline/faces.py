"""Face detection and 68-point landmarks with dlib (the frontal HOG detector + iBUG 300-W predictor)."""

from __future__ import annotations

import functools
import importlib.util
from pathlib import Path

import dlib
import numpy as np


def landmark_model_path() -> Path:
    """The 68-point model shipped by face-recognition-models, found without importing the package
    (its __init__ imports pkg_resources)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        raise FileNotFoundError("face-recognition-models is not installed (pip install face-recognition-models)")
    return Path(next(iter(spec.submodule_search_locations))) / "models" / "shape_predictor_68_face_landmarks.dat"


@functools.cache
def _detector() -> dlib.fhog_object_detector:
    return dlib.get_frontal_face_detector()


@functools.cache
def _predictor() -> dlib.shape_predictor:
    return dlib.shape_predictor(str(landmark_model_path()))


def detect_landmarks(image: np.ndarray, upsample: int = 1, min_score: float = 0.3) -> np.ndarray | None:
    """68 (x, y) landmarks of the highest-scoring face in a uint8 RGB or grey image, or None.

    Boxes scoring below `min_score` are ignored: on some photos the detector fires weakly on
    clothing (e.g. 0.12 on skimage's astronaut suit) while real faces score above 0.5.
    """
    boxes, scores, _ = _detector().run(np.ascontiguousarray(image), upsample, 0.0)
    if not boxes or max(scores) < min_score:
        return None
    best = boxes[int(np.argmax(scores))]
    shape = _predictor()(np.ascontiguousarray(image), best)
    return np.array([(p.x, p.y) for p in shape.parts()], dtype=np.float32)


def eye_centres(landmarks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Centres of the subject's right eye (points 36-41, image left) and left eye (42-47)."""
    return landmarks[36:42].mean(axis=0), landmarks[42:48].mean(axis=0)
