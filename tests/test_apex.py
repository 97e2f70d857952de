"""The apex estimate for clips whose sheet codes none (pipeline/apex.py): a local movement that rises
and falls, on a textured face-sized image, with camera noise and a slow drift of the whole image."""

from __future__ import annotations

import cv2
import numpy as np
import pytest

from pipeline.apex import apex_curve, estimate_apex
from pipeline.datasets.synth import motion_profile


def texture(seed: int, height: int = 256, width: int = 192) -> np.ndarray:
    """A smooth random grey image, the scale of facial detail at the aligned size."""
    noise = np.random.default_rng(seed).normal(0, 1, (height, width)).astype(np.float32)
    smooth = cv2.GaussianBlur(noise, (0, 0), 4)
    return (128 + 40 * smooth / smooth.std()).astype(np.float32)


def moving_clip(n_frames: int, apex: int, *, amplitude_px: float = 1.0, noise: float = 1.0,
                drift_per_frame: float = 0.0, seed: int = 0) -> np.ndarray:
    """Frames in which a mouth-sized region moves down by amplitude_px * profile(t), the profile of the
    synthetic datasets (rise to 1 at `apex`, back to 0 at the offset), plus noise and a brightness drift."""
    base = texture(seed)
    h, w = base.shape
    ys, xs = np.mgrid[0:h, 0:w].astype(np.float32)
    weight = np.exp(-(((ys - 0.75 * h) / 18) ** 2 + ((xs - 0.5 * w) / 30) ** 2))
    rng = np.random.default_rng(seed + 1)
    frames = []
    for t, strength in enumerate(motion_profile(n_frames, apex)):
        shifted = cv2.remap(base, xs, ys - amplitude_px * strength * weight, cv2.INTER_CUBIC,
                            borderMode=cv2.BORDER_REFLECT)
        frame = shifted + drift_per_frame * t + rng.normal(0, noise, base.shape)
        frames.append(np.clip(frame, 0, 255).astype(np.uint8))
    return np.stack(frames)


@pytest.mark.parametrize("n_frames, apex", [(40, 12), (40, 27), (66, 30), (9, 3)])
def test_estimate_finds_the_apex_of_a_rising_and_falling_movement(n_frames, apex):
    clip = moving_clip(n_frames, apex, seed=n_frames + apex)
    assert abs(estimate_apex(clip, fps=200) - apex) <= 1


def test_a_slow_drift_of_the_whole_face_does_not_move_the_estimate():
    """Brightness rising by 0.2 grey levels per frame (8 over the clip) adds to the difference to the onset
    what it takes from the difference to the offset."""
    clip = moving_clip(40, 12, drift_per_frame=0.2, seed=3)
    curve = apex_curve(clip, fps=200)
    assert abs(int(np.argmax(curve[1:-1])) + 1 - 12) <= 1
    assert abs(estimate_apex(moving_clip(40, 12, drift_per_frame=0.0, seed=3), fps=200) - estimate_apex(clip, 200)) <= 1


def test_colour_frames_and_degenerate_clips():
    clip = moving_clip(20, 6, seed=5)
    colour = np.repeat(clip[..., None], 3, axis=-1)
    assert estimate_apex(colour, fps=100) == estimate_apex(clip, fps=100)
    still = np.full((7, 32, 24), 100, np.uint8)
    assert estimate_apex(still, fps=200) == 3                  # no change at all: the middle frame
    assert estimate_apex(still[:2], fps=200) == 1
