"""Aggregation: the per-fold metrics into Table 2, each protocol scored as its field scores it.

`aggregate_stage` reads every fold's metrics.json (pipeline/fold_results.py) of every method and seed
and writes results/table2.csv, one row per dataset, protocol and method, headed by the protocol's own
number (`headline`):

- k-fold (`kfold<k>`, clips split at random, as the paper): the mean over folds of each fold's accuracy,
  UF1 and UAR, with the corrected resampled t interval (`metrics.fold_interval`);
- leave one subject out (`loso`, and every composite's per-source row): the scores of all subjects'
  test predictions pooled, as MEGC scores it, with a percentile interval from a subject bootstrap
  (`metrics.subject_bootstrap`). The mean of the per-subject scores, which a subject with one or two
  classes biases, is kept apart as `uf1_subject_mean` / `uar_subject_mean`, without an interval.

With several seeds the headline is the mean over seeds (k-fold: each fold's score averaged over the
seeds; leave one subject out: each seed's pooled score, averaged), the interval is built from those
same averages, and the seeds' own headlines give the spread (`*_seed_min`, `*_seed_max`). The paper's
accuracy and the published MEGC 2019 numbers stand only beside rows of real data. With DVC it also
writes the headline numbers as JSON (`dvc metrics`) and the per-fold scores as CSV (`dvc plots`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from pipeline import metrics as metrics_lib
from pipeline.artifacts import atomic_output
from pipeline.baselines import SELECTIONS, split_row
from pipeline.fold_results import fold_table
from pipeline.protocols import SUBJECT_PROTOCOLS, kfold_k
from pipeline.selection import TEST_NOTE

# The paper's Table 2 (accuracy, 5-fold protocol). Keys: method, dataset layout.
PAPER_TABLE2: dict[str, dict[str, float]] = {
    "lbptop": {"smic": 0.537, "casme": 0.577, "casme2": 0.592},
    "lbpsip": {"smic": 0.445, "casme": 0.368, "casme2": 0.466},
    "tics": {"smic": 0.561, "casme": 0.618, "casme2": 0.623},
    "mdmo": {"smic": 0.640, "casme": 0.573, "casme2": 0.584},
    "pretrained_cnn": {"smic": 0.301, "casme": 0.376, "casme2": 0.304},
    "cnn": {"smic": 0.325, "casme": 0.471, "casme2": 0.491},
    "rcnn": {"smic": 0.571, "casme": 0.632, "casme2": 0.658},
}
METHOD_NAMES = {"lbptop": "LBP-TOP", "lbpsip": "LBP-SIP", "tics": "TICS", "mdmo": "MDMO",
                "pretrained_cnn": "Pre-trained CNNs", "cnn": "CNNs", "rcnn": "MER-RCNN",
                "rcnn_feedforward": "MER-RCNN without recurrence (ablation)", "off_apexnet": "OFF-ApexNet",
                "ststnet": "STSTNet", "htnet": "HTNet"}
SELECTION_NAMES = {"last": "", "inner": " (epoch chosen on inner validation subjects)",
                   "test": " (epoch chosen on the test fold: audit)"}

# Published UF1 and UAR on MEGC 2019's composite (SMIC-HS + CASME II + SAMM, 3 classes, LOSO over its 68
# subjects, all subjects' predictions pooled), overall ("full") and per source dataset (keyed by layout).
# LBP-TOP and OFF-ApexNet: the challenge's baselines as See et al. report them ("MEGC 2019 - The Second
# Facial Micro-Expressions Grand Challenge", FG 2019), the same numbers as in Table III of Liong et al.'s
# STSTNet paper (FG 2019), which adds STSTNet's own. `PUBLISHED_FLAGS` says where a number is no target.
MEGC2019_PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "lbptop": {"full": {"uf1": 0.5882, "uar": 0.5785}, "smic": {"uf1": 0.2000, "uar": 0.5280},
               "casme2": {"uf1": 0.7026, "uar": 0.7429}, "samm": {"uf1": 0.3954, "uar": 0.4102}},
    "off_apexnet": {"full": {"uf1": 0.7196, "uar": 0.7096}, "smic": {"uf1": 0.6817, "uar": 0.6695},
                    "casme2": {"uf1": 0.8764, "uar": 0.8681}, "samm": {"uf1": 0.5409, "uar": 0.5392}},
    "ststnet": {"full": {"uf1": 0.7353, "uar": 0.7605}, "smic": {"uf1": 0.6801, "uar": 0.7013},
                "casme2": {"uf1": 0.8382, "uar": 0.8686}, "samm": {"uf1": 0.6588, "uar": 0.6810}},
    # HTNet (Wang et al., Neurocomputing 2024), the composite's numbers as the paper gives them; made with the
    # epoch of each subject chosen on its own test clips (docs/selection.md). Per source: not checked here.
    "htnet": {"full": {"uf1": 0.8603, "uar": 0.8475}},
}
# (method, part) -> why the published pair is shown but is no target (tests/test_published_numbers.py)
PUBLISHED_FLAGS = {
    ("lbptop", "smic"): "published SMIC UF1 0.2000 with UAR 0.5280: no pooled confusion matrix of SMIC-HS's "
                        "70/51/43 clips gives both (at that UAR the smallest pooled UF1 is 0.3983); it may be a "
                        "mean of per-subject scores, so it is no target",
}
MEGC2019 = "megc2019"   # a dataset entry with `composite: megc2019` (or layout megc2019) is MEGC 2019's composite
PAPER_PROTOCOL = "kfold5"
METRICS = ("accuracy", "uf1", "uar")
TABLE2_COLUMNS = [
    "method", "method_name", "selection", "dataset", "data", "protocol", "subject_independent", "headline", "folds",
    "repeats", "seeds", *(f"{m}{part}" for m in METRICS for part in ("", "_ci_low", "_ci_high")), "interval",
    *(f"{m}_seed_{end}" for m in METRICS for end in ("min", "max")), "uf1_subject_mean", "uar_subject_mean",
    "paper_accuracy", "published_uf1", "published_uar", "note"]
CI_LEVEL = 0.95
MEGC2019_PROTOCOL = "loso"
FOLD_MEAN, POOLED = "fold mean", "pooled"


def is_megc2019(entry: Mapping) -> bool:
    """Whether a dataset entry of params is MEGC 2019's composite."""
    return MEGC2019 in (entry.get("composite"), entry.get("layout"))


def is_subject_independent(protocol: str) -> bool:
    """Whether a protocol keeps every subject's clips on one side of each split (k-fold splits clips at random,
    so a test subject's other clips are in training, as in the paper)."""
    return protocol in SUBJECT_PROTOCOLS


def headline_of(protocol: str) -> str:
    """The number a protocol's rows lead with: the mean over folds for k-fold, the pooled score otherwise."""
    return FOLD_MEAN if kfold_k(protocol) else POOLED


def published_numbers(entry: Mapping, method: str, protocol: str, data: str, part: str = "full") -> dict[str, Any]:
    """paper_accuracy, published_uf1 and published_uar of a row, and a note: the paper's accuracy beside its own
    protocol (5-fold), MEGC 2019's numbers beside a MEGC 2019 composite (or one of its sources, `part`: its
    layout) scored as MEGC scores it (leave one subject out). Only on real data: on synthetic (or mixed) data
    the numbers stay empty and the note says why."""
    found: dict[str, Any] = {}
    if protocol == PAPER_PROTOCOL and part == "full":
        paper = PAPER_TABLE2.get(method, {}).get(entry.get("layout"))
        if paper is not None:
            found["paper_accuracy"] = paper
    if is_megc2019(entry) and protocol == MEGC2019_PROTOCOL:
        scores = MEGC2019_PUBLISHED.get(method, {}).get(part, {})
        if scores:
            found.update({"published_uf1": scores["uf1"], "published_uar": scores["uar"]})
    if not found:
        return {}
    if data != "real":
        shown = ", ".join(f"{name} {value:.3f}" if name == "paper_accuracy" else f"{name} {value:.4f}"
                          for name, value in found.items())
        return {"note": f"{data} data: published numbers are for the real datasets and no target here ({shown})"}
    flag = PUBLISHED_FLAGS.get((method, part))
    return {**found, **({"note": flag} if flag else {})}


def table2(folds: pd.DataFrame, datasets: Mapping[str, Mapping], not_run: Mapping[str, str] | None = None,
           protocols: Sequence[str] = (), *, bootstrap: int = 2000, bootstrap_seed: int = 0) -> pd.DataFrame:
    """One row per dataset, protocol and method (`fold_results.fold_table`'s folds of every seed), headed by
    the protocol's own number (`headline_row`), and a composite's rows per source dataset (`source_rows`).

    Methods in `not_run` (method -> reason, e.g. the pre-trained CNN without weights) get a row per
    dataset and protocol with no numbers of ours (0 folds) and the reason in `note`, never a guess. Rows
    are laid out as the paper's table: by dataset (in the order given, a composite's sources after it),
    then protocol (in the order given), then method in the paper's row order (METHOD_NAMES).
    """
    rows = []
    for (ds, protocol, method), group in folds.groupby(["dataset", "protocol", "method"], sort=True):
        entry = datasets[ds]
        network, selection = split_row(method)
        base = {"method": method, "method_name": row_title(method), "selection": selection, "protocol": protocol,
                "subject_independent": is_subject_independent(protocol)}
        row = {**base, "dataset": ds, "data": data_kind(entry),
               **headline_row(group, protocol, bootstrap, bootstrap_seed)}
        rows.append(with_selection_note({**row, **published_numbers(entry, network, protocol, row["data"])}))
        # A source's subjects were predicted by networks trained on the other sources too: its published
        # numbers are a target only when the whole composite is real.
        for source, scores in source_rows(group, bootstrap, bootstrap_seed).items():
            source_entry = entry.get("source_entries", {}).get(source, {})
            rows.append(with_selection_note({
                **base, "dataset": f"{ds}/{source}", "data": source_entry.get("data", row["data"]), **scores,
                **published_numbers(entry, network, protocol, row["data"], source_entry.get("layout", source))}))
    for method, reason in (not_run or {}).items():
        for ds in datasets:
            for protocol in protocols:
                data = data_kind(datasets[ds])
                network, selection = split_row(method)
                published = published_numbers(datasets[ds], network, protocol, data)
                note = "; ".join(n for n in (reason, published.pop("note", None)) if n)
                rows.append({"method": method, "method_name": row_title(method), "selection": selection,
                             "dataset": ds,
                             "data": data, "protocol": protocol, "headline": headline_of(protocol),
                             "subject_independent": is_subject_independent(protocol), "folds": 0, "seeds": 0,
                             **published, "note": note})
    rows.sort(key=lambda row: paper_row_order(row, list(datasets), list(protocols)))
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


def row_title(row: str) -> str:
    """A row's name as Table 2 prints it: the method's, and how its epoch was chosen unless it is the last."""
    method, selection = split_row(row)
    return METHOD_NAMES.get(method, method) + SELECTION_NAMES.get(selection, f" ({selection})")


def with_selection_note(row: dict[str, Any]) -> dict[str, Any]:
    """A row chosen on the test fold says so first in its note."""
    if row.get("selection") == "test":
        row["note"] = "; ".join(n for n in (TEST_NOTE, row.get("note")) if isinstance(n, str) and n)
    return row


def headline_row(group: pd.DataFrame, protocol: str, bootstrap: int, bootstrap_seed: int) -> dict[str, Any]:
    """The numbers of one Table 2 row from its folds (all seeds): the protocol's headline and interval, the seed
    spread, and for leave-one-subject-out the mean of per-subject (per-fold) scores beside it."""
    seeds = sorted(group["seed"].unique())
    row: dict[str, Any] = {"headline": headline_of(protocol), "folds": int(group["fold"].nunique()),
                           "repeats": repeats_of(protocol, int(group["fold"].nunique())), "seeds": len(seeds)}
    if kfold_k(protocol):
        per_fold = group.groupby("fold")[list(METRICS)].mean()       # each fold's score, averaged over the seeds
        per_seed = group.groupby("seed")[list(METRICS)].mean()       # each seed's fold mean
        ratio = test_to_train(group)
        for metric in METRICS:
            low, high = metrics_lib.fold_interval(per_fold[metric], ratio, CI_LEVEL)
            row.update(_rounded(metric, float(per_fold[metric].mean()), low, high, per_seed[metric]))
        row["interval"] = (f"{CI_LEVEL:.0%} corrected resampled t over {len(per_fold)} folds"
                           + (f" ({row['repeats']} repeats)" if row["repeats"] > 1 else "")
                           + (f", each fold's score the mean of {len(seeds)} seeds" if len(seeds) > 1 else ""))
        return row
    row.update(pooled_scores(subject_confusions(group), bootstrap, bootstrap_seed))
    for metric in ("uf1", "uar"):
        row[f"{metric}_subject_mean"] = round(float(group[metric].mean()), 4)
    return row


def pooled_scores(by_seed: Mapping[int, Mapping[str, np.ndarray]], bootstrap: int, bootstrap_seed: int,
                  subjects: Sequence[str] | None = None) -> dict[str, Any]:
    """Accuracy, UF1 and UAR of all test predictions pooled (of the given subjects; default all), averaged over
    seeds, with the subject-bootstrap interval and the seeds' spread; `by_seed` is `subject_confusions`'."""
    names = sorted(subjects if subjects is not None else next(iter(by_seed.values())))
    stack = np.array([[by_seed[seed][name] for name in names] for seed in sorted(by_seed)])   # (S, J, C, C)
    per_seed = metrics_lib.scores_of_confusions(stack.sum(axis=1))                          # metric -> (S,)
    interval = metrics_lib.subject_bootstrap(stack, bootstrap, bootstrap_seed, CI_LEVEL)
    row: dict[str, Any] = {}
    for metric in METRICS:
        row.update(_rounded(metric, float(per_seed[metric].mean()), *interval[metric], per_seed[metric]))
    row["interval"] = (f"{CI_LEVEL:.0%} percentile, subject bootstrap: {bootstrap} draws of {len(names)} subjects"
                       + (f", each draw the mean of {len(by_seed)} seeds' pooled scores" if len(by_seed) > 1 else ""))
    return row


def subject_confusions(group: pd.DataFrame) -> dict[int, dict[str, np.ndarray]]:
    """seed -> subject -> that subject's confusion matrix over the folds (its test clips); every seed must
    have the same subjects (the folds are shared)."""
    by_seed: dict[int, dict[str, np.ndarray]] = {}
    for row in group.itertuples():
        if not isinstance(row.by_subject, Mapping):
            raise ValueError(f"{row.dataset} {row.protocol} {row.method} seed {row.seed} fold {row.fold}: metrics.json "
                             "has no per-subject confusion matrices (by_subject): rerun the fold")
        subjects = by_seed.setdefault(int(row.seed), {})
        for subject, confusion in row.by_subject.items():
            subjects[subject] = subjects.get(subject, 0) + np.asarray(confusion, dtype=np.int64)
    names = {seed: set(subjects) for seed, subjects in by_seed.items()}
    if len({frozenset(n) for n in names.values()}) > 1:
        raise ValueError(f"seeds test different subjects: {names}")
    return by_seed


def source_rows(group: pd.DataFrame, bootstrap: int, bootstrap_seed: int) -> dict[str, dict[str, Any]]:
    """A composite's rows per source dataset: each source's subjects' predictions pooled, with the subject
    bootstrap over that source's subjects (a leave-one-subject-out fold holds one subject, so one source;
    a mean over folds would mean nothing here). {} when the folds are not a composite's."""
    sources: dict[str, str] = {}
    for mapping in group["subject_sources"].dropna():
        sources.update(mapping)
    by_source: dict[str, list[str]] = {}
    for subject, source in sources.items():
        by_source.setdefault(source, []).append(subject)
    if not by_source:
        return {}
    fold_sources = [set(m.values()) for m in group.drop_duplicates("fold")["subject_sources"] if isinstance(m, Mapping)]
    by_seed = subject_confusions(group)
    return {source: {"headline": POOLED, "folds": sum(source in s for s in fold_sources),
                     "seeds": len(by_seed), **pooled_scores(by_seed, bootstrap, bootstrap_seed, subjects)}
            for source, subjects in sorted(by_source.items())}


def _rounded(metric: str, value: float, low: float, high: float, per_seed) -> dict[str, float]:
    """A metric's headline, its interval clipped to [0, 1] (scores lie there), and the seeds' min and max."""
    per_seed = np.asarray(per_seed, dtype=np.float64)
    return {metric: round(value, 4), f"{metric}_ci_low": round(max(low, 0.0), 4),
            f"{metric}_ci_high": round(min(high, 1.0), 4), f"{metric}_seed_min": round(float(per_seed.min()), 4),
            f"{metric}_seed_max": round(float(per_seed.max()), 4)}


def repeats_of(protocol: str, n_folds: int) -> int:
    """How many k-fold splits `n_folds` folds of a protocol are (1 for leave-one-subject-out)."""
    k = kfold_k(protocol)
    return max(1, n_folds // k) if k else 1


def test_to_train(group: pd.DataFrame) -> float:
    """n_test / n_train of the folds (their means); a fold's metrics without n_train_clips count as
    k-fold's 1 / (folds - 1)."""
    n_train = group["n_train"].dropna() if "n_train" in group else pd.Series(dtype=float)
    if len(n_train) == len(group) and n_train.mean() > 0:
        return float(group["n_test"].mean() / n_train.mean())
    return 1 / max(1, group["fold"].nunique() - 1)


def data_kind(entry: Mapping) -> str:
    """synthetic or real (a composite's `data` says mixed where its sources differ)."""
    return entry.get("data") or ("synthetic" if entry.get("synthetic") else "real")


def paper_row_order(row: Mapping, datasets: Sequence[str], protocols: Sequence[str]) -> tuple:
    """Sort key of a Table 2 row: dataset, its source (a composite's per-dataset rows after its own),
    protocol, method in the paper's order; names not listed go last, alphabetically."""
    def rank(name: str, order: Sequence[str]) -> tuple[int, str]:
        return (order.index(name) if name in order else len(order), name)

    parent, _, source = row["dataset"].partition("/")
    method, selection = split_row(row["method"])
    return (rank(parent, datasets), source, rank(row["protocol"], protocols), rank(method, list(METHOD_NAMES)),
            rank(selection, SELECTIONS))


def metrics_summary(table: pd.DataFrame) -> dict:
    """Table 2's headline numbers as {dataset: {protocol: {method: {metric: value}}}} (rows without folds left
    out), the shape `dvc metrics show` flattens to one column per dataset.protocol.method.metric."""
    summary: dict = {}
    for _, row in table[table["folds"] > 0].iterrows():
        values: dict[str, Any] = {"folds": int(row["folds"]), "seeds": int(row["seeds"]), "headline": row["headline"]}
        for metric in METRICS:
            for column in (metric, f"{metric}_ci_low", f"{metric}_ci_high"):
                values[column] = float(row[column])
        for column in ("paper_accuracy", "published_uf1", "published_uar"):
            if pd.notna(row[column]):
                values[column] = float(row[column])
        summary.setdefault(row["dataset"], {}).setdefault(row["protocol"], {})[row["method"]] = values
    return summary


def headline_text(table: pd.DataFrame) -> str:
    """Table 2 as a person reads it in a terminal: each row's headline with its interval, and the note."""
    lines = []
    for _, row in table.iterrows():
        cells = [row["method_name"], row["dataset"], row["protocol"], row["headline"]]
        for metric in METRICS:
            cells.append("—" if pd.isna(row[metric]) else
                         f"{row[metric]:.3f} [{row[f'{metric}_ci_low']:.2f}, {row[f'{metric}_ci_high']:.2f}]")
        cells.append(f"{int(row['seeds'])}" if pd.notna(row["seeds"]) else "")
        paper = [f"paper {row['paper_accuracy']:.3f}" if pd.notna(row["paper_accuracy"]) else "",
                 f"published UF1 {row['published_uf1']:.4f} UAR {row['published_uar']:.4f}"
                 if pd.notna(row["published_uf1"]) else ""]
        cells.append("; ".join(p for p in [*paper, "" if pd.isna(row["note"]) else str(row["note"])] if p))
        lines.append(cells)
    header = ["method", "dataset", "protocol", "headline", "accuracy [95%]", "UF1 [95%]", "UAR [95%]", "seeds",
              "paper / published / note"]
    widths = [max(len(str(c)) for c in column) for column in zip(header, *lines, strict=True)]
    return "\n".join("  ".join(str(c).ljust(w) for c, w in zip(cells, widths, strict=True)).rstrip()
                     for cells in [header, *lines])


def aggregate_stage(metrics_paths: Sequence[str | os.PathLike], out_csv: str | os.PathLike, *,
                    datasets: Mapping[str, Mapping], not_run: Mapping[str, str] | None = None,
                    protocols: Sequence[str] = (), metrics_json: str | os.PathLike | None = None,
                    folds_csv: str | os.PathLike | None = None, bootstrap: int = 2000,
                    bootstrap_seed: int = 0) -> None:
    """Table 2 as CSV; with metrics_json and folds_csv also its headline numbers as JSON and the per-fold
    metrics as CSV (DVC's metrics and plots files)."""
    folds = fold_table(metrics_paths)
    table = table2(folds, datasets, not_run, protocols, bootstrap=bootstrap, bootstrap_seed=bootstrap_seed)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    if metrics_json is not None:
        with atomic_output(metrics_json) as tmp:
            tmp.write_text(json.dumps(metrics_summary(table), indent=2, sort_keys=True) + "\n")
    if folds_csv is not None:
        with atomic_output(folds_csv) as tmp:
            scalars = ["dataset", "protocol", "method", "seed", "fold", "accuracy", "uf1", "uar", "n_test"]
            folds[scalars].to_csv(tmp, index=False)
    print(headline_text(table))
