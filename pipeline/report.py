"""Aggregation: per-fold metrics into Table 2 (ours beside the paper's), and the HTML report.

The report stage draws every figure once with matplotlib, writes it as a PNG under results/figures/
(one folder per kind, so that the rule can register them with Snakemake's `report()` and
`snakemake --report report.zip` shows the same figures), and embeds the same bytes in
results/report.html, which therefore stands alone (no file beside it is needed to view it).
"""

from __future__ import annotations

import base64
import html
import io
import json
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend needed

from pipeline import __version__
from pipeline import metrics as metrics_lib
from pipeline.artifacts import atomic_directory, atomic_output, read_provenance
from pipeline.errors import MerflowError

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
                  "accuracy_std", "uf1_mean", "uf1_std", "uar_mean", "uar_std", "accuracy_pooled",
                  "uf1_pooled", "uar_pooled", "paper_accuracy"]


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
                     "uar": metrics["uar"], "n_test": metrics["n_test"], "confusion": metrics.get("confusion"),
                     "by_source": metrics.get("by_source")})
    columns = ["dataset", "protocol", "method", "fold", "accuracy", "uf1", "uar", "n_test",  # also when empty
               "confusion", "by_source"]
    return pd.DataFrame(rows, columns=columns).sort_values(["dataset", "protocol", "method", "fold"], ignore_index=True)


def table2(folds: pd.DataFrame, datasets: Mapping[str, Mapping], not_run: Mapping[str, str] | None = None,
           protocols: Sequence[str] = ()) -> pd.DataFrame:
    """Mean and sample standard deviation (ddof=1) across folds, beside the paper's accuracy.

    The paper's number is shown only for its own protocol (5-fold); `data` says whether our number
    comes from the real dataset or from merflow's synthetic stand-in, which is not comparable.
    Methods in `not_run` (method -> reason, e.g. the pre-trained CNN without weights) get a row per
    dataset and protocol with no numbers of ours (0 folds) and the reason in `note`, never a guess.
    Rows are laid out as the paper's table: by dataset (in the order given, a composite's sources after
    it), then protocol (in the order given), then method in the paper's row order (METHOD_NAMES).
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
        row.update(pooled_scores(group["confusion"].tolist()))
        row["paper_accuracy"] = paper
        rows.append(row)
        # A composite (pipeline/composite.py) is also scored per source dataset, pooled over its folds
        # (a LOSO fold holds one subject, so one source: a mean over folds would mean nothing here).
        by_source: dict[str, list] = {}
        for confusions in group["by_source"].dropna():
            for source, confusion in confusions.items():
                by_source.setdefault(source, []).append(confusion)
        for source, confusions in sorted(by_source.items()):
            rows.append({**{k: row[k] for k in ("method", "method_name", "data", "protocol")},
                         "dataset": f"{ds}/{source}", "folds": len(confusions), **pooled_scores(confusions)})
    for method, reason in (not_run or {}).items():
        for ds in datasets:
            for protocol in protocols:
                layout = datasets[ds]["layout"]
                paper = PAPER_TABLE2.get(method, {}).get(layout) if protocol == PAPER_PROTOCOL else None
                rows.append({"method": method, "method_name": METHOD_NAMES.get(method, method), "dataset": ds,
                             "data": "synthetic" if datasets[ds].get("synthetic") else "real", "protocol": protocol,
                             "folds": 0, "paper_accuracy": paper, "note": reason})
    rows.sort(key=lambda row: paper_row_order(row, list(datasets), list(protocols)))
    return pd.DataFrame(rows, columns=[*TABLE2_COLUMNS, "note"])


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


# ---------------------------------------------------------------- figures

def _group_label(method: str, ds: str, protocol: str) -> str:
    return f"{METHOD_NAMES.get(method, method)} · {ds} · {protocol}"


def fold_accuracy_figure(folds: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """Accuracy, UF1 and UAR of every fold (dots), their mean ± sample std (bar), and the paper's
    accuracy (red diamond) where the paper reports one for that method, dataset and protocol."""
    paper = {(r.dataset, r.protocol, r.method): r.paper_accuracy for r in table.itertuples()}
    position = {key: i for i, key in enumerate(paper)}                      # Table 2's row order
    groups = sorted(folds.groupby(["dataset", "protocol", "method"]), key=lambda g: position.get(g[0], len(position)))
    fig = Figure(figsize=(max(4.5, 1.5 + 1.6 * len(groups)) * 1.6, 3.4))
    axes = fig.subplots(1, 3, sharey=True)
    labels = [_group_label(method, ds, protocol).replace(" · ", "\n", 1) for (ds, protocol, method), _ in groups]
    for ax, metric in zip(axes, ("accuracy", "uf1", "uar"), strict=True):
        for i, ((ds, protocol, method), group) in enumerate(groups):
            values = group[metric].to_numpy()
            spread = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
            ax.scatter(i + spread, values, color="tab:blue", zorder=3, s=18, label="one fold" if i == 0 else None)
            ax.errorbar(i, values.mean(), yerr=values.std(ddof=1) if len(values) > 1 else 0, fmt="_",
                        color="black", markersize=22, capsize=6, zorder=2,
                        label="mean ± std" if i == 0 else None)
            expected = paper.get((ds, protocol, method))
            if metric == "accuracy" and expected is not None and not pd.isna(expected):
                shown = "paper" in ax.get_legend_handles_labels()[1]
                ax.scatter([i], [expected], marker="D", color="tab:red", zorder=4, s=30,
                           label=None if shown else "paper")
        ax.set_xticks(range(len(labels)), labels, fontsize=8)
        ax.set_xlim(-0.6, len(labels) - 0.4)
        ax.set_ylim(0, 1)
        ax.set_title(metric if metric == "accuracy" else metric.upper(), fontsize=10)
        ax.grid(axis="y", alpha=0.3)
    axes[0].set_ylabel("per fold")
    axes[0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def confusion_counts(predictions: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """(C, C) counts, truth on the rows and prediction on the columns."""
    index = {c: i for i, c in enumerate(classes)}
    matrix = np.zeros((len(classes), len(classes)), dtype=int)
    for true, pred in zip(predictions["true"], predictions["predicted"], strict=True):
        matrix[index[true], index[pred]] += 1
    return matrix


def confusion_figure(predictions: pd.DataFrame, classes: list[str], title: str) -> Figure:
    """Counts in the cells, shaded by the share of the true class (row), so rare classes show too."""
    matrix = confusion_counts(predictions, classes)
    share = matrix / np.maximum(matrix.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(3.8, 3.4))
    ax = fig.subplots()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1)
    for (r, c), n in np.ndenumerate(matrix):
        ax.text(c, r, f"{n}\n{share[r, c]:.0%}", ha="center", va="center", fontsize=8,
                color="white" if share[r, c] > 0.5 else "black")
    ax.set_xticks(range(len(classes)), classes, rotation=45, ha="right")
    ax.set_yticks(range(len(classes)), classes)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return fig


def per_class_f1(predictions: pd.DataFrame, classes: list[str]) -> np.ndarray:
    """F1 = 2 TP / (2 TP + FP + FN) of each class over the pooled test predictions (NaN: never true
    nor predicted)."""
    matrix = confusion_counts(predictions, classes)
    tp = np.diag(matrix).astype(float)
    denominator = 2 * tp + (matrix.sum(axis=0) - tp) + (matrix.sum(axis=1) - tp)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 0, 2 * tp / denominator, np.nan)


def per_class_f1_figure(groups: Mapping[tuple[str, str, str], tuple[pd.DataFrame, list[str]]]) -> Figure:
    """Grouped bars: F1 of each class, one bar per method, dataset and protocol."""
    classes = list(dict.fromkeys(c for _, group_classes in groups.values() for c in group_classes))
    fig = Figure(figsize=(max(4.5, 0.25 * len(groups) * len(classes) + 1.3 * len(classes) + 0.5), 3.4))
    ax = fig.subplots()
    width = 0.8 / max(len(groups), 1)
    for g, ((ds, protocol, method), (predictions, group_classes)) in enumerate(sorted(groups.items())):
        scores = dict(zip(group_classes, per_class_f1(predictions, group_classes), strict=True))
        values = [scores.get(c, np.nan) for c in classes]
        positions = np.arange(len(classes)) - 0.4 + width * (g + 0.5)
        bars = ax.bar(positions, np.nan_to_num(values), width, label=_group_label(method, ds, protocol))
        ax.bar_label(bars, labels=["—" if np.isnan(v) else f"{v:.2f}" for v in values], fontsize=7)
    ax.set_xticks(range(len(classes)), classes)
    ax.set_ylim(0, 1.1)
    ax.set_ylabel("F1 (all folds' test clips)")
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="upper right")
    fig.tight_layout()
    return fig


def jitter_figure(tensors_h5: str | os.PathLike, clip: int = 0) -> tuple[Figure, str]:
    """The temporal-jitter variants of one clip of tensors.h5 (Sec. II-D), and the clip's id.

    Each variant is drawn as the x-t slice (time downwards) of the image row where the clip moves
    most, showing the change since the variant's first frame; rows of panels are keep-ratios, columns
    resampling methods. Above: one frame rebuilt from the 1966 cropped pixels, and the motion of each
    variant over its 30 frames, so the stretching and shifting of the time course shows.
    """
    from pipeline.jitter import central_pixel_indices  # numpy/cv2 only; keeps this module light to import

    with h5py.File(tensors_h5, "r") as h5:
        variants = h5["x"][clip].astype(np.float32)              # (V, 3, pixels, frames)
        clip_id = h5["clip_id"].asstr()[clip]
        keep_ratios = h5["keep_ratio"][()].tolist()
        kernels = h5["kernel"].asstr()[()].tolist()
    params = read_provenance(tensors_h5)["params"]
    height, width = params["height"], params["width"]
    pixel_index = central_pixel_indices(height, width, params["crop"], params["pixels"])
    grey = variants.mean(axis=1)                                 # (V, pixels, frames)
    motion = grey - grey[:, :, :1]
    energy = np.zeros(height * width)
    energy[pixel_index] = np.abs(motion).mean(axis=(0, 2))
    row = int(energy.reshape(height, width).sum(axis=1).argmax())
    in_row = np.flatnonzero(pixel_index // width == row)         # positions (into pixels) on that row
    limit = max(float(np.abs(motion[:, in_row]).max()), 1.0)

    ratios, names = list(dict.fromkeys(keep_ratios)), list(dict.fromkeys(kernels))
    fig = Figure(figsize=(max(1.25 * len(names) + 0.6, 5.0), 1.2 * len(ratios) + 2.8), layout="constrained")
    # Two sub-figures, so that the top row's labels do not widen some columns of the grid below.
    top, bottom = fig.subfigures(2, 1, height_ratios=[2.4, 1.2 * len(ratios)])
    face_ax, curve_ax = top.subplots(1, 2, width_ratios=[1, 2.5])
    peak = int(np.abs(motion[0]).mean(axis=0).argmax())
    canvas = np.full((height * width, 3), np.nan)
    canvas[pixel_index] = variants[0, :, :, peak].T
    low, high = np.nanpercentile(canvas, [1, 99])
    face = np.nan_to_num(np.clip((canvas - low) / max(high - low, 1e-6), 0, 1), nan=1.0)
    face_ax.imshow(face.reshape(height, width, 3), interpolation="nearest")
    face_ax.axhline(row, color="tab:red", linewidth=1)
    face_ax.set_title(f"{clip_id}, frame {peak}\n(contrast stretched)", fontsize=7)
    face_ax.axis("off")
    cmap = matplotlib_colormap("viridis", len(ratios))
    for v, (ratio, kernel) in enumerate(zip(keep_ratios, kernels, strict=True)):
        curve_ax.plot(np.abs(motion[v]).mean(axis=0), color=cmap[ratios.index(ratio)], linewidth=0.8,
                      label=f"keep {ratio:.0%}" if kernel == names[0] else None)
    curve_ax.set_xlabel("output frame", fontsize=7)
    curve_ax.set_ylabel("mean |change| (grey levels)", fontsize=7)
    curve_ax.tick_params(labelsize=6)
    curve_ax.legend(fontsize=6, ncol=2)
    curve_ax.set_title(f"{len(keep_ratios)} variants: motion over time", fontsize=7)
    grid = bottom.subplots(len(ratios), len(names), squeeze=False)
    for v, (ratio, kernel) in enumerate(zip(keep_ratios, kernels, strict=True)):
        ax = grid[ratios.index(ratio), names.index(kernel)]
        ax.imshow(motion[v][in_row].T, cmap="RdBu_r", vmin=-limit, vmax=limit, aspect="auto",
                  interpolation="nearest")
        ax.set_xticks([])
        ax.set_yticks([])
        if ratios.index(ratio) == 0:
            ax.set_title(kernel, fontsize=7)
        if names.index(kernel) == 0:
            ax.set_ylabel(f"keep {ratio:.0%}", fontsize=7)
    fig.suptitle(f"Temporal jitter of {clip_id}: x-t slices of row {row} (red line), time running down;\n"
                 f"change since the variant's first frame (red +, blue −, up to ±{limit:.0f} grey levels)",
                 fontsize=8)
    return fig, clip_id


def matplotlib_colormap(name: str, n: int) -> list[tuple[float, float, float, float]]:
    from matplotlib import colormaps
    return [colormaps[name](x) for x in np.linspace(0.1, 0.9, max(n, 1))]


def thumbnail_png(path: str | os.PathLike, max_width: int = 760) -> bytes:
    """A QC image scaled down to at most max_width pixels (twice the width it is shown at), so that
    the page stays a few MB: the align stage's QC images are full-size (~2000 px, ~2 MB each)."""
    image = cv2.imdecode(np.fromfile(os.fspath(path), dtype=np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise MerflowError(f"{path}: QC image does not decode")
    if image.shape[1] > max_width:
        height = round(image.shape[0] * max_width / image.shape[1])
        image = cv2.resize(image, (max_width, height), interpolation=cv2.INTER_AREA)
    ok, png = cv2.imencode(".png", image, [cv2.IMWRITE_PNG_COMPRESSION, 6])
    return png.tobytes()


def one_clip_per_subject(pngs: list[Path]) -> list[Path]:
    """The first QC image of each subject (clip ids start with the subject: sub01_EP02_01f)."""
    seen: dict[str, Path] = {}
    for png in pngs:
        seen.setdefault(png.stem.split("_")[0], png)
    return list(seen.values())


# ---------------------------------------------------------------- the page

def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _png_bytes(fig: Figure) -> bytes:
    buffer = io.BytesIO()
    # No metadata: the same figure gives the same bytes, so a rerun does not change the report.
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def _figure(png: bytes, caption: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return (f'<figure><img src="{_data_uri(png)}" alt="{html.escape(caption)}"{size}>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "—"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def table2_html(table: pd.DataFrame) -> str:
    """Table 2 as the paper prints it, ours beside the paper's accuracy. Columns that aggregate does
    not write itself (e.g. a note on a method that was not run) are shown as they are, at the end."""
    extra = [c for c in table.columns if c not in TABLE2_COLUMNS and table[c].replace("", np.nan).notna().any()]
    header = ["method", "dataset", "data", "protocol", "folds", "accuracy (ours)", "accuracy (paper)", "UF1",
              "UAR", "pooled accuracy / UF1 / UAR", *extra]
    rows = []
    for _, r in table.iterrows():
        cells = [r["method_name"], r["dataset"], r["data"], r["protocol"],
                 "—" if pd.isna(r["folds"]) else int(r["folds"]),
                 _mean_std(r["accuracy_mean"], r["accuracy_std"]),
                 "—" if pd.isna(r["paper_accuracy"]) else f"{r['paper_accuracy']:.3f}",
                 _mean_std(r["uf1_mean"], r["uf1_std"]), _mean_std(r["uar_mean"], r["uar_std"]),
                 "—" if pd.isna(r.get("accuracy_pooled")) else
                 " / ".join(f"{r[f'{m}_pooled']:.3f}" for m in ("accuracy", "uf1", "uar")),
                 *["" if pd.isna(r[c]) else r[c] for c in extra]]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    return ('<table class="table2"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header)
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table.table2{border-collapse:collapse;font-size:0.9em}"
         "table.table2 td,table.table2 th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
         "table.table2 th{background:#f3f3f3}"
         "figure{display:inline-block;margin:4px;vertical-align:top}"
         "figcaption{font-size:0.8em;text-align:center;color:#555}"
         "p.note{font-size:0.9em;color:#444}")


def report_stage(table_csv: str | os.PathLike, metrics_paths: Sequence[str], prediction_paths: Sequence[str],
                 align_qc_dirs: Sequence[str], magnify_qc_dirs: Sequence[str], out_html: str | os.PathLike,
                 *, tensors_paths: Sequence[str] = (), index_paths: Sequence[str] = (),
                 figures_dir: str | os.PathLike | None = None, qc_examples: int = 4) -> None:
    """results/report.html (self-contained) and, when figures_dir is given, the same figures as PNGs
    there, one folder per kind: summary/, confusion/, jitter/, alignment_qc/, evm/.

    QC folders and tensors files are per dataset, in the same order; the dataset's name is the folder
    above them (data/{ds}/...).
    """
    table = pd.read_csv(table_csv)
    folds = fold_table(metrics_paths) if metrics_paths else pd.DataFrame()
    figures: list[tuple[str, str, bytes]] = []         # (kind, file stem, png): written to figures_dir

    def add(kind: str, stem: str, png: bytes) -> bytes:
        figures.append((kind, stem, png))
        return png

    parts = ["<h2>Table 2: ours beside the paper's</h2>",
             '<p class="note">Mean ± sample standard deviation across folds. Rows with <em>data = '
             "synthetic</em> come from merflow's synthetic stand-in for the dataset and are not comparable "
             "with the paper's numbers on the real one.</p>", table2_html(table)]
    if len(folds):
        parts += ["<h2>Accuracy, UF1 and UAR per fold</h2>",
                  _figure(add("summary", "fold_metrics", _png_bytes(fold_accuracy_figure(folds, table))),
                          "every fold's test score; bar: mean ± std; red diamond: the paper's accuracy")]

    grouped: dict[tuple[str, str, str], list[pd.DataFrame]] = {}
    for path in prediction_paths:
        key = fold_key(path)
        grouped.setdefault((key["dataset"], key["protocol"], key["method"]), []).append(pd.read_csv(path))
    pooled = {}
    for key, frames in sorted(grouped.items()):
        predictions = pd.concat(frames, ignore_index=True)
        pooled[key] = (predictions, [c.removeprefix("p_") for c in predictions.columns if c.startswith("p_")])
    if pooled:
        parts += ["<h2>Per class: F1 and confusion matrices (all folds' test clips)</h2>",
                  _figure(add("summary", "per_class_f1", _png_bytes(per_class_f1_figure(pooled))),
                          "F1 of each class over all folds' test clips")]
        for (ds, protocol, method), (predictions, classes) in pooled.items():
            title = _group_label(method, ds, protocol)
            png = _png_bytes(confusion_figure(predictions, classes, title))
            parts.append(_figure(add("confusion", f"{method}_{ds}_{protocol}", png), title))

    if tensors_paths:
        parts += ["<h2>Temporal jitter: the variants of one clip</h2>",
                  '<p class="note">Every clip becomes keep-ratios × resampling methods tensors (48 in the '
                  "paper): a random selection of 100 %, 90 %, …, 50 % of its frames, resampled to 30 frames "
                  "with 8 kernels. Test predictions average the softmax over all of them.</p>"]
        for tensors_h5 in tensors_paths:
            ds = Path(tensors_h5).parent.name
            fig, clip_id = jitter_figure(tensors_h5)
            parts.append(_figure(add("jitter", f"{ds}_{clip_id}", _png_bytes(fig)), f"{ds}: {clip_id}"))

    if index_paths:
        parts += ["<h2>Read differently from the sheets</h2>",
                  '<p class="note">Clips kept with a note (data/{ds}/index.csv): a correction of a known '
                  "sheet error, an apex estimated from the aligned face where none is coded, an offset past "
                  "the last frame file.</p>", notes_html(index_paths)]

    for title, kind, dirs in (("Alignment QC", "alignment_qc", align_qc_dirs),
                              ("EVM before / after", "evm", magnify_qc_dirs)):
        parts.append(f"<h2>{title}</h2>")
        for qc_dir in dirs:
            ds = Path(qc_dir).parent.name
            for png in one_clip_per_subject(sorted(Path(qc_dir).glob("*.png")))[:qc_examples]:
                parts.append(_figure(add(kind, f"{ds}_{png.stem}", thumbnail_png(png)), f"{ds}: {png.stem}", 380))

    page = ("<!doctype html><html><head><meta charset='utf-8'><title>merflow report</title>"
            f"<style>{STYLE}</style></head><body><h1>merflow report</h1>"
            f'<p class="note">merflow {html.escape(__version__)} · the figures are also in '
            f"{html.escape(os.fspath(figures_dir)) if figures_dir else 'the page only'}</p>"
            + "\n".join(parts) + "</body></html>")
    with atomic_output(out_html) as tmp:
        Path(tmp).write_text(page)
    if figures_dir is not None:
        with atomic_directory(figures_dir) as tmp_dir:
            for kind, stem, png in figures:
                (tmp_dir / kind).mkdir(exist_ok=True)
                (tmp_dir / kind / f"{stem}.png").write_bytes(png)


def notes_html(index_paths: Sequence[str]) -> str:
    """A table of every clip with a note in the datasets' index.csv files, or a line saying there are none."""
    rows = []
    for index_csv in index_paths:
        index = pd.read_csv(index_csv, dtype=str, keep_default_na=False)
        for row in index[index["notes"] != ""].itertuples():
            rows.append(f"<tr><td>{html.escape(row.dataset)}</td><td>{html.escape(row.clip_id)}</td>"
                        f"<td>{html.escape(row.apex_source)}</td>"
                        f"<td>{'<br>'.join(html.escape(n) for n in row.notes.split(' | '))}</td></tr>")
    if not rows:
        return "<p>Every clip was read as its sheet codes it.</p>"
    return ("<table><tr><th>dataset</th><th>clip</th><th>apex</th><th>notes</th></tr>" + "".join(rows)
            + "</table>")


# ---------------------------------------------------------------- ablations (pipeline/ablations.py)

def png_bytes(fig: Figure) -> bytes:
    return _png_bytes(fig)


def ablation_figure(rows: pd.DataFrame) -> Figure:
    """One family: accuracy mean ± sample std across folds against the setting (in params order), every
    fold as a dot, the reference setting in black, each other setting's Wilcoxon p against it above it."""
    family = rows["family"].iloc[0]
    fig = Figure(figsize=(1.6 + 1.1 * len(rows), 3.4))
    ax = fig.subplots()
    for i, r in enumerate(rows.itertuples()):
        values = np.array([float(v) for v in str(r.fold_accuracy).split(";")])
        spread = np.linspace(-0.12, 0.12, len(values)) if len(values) > 1 else np.zeros(1)
        ax.scatter(i + spread, values, color="tab:blue", alpha=0.5, s=14, zorder=2,
                   label="one fold" if i == 0 else None)
        ax.errorbar(i, r.accuracy_mean, yerr=r.accuracy_std, fmt="o", capsize=6, zorder=3,
                    color="black" if r.reference else "tab:red",
                    label=("reference" if r.reference else None) if i or r.reference else "mean ± std")
        if not r.reference:
            ax.annotate(f"p={r.p_wilcoxon:.3g}", (i, min(0.97, r.accuracy_mean + r.accuracy_std + 0.03)),
                        ha="center", fontsize=8)
    ax.set_xticks(range(len(rows)), [str(s) for s in rows["setting"]])
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_xlabel(family)
    ax.set_ylabel("accuracy (per fold, mean ± std)")
    ax.set_title(f"{family}: {rows['dataset'].iloc[0]}, {rows['protocol'].iloc[0]}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def ablations_page(table: pd.DataFrame, figures: Mapping[str, bytes]) -> str:
    """results/ablations.html: the ablation table and one figure per family, images embedded."""
    header = ["family", "setting", "overrides", "folds", "accuracy", "Δ accuracy", "p (Wilcoxon)", "UF1", "UAR",
              "per-fold accuracy", "reran", "seconds"]
    rows = []
    for _, r in table.iterrows():
        cells = [r["family"], f"{r['setting']} (reference)" if r["reference"] else r["setting"],
                 "" if pd.isna(r["overrides"]) else r["overrides"], int(r["folds"]),
                 _mean_std(r["accuracy_mean"], r["accuracy_std"]), f"{r['delta_accuracy']:+.3f}",
                 "—" if pd.isna(r["p_wilcoxon"]) else f"{r['p_wilcoxon']:.3g}",
                 _mean_std(r["uf1_mean"], r["uf1_std"]), _mean_std(r["uar_mean"], r["uar_std"]),
                 r["fold_accuracy"], "" if pd.isna(r["stages_rerun"]) else r["stages_rerun"], f"{r['seconds']:.0f}"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    parts = ['<p class="note">Each setting changes only what its overrides name; the folds are the main '
             "pipeline's. Δ accuracy: the mean paired difference from the family's reference on the same folds; "
             "p: two-sided Wilcoxon signed-rank test of the per-fold accuracies against the reference (with 5 "
             "folds it cannot go below 0.0625). Seconds: wall time of the jobs the setting reran.</p>",
             '<table class="table2"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"]
    parts += [_figure(png, f"{family}: accuracy against the setting") for family, png in figures.items()]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>merflow ablations</title>"
            f"<style>{STYLE}</style></head><body><h1>merflow ablations: the paper's claims</h1>"
            + "\n".join(parts) + "</body></html>")
