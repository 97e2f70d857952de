"""MEGC 2019's composite database: several datasets' clips pooled under one label mapping and tested
leave-one-subject-out over all their subjects (SMIC-HS + CASME II + SAMM, 3 classes, 68 subjects in
MEGC; here any list of datasets whose index.csv and tensors.h5 exist).

A composite is built from the source datasets' artifacts, never from their raw trees:

    composite_index(indexes, emotions, classes)   index.csv rows of every source, relabelled
    composite_tensors_stage(...)                  tensors.h5 holding the chosen rows of each source's store

Clip ids and subjects are prefixed with their source ("casme2/sub01"), so that two datasets' subjects
never share a LOSO fold, and the store gains a /source column, from which the training stage scores
each source's clips apart (metrics.json `by_source`): MEGC reports the composite overall and per
source dataset. The folds of the composite are `protocols.loso_folds` of its index.

The relabelling reads each clip's original `emotion` (not the source's own 4-class label): MEGC keeps
negative, positive and surprise and drops "others". An emotion the mapping sends to null (or does not
list) leaves the clip out, with the reason, in the composite's excluded table.

One emotion table for every source cannot reproduce MEGC 2019's composite: CASME II's negative is
disgust + repression only (its fear and sadness clips are left out), while SAMM's negative is anger,
contempt, disgust, fear and sadness; and MEGC leaves four CASME II clips out by name. So
`composite_index` also takes a mapping per source (`emotions_by_source`, replacing `emotions` for that
source) and clips to leave out per source (`exclude`). MEGC 2019's are `MEGC2019_EMOTIONS` and
`megc2019_exclusions()` (pipeline/datasets/megc2019.csv), keyed by layout (casme2, smic, samm); with
them the real clip lists give MEGC's 442 clips (tests/test_composite_megc.py), except that a copy of
CASME II read from its 2014-05-08 sheet lacks sub09 EP09f (frame folders, no sheet row): 441 clips,
31 CASME II positives instead of 32.
"""

from __future__ import annotations

import csv
import json
from collections.abc import Collection, Mapping
from pathlib import Path

import h5py
import numpy as np
import pandas as pd

from pipeline.artifacts import atomic_output
from pipeline.errors import MerflowError

SEPARATOR = "/"
MEGC2019_CSV = Path(__file__).with_name("datasets") / "megc2019.csv"
EXCLUDED_BY_NAME = "excluded by name"

# MEGC 2019's composite (SMIC-HS + CASME II + SAMM, 3 classes), per source layout. Emotions are the
# index's (lower case); anything not listed (CASME II's others, fear, sadness; SAMM's other) is left out.
MEGC2019_EMOTIONS: dict[str, dict[str, str | None]] = {
    "casme2": {"disgust": "negative", "repression": "negative", "happiness": "positive", "surprise": "surprise"},
    "smic": {"negative": "negative", "positive": "positive", "surprise": "surprise"},
    "samm": {"anger": "negative", "contempt": "negative", "disgust": "negative", "fear": "negative",
             "sadness": "negative", "happiness": "positive", "surprise": "surprise"},
}
MEGC2019_CLASSES = ["negative", "positive", "surprise"]


def megc2019_exclusions() -> dict[str, dict[str, str]]:
    """The clips MEGC 2019 leaves out by name although their emotion is in its mapping, per layout:
    {layout: {clip_id: reason}} from pipeline/datasets/megc2019.csv."""
    exclusions: dict[str, dict[str, str]] = {}
    with open(MEGC2019_CSV, newline="") as handle:
        for row in csv.DictReader(line for line in handle if not line.startswith("#")):
            exclusions.setdefault(row["dataset"], {})[row["clip"]] = f"excluded by MEGC 2019's list ({row['reason']})"
    return exclusions


def composite_index(indexes: Mapping[str, pd.DataFrame], emotions: Mapping[str, str | None],
                    classes: list[str], *,
                    emotions_by_source: Mapping[str, Mapping[str, str | None]] | None = None,
                    exclude: Mapping[str, Mapping[str, str] | Collection[str]] | None = None,
                    ) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(index, excluded) of the composite: every source's clips whose emotion maps to a class, with
    `source`, prefixed clip_id and subject, label and label_index under `classes`; excluded lists the
    others (source, clip_id, emotion, reason).

    `emotions_by_source[source]`, where given, is that source's mapping instead of `emotions`.
    `exclude[source]` names clips (the source's own clip ids) to leave out whatever their emotion: a
    set of ids, or {clip_id: reason}; an id that is not in the source's index is an error (a list
    meant for other ids, e.g. another copy of the dataset, would otherwise exclude nothing). Entries
    for names that are not sources are ignored, so MEGC 2019's tables serve any subset of its sources."""
    if len(indexes) < 2:
        raise MerflowError(f"a composite needs at least two datasets, got {list(indexes)}")
    emotions_by_source = emotions_by_source or {}
    exclude = exclude or {}
    kept, dropped = [], []
    for source, index in indexes.items():
        if SEPARATOR in source:
            raise MerflowError(f"composite: dataset name {source!r} must not contain {SEPARATOR!r}")
        mapping = emotions_by_source.get(source, emotions)
        mapped = index["emotion"].astype(str).str.lower().map(lambda e, m=mapping: m.get(e))
        unknown = sorted(set(mapped.dropna()) - set(classes))
        if unknown:
            raise MerflowError(f"composite: emotions of {source} map to {unknown}, not in the classes {classes}")
        named = exclude.get(source, {})
        reasons = dict(named) if isinstance(named, Mapping) else dict.fromkeys(named, EXCLUDED_BY_NAME)
        original = index["clip_id"].astype(str)
        missing = sorted(set(reasons) - set(original))
        if missing:
            raise MerflowError(f"composite: clips to exclude from {source} are not in its index: {missing}")
        rows = index.assign(source=source, original_clip_id=index["clip_id"],
                            clip_id=source + SEPARATOR + original,
                            subject=source + SEPARATOR + index["subject"].astype(str), label=mapped)
        by_name = original.isin(reasons)
        by_emotion = mapped.isna() & ~by_name
        dropped.append(rows.loc[by_emotion, ["source", "clip_id", "emotion"]].assign(
            reason="emotion not in the composite mapping"))
        dropped.append(rows.loc[by_name, ["source", "clip_id", "emotion"]].assign(
            reason=original[by_name].map(reasons)))
        kept.append(rows[mapped.notna() & ~by_name])
    index = pd.concat(kept, ignore_index=True)
    if index.empty:
        raise MerflowError("composite: no clip of any source has an emotion in the mapping")
    index["label_index"] = index["label"].map(classes.index).astype("int64")
    return index, pd.concat(dropped, ignore_index=True)


def composite_tensors_stage(source_tensors: Mapping[str, Path], index_csv: Path, out_h5: Path,
                            classes: list[str]) -> None:
    """tensors.h5 of the composite: for each clip of the composite index, its row of its source's
    store (all jitter variants), labelled under the composite's classes; copied one clip at a time,
    so no store needs to fit in memory."""
    index = pd.read_csv(index_csv, dtype={"clip_id": str, "subject": str, "source": str,
                                          "original_clip_id": str, "label": str})
    stores = {name: h5py.File(path, "r") for name, path in source_tensors.items()}
    try:
        rows, shapes = [], set()
        for source, h5 in stores.items():
            position = {clip: i for i, clip in enumerate(h5["clip_id"].asstr()[()])}
            shapes.add(h5["x"].shape[1:])
            for clip in index.loc[index["source"] == source, "original_clip_id"]:
                if clip not in position:
                    raise MerflowError(f"composite: clip {clip} of {source}'s index is not in its tensors")
                rows.append((source, position[clip]))
        missing = sorted(set(index["source"]) - set(stores))
        if missing or len(shapes) != 1:
            raise MerflowError(f"composite: sources without tensors {missing} or different tensor shapes "
                               f"{sorted(shapes)} (every source must use the same tensors params)")
        order = [f"{source}{SEPARATOR}{stores[source]['clip_id'].asstr()[row]}" for source, row in rows]
        index = index.set_index("clip_id").loc[order].reset_index()      # the store's row order
        with atomic_output(out_h5) as tmp, h5py.File(tmp, "w") as out:
            x = out.create_dataset("x", shape=(len(rows), *shapes.pop()), dtype=np.uint8,
                                   chunks=(1, *next(iter(stores.values()))["x"].chunks[1:]))
            for i, (source, row) in enumerate(rows):
                x[i] = stores[source]["x"][row]
            for column in ("clip_id", "subject", "label", "source"):
                out[column] = index[column].tolist()
            out["label_index"] = index["label_index"].to_numpy(dtype=np.int64)
            if all("distinct_variants" in h5 for h5 in stores.values()):
                out["distinct_variants"] = np.array([stores[source]["distinct_variants"][row] for source, row in rows],
                                                    dtype=np.int64)
            out.attrs["classes"] = json.dumps(list(classes))
            out.attrs["stage"] = "composite_tensors"
            out.attrs["sources"] = json.dumps({name: str(path) for name, path in source_tensors.items()})
    finally:
        for h5 in stores.values():
            h5.close()


def confusion_by_source(sources: np.ndarray, y_true: np.ndarray, y_pred: np.ndarray,
                        n_classes: int) -> dict[str, list[list[int]]]:
    """One confusion matrix per source dataset of the test clips (rows truth, columns prediction)."""
    from pipeline.metrics import confusion
    return {str(source): confusion(y_true[sources == source], y_pred[sources == source], n_classes).tolist()
            for source in sorted(set(sources))}
