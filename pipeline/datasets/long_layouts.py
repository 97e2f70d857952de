"""The long-video layouts merflow reads for spotting, one entry per dataset as its owners ship it.

`merflow check-dataset ROOT --layout L` and `merflow synth --layout L` know these beside the short-clip
layouts of layouts.py; their synthetic writers are in long_video_synth.py (LONG_WRITERS, same keys).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from pipeline.datasets.casme_sq import CASME_SQ_FPS, read_casme_sq
from pipeline.datasets.long_videos import LongReader, LongVideo, LongVideoProblem
from pipeline.datasets.samm_lv import SAMM_LV_FPS, read_samm_lv
from pipeline.errors import DatasetError


@dataclass(frozen=True)
class LongLayout:
    title: str                 # the dataset's name, for messages and docs
    reader: LongReader
    fps: float                 # recording frame rate


LONG_LAYOUTS: dict[str, LongLayout] = {
    "casme_sq": LongLayout("CAS(ME)² long videos", read_casme_sq, CASME_SQ_FPS),
    "samm_lv": LongLayout("SAMM Long Videos", read_samm_lv, SAMM_LV_FPS),
}


def read_long_videos(root: Path, layout: str) -> tuple[list[LongVideo], pd.DataFrame, list[LongVideoProblem]]:
    """Read a long-video tree with its layout's reader; a missing root is a DatasetError."""
    root = Path(root)
    if not root.is_dir():
        raise DatasetError(LONG_LAYOUTS[layout].title, [f"dataset root {root} does not exist"])
    return LONG_LAYOUTS[layout].reader(root)
