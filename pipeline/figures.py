"""The report's figures, drawn with matplotlib's object API, and the QC thumbnails, as PNG bytes.

Every figure is a `Figure` (no pyplot state, no display backend); `png_bytes` writes it without
metadata, so the same figure gives the same bytes and a rerun does not change the report.
"""

from __future__ import annotations

import io
import os
from collections.abc import Mapping

import cv2
import h5py
import numpy as np
import pandas as pd
from matplotlib.figure import Figure  # the object API: no pyplot state, no display backend needed

from pipeline.aggregate import METHOD_NAMES
from pipeline.artifacts import read_provenance
from pipeline.errors import MerflowError


def png_bytes(fig: Figure) -> bytes:
    """The figure as PNG bytes, the same bytes for the same figure."""
    buffer = io.BytesIO()
    # No metadata: the same figure gives the same bytes, so a rerun does not change the report.
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    return buffer.getvalue()


def group_label(method: str, ds: str, protocol: str) -> str:
    return f"{METHOD_NAMES.get(method, method)} · {ds} · {protocol}"


def fold_accuracy_figure(folds: pd.DataFrame, table: pd.DataFrame) -> Figure:
    """Accuracy, UF1 and UAR of every fold (dots), their mean ± sample std (bar), and the paper's
    accuracy (red diamond) where the paper reports one for that method, dataset and protocol."""
    paper = {(r.dataset, r.protocol, r.method): r.paper_accuracy for r in table.itertuples()}
    position = {key: i for i, key in enumerate(paper)}                      # Table 2's row order
    groups = sorted(folds.groupby(["dataset", "protocol", "method"]), key=lambda g: position.get(g[0], len(position)))
    fig = Figure(figsize=(max(4.5, 1.5 + 1.6 * len(groups)) * 1.6, 3.4))
    axes = fig.subplots(1, 3, sharey=True)
    labels = [group_label(method, ds, protocol).replace(" · ", "\n", 1) for (ds, protocol, method), _ in groups]
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
        bars = ax.bar(positions, np.nan_to_num(values), width, label=group_label(method, ds, protocol))
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


def ablation_figure(rows: pd.DataFrame) -> Figure:
    """One family: accuracy mean ± sample std across folds against the setting (in params order; with the
    network under it when the family trains several), every fold as a dot, the reference setting in black,
    each other setting's Wilcoxon p against it above it."""
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
    methods = rows["method"] if "method" in rows else pd.Series(["rcnn"] * len(rows))
    labels = ([f"{s}\n{m}" for s, m in zip(rows["setting"], methods, strict=True)] if methods.nunique() > 1
              else [str(s) for s in rows["setting"]])
    ax.set_xticks(range(len(rows)), labels)
    ax.set_xlim(-0.6, len(rows) - 0.4)
    ax.set_ylim(0, 1)
    ax.set_xlabel(family)
    ax.set_ylabel("accuracy (per fold, mean ± std)")
    ax.set_title(f"{family}: {rows['dataset'].iloc[0]}, {rows['protocol'].iloc[0]}", fontsize=10)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


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


def apex_error_figure(tables: Mapping[str, pd.DataFrame]) -> Figure:
    """Histogram, per dataset, of the estimated apex minus the coded one (frames) over the clips whose
    sheet codes an apex (data/{ds}/apex_spotting.csv, pipeline/flow.py)."""
    fig = Figure(figsize=(4.2 * max(len(tables), 1), 3.0))
    axes = np.atleast_1d(fig.subplots(1, max(len(tables), 1)))
    for ax, (ds, table) in zip(axes, tables.items(), strict=False):
        errors = pd.to_numeric(table["error_frames"], errors="coerce").dropna().to_numpy()
        if len(errors) == 0:
            ax.text(0.5, 0.5, "no clip with a coded apex", ha="center", va="center", transform=ax.transAxes)
        else:
            top = int(max(np.abs(errors).max(), 1))
            ax.hist(errors, bins=np.arange(-top - 0.5, top + 1.5), color="tab:blue", edgecolor="white")
            ax.axvline(0, color="black", linewidth=0.8)
        mean = f", mean |error| {np.abs(errors).mean():.1f} frames" if len(errors) else ""
        ax.set_title(f"{ds}: {len(errors)} coded apexes{mean}", fontsize=9)
        ax.set_xlabel("estimated − coded apex (frames)")
        ax.set_ylabel("clips")
    fig.tight_layout()
    return fig
