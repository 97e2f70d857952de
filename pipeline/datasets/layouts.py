"""The layouts merflow reads: one entry per dataset as its owners distribute it.

Each entry names the adapter that reads the tree, the label mapping (a key of `mappings:` in
params.yaml) that fits the dataset's own labels, its recording frame rate, its variants (the first is
the default) and how its sheet codes the apex. `merflow check-dataset ROOT --layout L` reads this
table, so a layout added here is known everywhere; its synthetic writer goes into WRITERS (same key) in
pipeline/datasets/synth_writers.py, so that reading a tree never depends on the code that writes one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from pipeline.datasets.casme import read_casme
from pipeline.datasets.casme2 import read_casme2
from pipeline.datasets.casme3 import read_casme3a
from pipeline.datasets.fourdme import read_fourdme
from pipeline.datasets.mmew import read_mmew
from pipeline.datasets.samm import read_samm
from pipeline.datasets.sheets import ClipProblem
from pipeline.datasets.smic import read_smic
from pipeline.errors import ParamsError

# reader(root, emotions, classes, variant) -> (clip records, problems)
Reader = Callable[[Path, dict[str, str | None], list[str], str | None], tuple[list[dict], list[ClipProblem]]]


@dataclass(frozen=True)
class Layout:
    title: str                   # the dataset's name, for messages and docs
    reader: Reader
    mapping: str                 # default label mapping (key of `mappings:`)
    fps: float                   # recording frame rate of the default variant
    variants: tuple[str, ...] = ("raw",)
    apex: str = "sheet"          # "sheet": coded per clip (some rows may lack it); "none": never coded


LAYOUTS: dict[str, Layout] = {
    "casme2": Layout("CASME II", read_casme2, "paper4", 200, ("raw", "cropped")),
    "casme": Layout("CASME", read_casme, "paper4", 60),
    "smic": Layout("SMIC", read_smic, "megc3", 100, ("HS", "VIS", "NIR"), apex="none"),
    "samm": Layout("SAMM", read_samm, "paper4", 200),
    "casme3a": Layout("CAS(ME)3 Part A", read_casme3a, "paper4", 30),
    "mmew": Layout("MMEW", read_mmew, "paper4", 90),
    "4dme": Layout("4DME", read_fourdme, "paper4", 60),
}


def layout(name: str, where: str = "layout") -> Layout:
    """The table entry of a layout, or a ParamsError naming the known ones."""
    if name not in LAYOUTS:
        raise ParamsError(f"{where}: unknown layout {name!r} (known: {', '.join(LAYOUTS)})")
    return LAYOUTS[name]
