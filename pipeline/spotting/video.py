"""A long video's face, aligned frame by frame and streamed, for spotting.

A clip of a recognition dataset is aligned with one transform (pipeline/faces.py: dlib's landmarks jitter by
about a pixel between frames, as much as a micro-expression moves). A long video cannot be: over minutes the
head drifts and turns. So the face is found again every `redetect_seconds` (a key frame), and each frame is
aligned with the eye centres interpolated linearly between the key frames around it (eyes to the template,
as pipeline/faces.py aligns clips). The head's slow movements are followed smoothly, without the jumps a
new transform at each detection would put into the aligned video, and the landmarks' jitter is spread over
a second: about 0.2 px between frames 0.2 s apart for a 1 px jitter, against the 1-3 px a micro-expression
moves.

Two passes over the frames: the first decodes the key frames and finds the face in them, the second aligns
every frame. A frame that cannot be read yields no image: its frame and the reason are reported
(`SpottingProblem`) and the rest of the video goes on. A key frame without a face is reported and the eyes
are interpolated across it from the nearest key frames that have one (a hand in front of the face or a
turned head: the aligned face changes there, which the spotter sees as movement); a video with no face in
any key frame yields no image at all. At most one decoded frame is held, so a 200 fps video of any length
fits in memory.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from pipeline.errors import BadInputError
from pipeline.faces import detect_landmarks, eye_centres, similarity_from_eyes, warp_to_template
from pipeline.imageio import read_rgb


@dataclass(frozen=True)
class FaceRegistration:
    """How a long video's face is aligned: the template (as the `align` params), the aligned size, and how often
    the face is found again (the key frames)."""
    height: int = 128
    width: int = 128
    eye_y: float = 0.34
    eye_distance: float = 0.40
    detector_upsample: int = 1
    min_score: float = 0.3
    redetect_seconds: float = 1.0


@dataclass(frozen=True)
class AlignedFrame:
    """One frame of a long video: its number (the dataset's) and its aligned grey face (None when there is none)."""
    number: int
    image: np.ndarray | None


@dataclass(frozen=True)
class SpottingProblem:
    """Something in a video that spotting read around: the video, the frame (its file) and what happened."""
    video: str
    frame: int
    path: str
    reason: str

    def __str__(self) -> str:
        return f"{self.video} frame {self.frame} ({self.path}): {self.reason}"


# A frame as a source gives it: its number, where it is (a file, or video#N), the RGB image or None, and why not.
SourceFrame = tuple[int, str, np.ndarray | None, str | None]


def frame_files(video: str, frames: Iterable[tuple[int, Path]]) -> Iterator[SourceFrame]:
    """The frames of a folder of image files ((frame number, file) pairs, ascending), decoded one at a time."""
    for number, path in frames:
        try:
            yield number, os.fspath(path), read_rgb(path, video), None
        except BadInputError as error:
            yield number, os.fspath(path), None, error.reason


def video_file_frames(path: Path) -> Iterator[SourceFrame]:
    """The frames of a video file (anything OpenCV reads), numbered from 1, decoded one at a time."""
    capture = cv2.VideoCapture(os.fspath(path))
    if not capture.isOpened():
        raise BadInputError(Path(path).name, path, "OpenCV cannot open this video file")
    number = 0
    try:
        while True:
            ok, bgr = capture.read()
            if not ok:
                return
            number += 1
            yield number, f"{os.fspath(path)}#{number}", cv2.cvtColor(bgr, cv2.COLOR_BGR2RGB), None
    finally:
        capture.release()


def key_frame_eyes(video: str, frames: Iterable[SourceFrame], every: int, registration: FaceRegistration,
                   problems: list[SpottingProblem]) -> dict[int, np.ndarray]:
    """The eye centres ((2, 2): image-left eye, image-right eye) found in every `every`-th frame, by position
    in the video; a key frame without a face is reported and left out."""
    eyes = {}
    for position, (number, path, rgb, _) in enumerate(frames):
        if position % every or rgb is None:      # an unreadable frame is reported by the second pass
            continue
        landmarks = detect_landmarks(rgb, registration.detector_upsample, registration.min_score)
        if landmarks is None:
            problems.append(SpottingProblem(video, number, path, f"no face found (dlib score >= "
                                            f"{registration.min_score}) in this key frame"))
        else:
            eyes[position] = np.asarray(eye_centres(landmarks), dtype=np.float64)
    return eyes


def interpolated_eyes(keys: dict[int, np.ndarray], position: int) -> np.ndarray:
    """The eye centres at a frame: linear between the key frames around it, the nearest one's beyond them."""
    positions = np.fromiter(keys, dtype=np.int64)
    after = int(np.searchsorted(positions, position))
    if after == 0 or after == len(positions):
        return keys[int(positions[min(after, len(positions) - 1)])]
    before, next_ = int(positions[after - 1]), int(positions[after])
    weight = (position - before) / (next_ - before)
    return (1 - weight) * keys[before] + weight * keys[next_]


def aligned_frames(video: str, frames: Callable[[], Iterable[SourceFrame]], fps: float,
                   registration: FaceRegistration, problems: list[SpottingProblem]) -> Iterator[AlignedFrame]:
    """The aligned grey face of every frame of a video, in order; `frames` gives the video's frames afresh
    for each of the two passes (`frame_files`, `video_file_frames`); what could not be read or registered
    is appended to `problems` (module docstring)."""
    every = max(1, round(registration.redetect_seconds * fps))
    keys = key_frame_eyes(video, frames(), every, registration, problems)
    if not keys:
        problems.append(SpottingProblem(video, -1, video, "no face found in any key frame: nothing to spot"))
    h, w = registration.height, registration.width
    for position, (number, path, rgb, unreadable) in enumerate(frames()):
        if rgb is None:
            problems.append(SpottingProblem(video, number, path, f"unreadable: {unreadable}"))
        if rgb is None or not keys:
            yield AlignedFrame(number, None)
            continue
        matrix = similarity_from_eyes(interpolated_eyes(keys, position), height=h, width=w, eye_y=registration.eye_y,
                                      eye_distance=registration.eye_distance)
        yield AlignedFrame(number, cv2.cvtColor(warp_to_template(rgb, matrix, h, w), cv2.COLOR_RGB2GRAY))
