"""results/spotting.csv: every long-video dataset and spotter of `spotting:` with MEGC's spotting scores (micro,
macro and overall precision, recall and F1, pooled over the dataset's videos: pipeline/spotting/metric.py), and
on real data the published F1 of the same spotter beside them."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline.artifacts import atomic_output

SPOTTER_NAMES = {"mdmd": "MDMD (training-free, MEGC 2020 baseline)",
                 "softnet": "SOFTNet (learned, leave one subject out)"}
# Published F1 on the real datasets: MDMD as MEGC 2020's baseline (He et al., FG 2020); SOFTNet as its authors'
# repository reports it (genbing99/SoftNet-SpotME).
PUBLISHED_F1 = {
    ("mdmd", "casme_sq"): {"macro": 0.1196, "micro": 0.0082, "overall": 0.0376},
    ("mdmd", "samm_lv"): {"macro": 0.0629, "micro": 0.0364, "overall": 0.0445},
    ("softnet", "casme_sq"): {"macro": 0.2410, "micro": 0.1173, "overall": 0.2022},
    ("softnet", "samm_lv"): {"macro": 0.2169, "micro": 0.1520, "overall": 0.1881},
}
PUBLISHED_SOURCE = {"mdmd": "He et al., FG 2020", "softnet": "Liong et al., ICIP 2021"}
COLUMNS = ["dataset", "layout", "data", "spotter", "spotter_name", "type", "tp", "fp", "fn", "precision", "recall",
           "f1", "published_f1", "published_source"]


def video_ids(spot_dir: Path) -> list[str]:
    """The ids of a spotting folder's videos, in the order of its figures (aligned.h5's groups 0, 1, ...)."""
    import h5py
    with h5py.File(spot_dir / "aligned.h5", "r") as h5:
        return [str(h5[f"videos/{n}"].attrs["video"]) for n in range(len(h5["videos"]))]


def spotting_table(datasets: Mapping[str, Mapping[str, Any]], spotters: Sequence[str],
                   scores: Mapping[tuple[str, str], pd.DataFrame]) -> pd.DataFrame:
    """One row per dataset, spotter and expression type (micro, macro, overall); `scores[(dataset, spotter)]`
    is that run's scores.csv. Published numbers only where the dataset is the real one."""
    rows = []
    for name, entry in datasets.items():
        real = not entry.get("synthetic", False)
        for spotter in spotters:
            for r in scores[name, spotter].itertuples():
                published = PUBLISHED_F1.get((spotter, entry["layout"]), {}).get(r.type) if real else None
                rows.append({"dataset": name, "layout": entry["layout"], "data": "real" if real else "synthetic",
                             "spotter": spotter, "spotter_name": SPOTTER_NAMES.get(spotter, spotter), "type": r.type,
                             "tp": int(r.tp), "fp": int(r.fp), "fn": int(r.fn), "precision": r.precision,
                             "recall": r.recall, "f1": r.f1,
                             "published_f1": np.nan if published is None else published,
                             "published_source": PUBLISHED_SOURCE.get(spotter, "") if published is not None else ""})
    return pd.DataFrame(rows, columns=COLUMNS)


def spotting_table_stage(spot_dirs: Sequence[str | os.PathLike], out_csv: Path, out_html: Path, *,
                         datasets: Mapping[str, Mapping[str, Any]], spotters: Sequence[str]) -> None:
    """The workflow's spotting rule: `spot_dirs` are the output folders (pipeline/spotting/run.py) of every
    (dataset, spotter), datasets first; the table, and a page with it and every video's figure."""
    from pipeline.report import spotting_page
    pairs = [(name, spotter) for name in datasets for spotter in spotters]
    if len(pairs) != len(spot_dirs):
        raise ValueError(f"{len(spot_dirs)} spotting folders for {len(pairs)} (dataset, spotter) pairs")
    scores = {pair: pd.read_csv(Path(folder) / "scores.csv") for pair, folder in zip(pairs, spot_dirs, strict=True)}
    table = spotting_table(datasets, spotters, scores)
    figures = {}
    for (name, spotter), folder in zip(pairs, spot_dirs, strict=True):
        figures[f"{name} / {spotter}"] = [(video, (Path(folder) / "figures" / f"{n}.png").read_bytes())
                                          for n, video in enumerate(video_ids(Path(folder)))]
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.4f")
    with atomic_output(out_html) as tmp:
        tmp.write_text(spotting_page(table, figures))
    print(table[["dataset", "spotter", "type", "precision", "recall", "f1", "published_f1"]].to_string(index=False))
