"""Aggregation: the per-fold metrics into Table 2, ours beside the paper's numbers.

`aggregate_stage` reads every fold's metrics.json (results/{ds}/{protocol}/{method}/fold{k}/) and
writes results/table2.csv: mean and sample standard deviation across folds, the scores of all folds'
test predictions pooled, the paper's accuracy where the paper reports one, and the published UF1 and UAR
on MEGC 2019's composite (`MEGC2019_PUBLISHED`) on the rows of a MEGC 2019 composite and its sources. With DVC it also
writes the table's numbers as JSON (`dvc metrics`) and the per-fold scores as CSV (`dvc plots`).
"""

from __future__ import annotations

import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import metrics as metrics_lib
from pipeline.artifacts import atomic_output

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
                "ststnet": "STSTNet"}

# Published UF1 and UAR on MEGC 2019's composite (SMIC-HS + CASME II + SAMM, 3 classes, LOSO over its 68
# subjects, scores of all folds' predictions pooled), overall ("full") and per source dataset (keyed by
# layout). LBP-TOP and OFF-ApexNet: the challenge's baselines as See et al. report them ("MEGC 2019 - The
# Second Facial Micro-Expressions Grand Challenge", FG 2019); STSTNet: Liong et al., FG 2019.
MEGC2019_PUBLISHED: dict[str, dict[str, dict[str, float]]] = {
    "lbptop": {"full": {"uf1": 0.5882, "uar": 0.5785}, "smic": {"uf1": 0.2000, "uar": 0.5280},
               "casme2": {"uf1": 0.7026, "uar": 0.7429}, "samm": {"uf1": 0.3954, "uar": 0.4102}},
    "off_apexnet": {"full": {"uf1": 0.7196, "uar": 0.7096}, "smic": {"uf1": 0.6817, "uar": 0.6695},
                    "casme2": {"uf1": 0.8764, "uar": 0.8681}, "samm": {"uf1": 0.5409, "uar": 0.5392}},
    "ststnet": {"full": {"uf1": 0.7353, "uar": 0.7605}, "smic": {"uf1": 0.6801, "uar": 0.7013},
                "casme2": {"uf1": 0.8382, "uar": 0.8686}, "samm": {"uf1": 0.6588, "uar": 0.6810}},
}
MEGC2019 = "megc2019"   # a dataset entry with `composite: megc2019` (or layout megc2019) is MEGC 2019's composite
PAPER_PROTOCOL = "kfold5"
TABLE2_COLUMNS = ["method", "method_name", "dataset", "data", "protocol", "folds", "repeats", "accuracy_mean",
                  "accuracy_std", "accuracy_ci_low", "accuracy_ci_high", "uf1_mean", "uf1_std", "uf1_ci_low",
                  "uf1_ci_high", "uar_mean", "uar_std", "uar_ci_low", "uar_ci_high", "accuracy_pooled",
                  "uf1_pooled", "uar_pooled", "paper_accuracy", "published_uf1", "published_uar"]
CI_LEVEL = 0.95
MEGC2019_PROTOCOL = "loso"


def is_megc2019(entry: Mapping) -> bool:
    """Whether a dataset entry of params is MEGC 2019's composite."""
    return MEGC2019 in (entry.get("composite"), entry.get("layout"))


def megc2019_published(entry: Mapping, method: str, protocol: str, part: str = "full") -> dict[str, float | None]:
    """published_uf1 and published_uar of a method on MEGC 2019's composite ("full") or one source
    (its layout: smic, casme2, samm), for a composite entry scored as MEGC scores it (leave one subject
    out); {} for any other dataset or protocol, None where no number is published."""
    if not is_megc2019(entry) or protocol != MEGC2019_PROTOCOL:
        return {}
    scores = MEGC2019_PUBLISHED.get(method, {}).get(part, {})
    return {"published_uf1": scores.get("uf1"), "published_uar": scores.get("uar")}


def fold_key(metrics_path: str | os.PathLike) -> dict[str, str | int]:
    """(dataset, protocol, method, fold) from results/{ds}/{protocol}/{method}/fold{k}/metrics.json."""
    fold_dir = Path(metrics_path).parent
    method_dir = fold_dir.parent
    return {"dataset": method_dir.parent.parent.name, "protocol": method_dir.parent.name,
            "method": method_dir.name, "fold": int(fold_dir.name.removeprefix("fold"))}


def fold_table(metrics_paths: Sequence[str | os.PathLike]) -> pd.DataFrame:
    """One row per fold: its key and its metrics."""
    rows = []
    for path in metrics_paths:
        with open(path) as handle:
            metrics = json.load(handle)
        rows.append({**fold_key(path), "accuracy": metrics["accuracy"], "uf1": metrics["uf1"],
                     "uar": metrics["uar"], "n_test": metrics["n_test"], "n_train": metrics.get("n_train_clips"),
                     "confusion": metrics.get("confusion"), "by_source": metrics.get("by_source")})
    columns = ["dataset", "protocol", "method", "fold", "accuracy", "uf1", "uar", "n_test",  # also when empty
               "n_train", "confusion", "by_source"]
    return pd.DataFrame(rows, columns=columns).sort_values(["dataset", "protocol", "method", "fold"], ignore_index=True)


def table2(folds: pd.DataFrame, datasets: Mapping[str, Mapping], not_run: Mapping[str, str] | None = None,
           protocols: Sequence[str] = ()) -> pd.DataFrame:
    """Mean, sample standard deviation (ddof=1) and a 95% confidence interval across folds (all folds
    of all repeats: `metrics.fold_interval`), beside the paper's accuracy.

    The paper's number is shown only for its own protocol (5-fold); `data` says whether our number
    comes from the real dataset or from merflow's synthetic stand-in, which is not comparable.
    Methods in `not_run` (method -> reason, e.g. the pre-trained CNN without weights) get a row per
    dataset and protocol with no numbers of ours (0 folds) and the reason in `note`, never a guess.
    Rows are laid out as the paper's table: by dataset (in the order given, a composite's sources after
    it), then protocol (in the order given), then method in the paper's row order (METHOD_NAMES).
    A composite's rows (dataset `{composite}` and `{composite}/{source}`) carry its published baseline's
    UF1 and UAR (`published_uf1`, `published_uar`), to be read beside our pooled scores.
    """
    rows = []
    for (ds, protocol, method), group in folds.groupby(["dataset", "protocol", "method"], sort=True):
        entry = datasets[ds]
        paper = PAPER_TABLE2.get(method, {}).get(entry.get("layout")) if protocol == PAPER_PROTOCOL else None
        row = {"method": method, "method_name": METHOD_NAMES.get(method, method), "dataset": ds,
               "data": data_kind(entry), "protocol": protocol, "folds": len(group),
               "repeats": repeats_of(protocol, len(group))}
        ratio = test_to_train(group)
        for metric in ("accuracy", "uf1", "uar"):
            row[f"{metric}_mean"] = round(float(group[metric].mean()), 4)
            row[f"{metric}_std"] = round(float(group[metric].std(ddof=1)), 4) if len(group) > 1 else 0.0
            low, high = metrics_lib.fold_interval(group[metric], ratio, CI_LEVEL)   # clipped: scores lie in [0, 1]
            row[f"{metric}_ci_low"], row[f"{metric}_ci_high"] = round(max(low, 0.0), 4), round(min(high, 1.0), 4)
        row.update(pooled_scores(group["confusion"].tolist()))
        row["paper_accuracy"] = paper
        row.update(megc2019_published(entry, method, protocol))
        rows.append(row)
        # A composite (pipeline/composite.py) is also scored per source dataset, pooled over its folds
        # (a LOSO fold holds one subject, so one source: a mean over folds would mean nothing here).
        by_source: dict[str, list] = {}
        for confusions in group["by_source"].dropna():
            for source, confusion in confusions.items():
                by_source.setdefault(source, []).append(confusion)
        sources = entry.get("source_entries", {})
        for source, confusions in sorted(by_source.items()):
            source_entry = sources.get(source, {})
            rows.append({**{k: row[k] for k in ("method", "method_name", "protocol")},
                         "data": source_entry.get("data", row["data"]), "dataset": f"{ds}/{source}",
                         "folds": len(confusions), **pooled_scores(confusions),
                         **megc2019_published(entry, method, protocol, source_entry.get("layout", source))})
    for method, reason in (not_run or {}).items():
        for ds in datasets:
            for protocol in protocols:
                layout = datasets[ds].get("layout")
                paper = PAPER_TABLE2.get(method, {}).get(layout) if protocol == PAPER_PROTOCOL else None
                rows.append({"method": method, "method_name": METHOD_NAMES.get(method, method), "dataset": ds,
                             "data": data_kind(datasets[ds]), "protocol": protocol,
                             "folds": 0, "paper_accuracy": paper, "note": reason,
                             **megc2019_published(datasets[ds], method, protocol)})
    rows.sort(key=lambda row: paper_row_order(row, list(datasets), list(protocols)))
    return pd.DataFrame(rows, columns=[*TABLE2_COLUMNS, "note"])


def repeats_of(protocol: str, n_folds: int) -> int:
    """How many k-fold splits `n_folds` folds of a protocol are (1 for leave-one-subject-out)."""
    from pipeline.protocols import kfold_k
    k = kfold_k(protocol)
    return max(1, n_folds // k) if k else 1


def test_to_train(group: pd.DataFrame) -> float:
    """n_test / n_train of the folds (their means); a fold's metrics without n_train_clips count as
    k-fold's 1 / (folds - 1)."""
    n_train = group["n_train"].dropna() if "n_train" in group else pd.Series(dtype=float)
    if len(n_train) == len(group) and n_train.mean() > 0:
        return float(group["n_test"].mean() / n_train.mean())
    return 1 / max(1, len(group) - 1)


def data_kind(entry: Mapping) -> str:
    """synthetic or real (a composite's `data` says mixed where its sources differ)."""
    return entry.get("data") or ("synthetic" if entry.get("synthetic") else "real")


def paper_row_order(row: Mapping, datasets: Sequence[str], protocols: Sequence[str]) -> tuple:
    """Sort key of a Table 2 row: dataset, its source (a composite's per-dataset rows after its own),
    protocol, method in the paper's order; names not listed go last, alphabetically."""
    def rank(name: str, order: Sequence[str]) -> tuple[int, str]:
        return (order.index(name) if name in order else len(order), name)

    parent, _, source = row["dataset"].partition("/")
    return (rank(parent, datasets), source, rank(row["protocol"], protocols),
            rank(row["method"], list(METHOD_NAMES)))


def metrics_summary(table: pd.DataFrame) -> dict:
    """Table 2's numbers as {dataset: {protocol: {method: {metric: value}}}} (rows without folds left out),
    the shape `dvc metrics show` flattens to one column per dataset.protocol.method.metric."""
    summary: dict = {}
    for row in table[table["folds"] > 0].itertuples():
        values = {"folds": int(row.folds)}
        for metric in ("accuracy", "uf1", "uar"):
            values[f"{metric}_mean"] = float(getattr(row, f"{metric}_mean"))
            values[f"{metric}_std"] = float(getattr(row, f"{metric}_std"))
        if pd.notna(row.paper_accuracy):
            values["paper_accuracy"] = float(row.paper_accuracy)
        summary.setdefault(row.dataset, {}).setdefault(row.protocol, {})[row.method] = values
    return summary


def pooled_scores(confusions: Sequence) -> dict[str, float | None]:
    """Accuracy, UF1 and UAR of all folds' test predictions pooled (their confusion matrices summed),
    as MEGC scores LOSO; None where a fold has no confusion matrix."""
    if not confusions or any(c is None for c in confusions):
        return {"accuracy_pooled": None, "uf1_pooled": None, "uar_pooled": None}
    pooled = np.sum([np.asarray(c, dtype=np.int64) for c in confusions], axis=0)
    return {"accuracy_pooled": round(metrics_lib.accuracy_from_confusion(pooled), 4),
            "uf1_pooled": round(metrics_lib.uf1_from_confusion(pooled), 4),
            "uar_pooled": round(metrics_lib.uar_from_confusion(pooled), 4)}


def aggregate_stage(metrics_paths: Sequence[str | os.PathLike], out_csv: str | os.PathLike, *,
                    datasets: Mapping[str, Mapping], not_run: Mapping[str, str] | None = None,
                    protocols: Sequence[str] = (), metrics_json: str | os.PathLike | None = None,
                    folds_csv: str | os.PathLike | None = None) -> None:
    """Table 2 as CSV; with metrics_json and folds_csv also its numbers as JSON and the per-fold
    metrics as CSV (DVC's metrics and plots files)."""
    folds = fold_table(metrics_paths)
    table = table2(folds, datasets, not_run, protocols)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    if metrics_json is not None:
        with atomic_output(metrics_json) as tmp:
            tmp.write_text(json.dumps(metrics_summary(table), indent=2, sort_keys=True) + "\n")
    if folds_csv is not None:
        with atomic_output(folds_csv) as tmp:
            scalars = ["dataset", "protocol", "method", "fold", "accuracy", "uf1", "uar", "n_test"]
            folds[scalars].to_csv(tmp, index=False)
    print(table.to_string(index=False))
