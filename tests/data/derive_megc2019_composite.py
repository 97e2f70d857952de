"""Derive megc2019_composite.csv from the MEGC 2019 composite's public clip list.

    git clone https://github.com/wangzhifengharrison/HTNet /tmp/HTNet
    python tests/data/derive_megc2019_composite.py /tmp/HTNet/combined_3_class2_for_optical_flow.csv

HTNet's file lists the composite's 442 clips (columns dataset, sub, filename_o, label, apex, imagename,
sub_filename; label 0 = negative, 1 = positive, 2 = surprise; sha256 8ee834b7...88fd). The derived
CSV names each clip as merflow's index does: dataset is the layout (casme2, smic, samm); CASME II's clip id is
<subject>_<folder> (sub01_EP02_01f); SMIC's subject is its folder name (s1) and its clip id the clip
folder name (s1_ne_01), which HTNet keeps in `imagename` (s01_s1_ne_01.jpg) while renumbering
`sub`/`filename_o` to two digits (s01, s01_ne_01); SAMM's are as HTNet writes them (006, 006_1_2).
"""

from __future__ import annotations

import csv
import hashlib
import sys
from pathlib import Path

LABELS = {"0": "negative", "1": "positive", "2": "surprise"}
OUT = Path(__file__).with_name("megc2019_composite.csv")


def merflow_ids(row: dict[str, str]) -> tuple[str, str]:
    dataset, subject, filename = row["dataset"], row["sub"], row["filename_o"]
    if dataset == "casme2":
        return subject, f"{subject}_{filename}"
    if dataset == "smic":
        prefix = f"{subject}_"
        assert row["imagename"].startswith(prefix) and row["imagename"].endswith(".jpg"), row
        clip = row["imagename"][len(prefix):-len(".jpg")]
        return clip.split("_")[0], clip
    if dataset == "samm":
        return subject, filename
    raise ValueError(f"unknown dataset {dataset!r}")


def main(source: Path) -> None:
    digest = hashlib.sha256(source.read_bytes()).hexdigest()
    with open(source, newline="") as handle:
        rows = list(csv.DictReader(handle))
    with open(OUT, "w", newline="") as handle:
        handle.write("# MEGC 2019 composite (442 clips), derived by tests/data/derive_megc2019_composite.py from\n"
                     "# combined_3_class2_for_optical_flow.csv of github.com/wangzhifengharrison/HTNet\n"
                     f"# (sha256 {digest})\n")
        writer = csv.writer(handle, lineterminator="\n")
        writer.writerow(["dataset", "subject", "clip", "label"])
        for row in rows:
            writer.writerow([row["dataset"], *merflow_ids(row), LABELS[row["label"]]])


if __name__ == "__main__":
    main(Path(sys.argv[1]))
