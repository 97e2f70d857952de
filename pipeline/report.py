"""Aggregation: per-fold metrics into Table 2 (ours beside the paper's), and the HTML report."""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend needed

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
                "pretrained_cnn": "Pre-trained CNNs", "cnn": "CNNs", "rcnn": "MER-RCNN"}
PAPER_PROTOCOL = "kfold5"
TABLE2_COLUMNS = ["method", "method_name", "dataset", "data", "protocol", "folds", "accuracy_mean",
                  "accuracy_std", "uf1_mean", "uf1_std", "uar_mean", "uar_std", "paper_accuracy"]


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
                     "uar": metrics["uar"], "n_test": metrics["n_test"]})
    return pd.DataFrame(rows).sort_values(["dataset", "protocol", "method", "fold"], ignore_index=True)


def table2(folds: pd.DataFrame, datasets: Mapping[str, Mapping]) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1) across folds, beside the paper's accuracy.

    The paper's number is shown only for its own protocol (5-fold); `data` says whether our number
    comes from the real dataset or from merflow's synthetic stand-in, which is not comparable.
    """
    rows = []
    for (ds, protocol, method), group in folds.groupby(["dataset", "protocol", "method"], sort=True):
        entry = datasets[ds]
        paper = PAPER_TABLE2.get(method, {}).get(entry["layout"]) if protocol == PAPER_PROTOCOL else None
        row = {"method": method, "method_name": METHOD_NAMES.get(method, method), "dataset": ds,
               "data": "synthetic" if entry.get("synthetic") else "real", "protocol": protocol,
               "folds": len(group)}
        for metric in ("accuracy", "uf1", "uar"):
            row[f"{metric}_mean"] = round(float(group[metric].mean()), 4)
            row[f"{metric}_std"] = round(float(group[metric].std(ddof=1)), 4) if len(group) > 1 else 0.0
        row["paper_accuracy"] = paper
        rows.append(row)
    return pd.DataFrame(rows, columns=TABLE2_COLUMNS)


def aggregate_stage(metrics_paths: Sequence[str | os.PathLike], out_csv: str | os.PathLike, *,
                    datasets: Mapping[str, Mapping]) -> None:
    table = table2(fold_table(metrics_paths), datasets)
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False)
    print(table.to_string(index=False))


# ---------------------------------------------------------------- HTML report

def _png(fig: Figure) -> str:
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def _img(src: str, alt: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return f'<img src="{src}" alt="{html.escape(alt)}"{size}>'


def _file_png(path: str | os.PathLike) -> str:
    return "data:image/png;base64," + base64.b64encode(Path(path).read_bytes()).decode()


def fold_accuracy_figure(folds: pd.DataFrame) -> str:
    fig = Figure(figsize=(7, 3.2))
    ax = fig.subplots()
    labels = []
    for i, ((ds, protocol, method), group) in enumerate(folds.groupby(["dataset", "protocol", "method"])):
        ax.scatter(np.full(len(group), i), group["accuracy"], color="tab:blue", zorder=3)
        ax.errorbar(i, group["accuracy"].mean(), yerr=group["accuracy"].std(ddof=1) if len(group) > 1 else 0,
                    fmt="_", color="black", markersize=20, capsize=6, zorder=2)
        labels.append(f"{METHOD_NAMES.get(method, method)}\n{ds} {protocol}")
    ax.set_xticks(range(len(labels)), labels)
    ax.set_ylim(0, 1)
    ax.set_ylabel("accuracy per fold")
    ax.grid(axis="y", alpha=0.3)
    return _png(fig)


def confusion_figure(predictions: pd.DataFrame, classes: list[str], title: str) -> str:
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for true, pred in zip(predictions["true"], predictions["predicted"], strict=True):
        matrix[index[true], index[pred]] += 1
    fig = Figure(figsize=(3.6, 3.2))
    ax = fig.subplots()
    ax.imshow(matrix, cmap="Blues")
    for (r, c), n in np.ndenumerate(matrix):
        ax.text(c, r, str(n), ha="center", va="center", color="white" if n > matrix.max() / 2 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    return _png(fig)


def one_clip_per_subject(pngs: list[Path]) -> list[Path]:
    """The first QC image of each subject (clip ids start with the subject: sub01_EP02_01f)."""
    seen: dict[str, Path] = {}
    for png in pngs:
        seen.setdefault(png.stem.split("_")[0], png)
    return list(seen.values())


def report_stage(table_csv: str | os.PathLike, metrics_paths: Sequence[str], prediction_paths: Sequence[str],
                 align_qc_dirs: Sequence[str], magnify_qc_dirs: Sequence[str], out_html: str | os.PathLike,
                 qc_examples: int = 4) -> None:
    """One self-contained page: Table 2, per-fold accuracy, confusion matrices, QC images."""
    table = pd.read_csv(table_csv)
    folds = fold_table(metrics_paths)
    parts = ["<h2>Table 2: ours beside the paper's</h2>",
             "<p>Mean ± sample std across folds. <em>data = synthetic</em> rows come from merflow's synthetic "
             "stand-in data and are not comparable with the paper's numbers on the real dataset.</p>",
             table.to_html(index=False, na_rep="—", classes="table2", border=0),
             "<h2>Accuracy per fold</h2>", _img(fold_accuracy_figure(folds), "accuracy per fold"),
             "<h2>Confusion matrices (all folds' test predictions)</h2>"]
    grouped: dict[tuple[str, str, str], list[pd.DataFrame]] = {}
    for path in prediction_paths:
        key = fold_key(path)
        grouped.setdefault((key["dataset"], key["protocol"], key["method"]), []).append(pd.read_csv(path))
    for (ds, protocol, method), frames in sorted(grouped.items()):
        predictions = pd.concat(frames)
        classes = [c.removeprefix("p_") for c in predictions.columns if c.startswith("p_")]
        parts.append(_img(confusion_figure(predictions, classes, f"{METHOD_NAMES.get(method, method)} · {ds} · "
                                           f"{protocol}"), f"confusion {method} {ds} {protocol}"))
    for title, dirs in (("Alignment QC", align_qc_dirs), ("EVM before / after", magnify_qc_dirs)):
        parts.append(f"<h2>{title}</h2>")
        for qc_dir in dirs:
            for png in one_clip_per_subject(sorted(Path(qc_dir).glob("*.png")))[:qc_examples]:
                parts.append(f"<figure>{_img(_file_png(png), png.stem, 360)}<figcaption>{html.escape(png.stem)}"
                             "</figcaption></figure>")
    page = ("<!doctype html><html><head><meta charset='utf-8'><title>merflow report</title><style>"
            "body{font-family:sans-serif;max-width:1100px;margin:2em auto;padding:0 1em}"
            "table.table2{border-collapse:collapse;font-size:0.9em}"
            "table.table2 td,table.table2 th{padding:3px 8px;border-bottom:1px solid #ddd}"
            "figure{display:inline-block;margin:4px}figcaption{font-size:0.8em;text-align:center}"
            "</style></head><body><h1>merflow report</h1>" + "\n".join(parts) + "</body></html>")
    with atomic_output(out_html) as tmp:
        Path(tmp).write_text(page)
