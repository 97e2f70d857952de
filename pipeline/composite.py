"""MEGC 2019's composite database: several datasets' clips pooled under one label mapping and tested
leave-one-subject-out over all their subjects (SMIC-HS + CASME II + SAMM, 3 classes, 68 subjects in
MEGC; here any list of datasets whose index.csv and aligned.h5 exist).

A composite is built from the source datasets' artifacts, never from their raw trees:

    composite_index(indexes, emotions, classes)   index.csv rows of every source, relabelled
    composite_index_stage(...)                    the same as the workflow's stage: data/{composite}/index.csv
    composite_aligned_stage(...)                  data/{composite}/aligned.h5: the chosen clips of each source's
                                                  aligned store, under the composite's ids and labels

The workflow builds a composite's aligned store and from there runs the per-dataset stages unchanged
(magnify, tensors, folds, train and every baseline read data/{composite}/...), so the hand-crafted and
CNN baselines and the RCNN all see the same clips; magnifying a copied clip gives what magnifying it in
its source would (EVM works clip by clip, at the clip's own fps). Only the chosen clips are magnified.

Clip ids and subjects are prefixed with their source ("casme2-sub01"; "-" because a clip id names an
HDF5 group and a QC file, which cannot hold "/", and no dataset name holds "-"), so that two datasets'
subjects never share a LOSO fold, and every clip carries its `source`, from which the training and the
baseline stages score each source's clips apart (metrics.json `by_source`): MEGC reports the composite
overall and per source dataset. The folds of the composite are `protocols.loso_folds` of its index.

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
import shutil
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path

import h5py
import pandas as pd
from tqdm import tqdm

from pipeline.artifacts import (
    atomic_directory,
    atomic_output,
    open_h5_for_write,
    provenance,
    read_clip,
    write_clip,
    write_provenance,
)
from pipeline.errors import BadInputError, MerflowError

SEPARATOR = "-"
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


EXCLUDED_COLUMNS = ["source", "clip_id", "emotion", "reason"]
EXCLUSION_LISTS = {"megc2019": megc2019_exclusions}     # dataset.<composite>.exclude: clips left out by name


def composite_index_stage(source_indexes: Sequence[Path], out_csv: Path, excluded_csv: Path, *, dataset: str,
                          sources: Sequence[str], layouts: Mapping[str, str], synthetic: Mapping[str, bool],
                          classes: list[str], emotions: Mapping[str, str | None],
                          emotions_by_layout: Mapping[str, Mapping[str, str | None]], exclude: str | None) -> None:
    """data/{composite}/index.csv and excluded.csv from the sources' index.csv files (in `sources` order).

    A source is relabelled with `emotions_by_layout[its layout]` where the mapping has one, else with
    `emotions`. `exclude` names a list of clips to leave out by name (megc2019: MEGC 2019's, per layout);
    it applies to the sources read from a real copy only: a synthetic stand-in has none of those clips."""
    if len(source_indexes) != len(sources):
        raise MerflowError(f"composite {dataset}: {len(sources)} sources but {len(source_indexes)} index files")
    indexes = {source: pd.read_csv(path, dtype={"clip_id": str, "subject": str, "emotion": str},
                                   keep_default_na=False)
               for source, path in zip(sources, source_indexes, strict=True)}
    by_source = {source: emotions_by_layout[layouts[source]] for source in sources
                 if layouts[source] in emotions_by_layout}
    excluded_by_name: dict[str, Mapping[str, str]] = {}
    if exclude is not None:
        lists = EXCLUSION_LISTS[exclude]()
        excluded_by_name = {source: lists.get(layouts[source], {}) for source in sources if not synthetic[source]}
        skipped = [source for source in sources if synthetic[source]]
        if skipped:
            print(f"{dataset}: {exclude}'s clips left out by name are not applied to the synthetic "
                  f"{', '.join(skipped)}")
    index, excluded = composite_index(indexes, emotions, classes, emotions_by_source=by_source,
                                      exclude=excluded_by_name)
    index["dataset"] = dataset
    with atomic_output(out_csv) as tmp_index, atomic_output(excluded_csv) as tmp_excluded:
        index.to_csv(tmp_index, index=False)
        excluded[EXCLUDED_COLUMNS].to_csv(tmp_excluded, index=False)
    for source in sources:
        rows = index[index["source"] == source]
        counts = ", ".join(f"{label} {rows['label'].eq(label).sum()}" for label in classes)
        print(f"{dataset}: {source}: {len(rows)} clips ({counts}) of {rows['subject'].nunique()} subjects; "
              f"{int(excluded['source'].eq(source).sum())} left out")
    print(f"{dataset}: {len(index)} clips of {index['subject'].nunique()} subjects")


def composite_aligned_stage(index_csv: Path, source_aligned: Sequence[Path], source_qc: Sequence[Path], out_h5: Path,
                            qc_dir: Path, *, sources: Sequence[str]) -> None:
    """data/{composite}/aligned.h5 and align_qc/: each clip of the composite index copied from its source's
    aligned store (frames, landmarks, transform and attributes) under the composite's clip id, with the
    composite's subject, label and label_index and its `source`; its QC thumbnail copied too."""
    index = pd.read_csv(index_csv, dtype={"clip_id": str, "subject": str, "source": str, "original_clip_id": str,
                                          "label": str})
    stores = dict(zip(sources, source_aligned, strict=True))
    thumbnails = dict(zip(sources, map(Path, source_qc), strict=True))
    unknown = sorted(set(index["source"]) - set(stores))
    if unknown:
        raise MerflowError(f"{index_csv}: sources {unknown} are not among the composite's sources {list(sources)}")
    inputs = {"index": index_csv, **{f"aligned_{source}": path for source, path in stores.items()}}
    files = {source: h5py.File(path, "r") for source, path in stores.items()}
    try:
        with (atomic_output(out_h5) as tmp_h5, atomic_directory(qc_dir) as tmp_qc, open_h5_for_write(tmp_h5) as out):
            write_provenance(out, provenance("composite_aligned", {"sources": list(sources)}, inputs))
            out.require_group("clips")
            for row in tqdm(index.itertuples(), total=len(index), desc=f"composite {Path(index_csv).parent.name}",
                            unit="clip"):
                source = files[row.source]
                if row.original_clip_id not in source["clips"]:
                    raise BadInputError(row.original_clip_id, stores[row.source],
                                        "clip of the composite's index is not in its source's aligned store")
                frames, attrs = read_clip(source, row.original_clip_id)
                group = source["clips"][row.original_clip_id]
                arrays = {name: group[name][()] for name in group if name != "frames"}
                attrs |= {"subject": row.subject, "label": row.label, "label_index": int(row.label_index),
                          "source": row.source, "original_clip_id": row.original_clip_id}
                write_clip(out, row.clip_id, frames, attrs, **arrays)
                thumbnail = thumbnails[row.source] / f"{row.original_clip_id}.png"
                if thumbnail.is_file():
                    shutil.copyfile(thumbnail, tmp_qc / f"{row.clip_id}.png")
    finally:
        for h5 in files.values():
            h5.close()
