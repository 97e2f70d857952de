"""The known errors of the owners' sheets: the corrections merflow ships (pipeline/datasets/corrections.csv)
and a user's own (params: index.corrections), checked. pipeline/datasets/sheets.py applies them to the sheet
rows they name (apply_corrections), noting each on the clip's record.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path

from pipeline.datasets.sheets import Correction, cell_text
from pipeline.errors import ParamsError

CORRECTIONS_CSV = Path(__file__).with_name("corrections.csv")
CORRECTION_FIELDS = ("onset", "apex", "offset", "emotion")


def shipped_corrections() -> list[Correction]:
    """The corrections merflow ships (pipeline/datasets/corrections.csv)."""
    with open(CORRECTIONS_CSV, newline="") as handle:
        return [Correction(**{key: (value or "").strip() for key, value in row.items()})
                for row in csv.DictReader(handle)]


def corrections_for(layout: str, extra: Sequence[dict] = ()) -> list[Correction]:
    """The shipped corrections of a layout and a user's own (params: index.corrections), checked."""
    rows = [c for c in shipped_corrections() if c.dataset == layout]
    for entry in extra:
        rows.append(Correction(dataset=layout, clip=str(entry["clip"]), field=str(entry["field"]),
                               sheet=cell_text(entry["sheet"]), corrected=cell_text(entry["corrected"]),
                               source=str(entry.get("source", "params: index.corrections"))))
    for correction in rows:
        if correction.field not in CORRECTION_FIELDS:
            raise ParamsError(f"correction {correction}: field must be one of {', '.join(CORRECTION_FIELDS)}")
    return rows
