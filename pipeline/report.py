"""The report: results/report.html, one self-contained page, and the ablations' page.

The report stage draws every figure once (pipeline/figures.py), writes it as a PNG under
results/figures/ (one folder per kind, so that the rule can register them with Snakemake's `report()`
and `snakemake --report report.zip` shows the same figures), and embeds the same bytes in
results/report.html, which therefore stands alone (no file beside it is needed to view it).
"""

from __future__ import annotations

import base64
import html
import os
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from pipeline import __version__
from pipeline.aggregate import MEGC2019_PUBLISHED, METHOD_NAMES
from pipeline.artifacts import atomic_directory, atomic_output
from pipeline.baselines import split_row
from pipeline.figures import (
    apex_error_figure,
    confusion_figure,
    fold_accuracy_figure,
    group_label,
    jitter_figure,
    per_class_f1_figure,
    png_bytes,
    thumbnail_png,
)
from pipeline.fold_results import fold_key, fold_table


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode()


def _figure(png: bytes, caption: str, width: int | None = None) -> str:
    size = f' width="{width}"' if width else ""
    return (f'<figure><img src="{_data_uri(png)}" alt="{html.escape(caption)}"{size}>'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def _mean_std(mean: float, std: float) -> str:
    """mean ± std (the ablation table's per-fold spread)."""
    if pd.isna(mean):
        return "—"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def _headline(row: pd.Series, metric: str) -> str:
    """A metric's headline and its 95% interval, e.g. 0.662 [0.52, 0.80]."""
    if pd.isna(row.get(metric)):
        return "—"
    low, high = row.get(f"{metric}_ci_low"), row.get(f"{metric}_ci_high")
    return f"{row[metric]:.3f}" + ("" if pd.isna(low) or pd.isna(high) else f" [{low:.2f}, {high:.2f}]")


def _seed_spread(row: pd.Series) -> str:
    """The seeds' min–max of the metric the protocol's field reads first (k-fold: accuracy, as the paper;
    leave one subject out: UF1, as MEGC), or — with one seed (the CSV has all three)."""
    if pd.isna(row.get("seeds")) or int(row["seeds"]) <= 1:
        return "—"
    name, metric = ("accuracy", "accuracy") if row["headline"] == "fold mean" else ("UF1", "uf1")
    return f"{name} {row[f'{metric}_seed_min']:.3f}–{row[f'{metric}_seed_max']:.3f}"


def _folds_cell(row: pd.Series) -> str:
    repeats = row.get("repeats", np.nan)
    return f"{int(row['folds'])}" + ("" if pd.isna(repeats) or int(repeats) <= 1 else f" ({int(repeats)})")


def _cell(value: object, digits: int = 3) -> str:
    if isinstance(value, float | np.floating):
        return "—" if pd.isna(value) else f"{value:.{digits}f}"
    return "" if value is None else str(value)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A table of escaped cells; a `note` column's cells wrap (class note), the others stay on one line."""
    def row(cells: Sequence[str]) -> str:
        return "<tr>" + "".join(('<td class="note">' if name == "note" else "<td>") + html.escape(str(cell)) + "</td>"
                                for name, cell in zip(header, cells, strict=True)) + "</tr>"
    return ('<div style="overflow-x:auto"><table class="table2"><thead><tr>'
            + "".join(f"<th>{html.escape(h)}</th>" for h in header) + "</tr></thead><tbody>"
            + "".join(row(cells) for cells in rows) + "</tbody></table></div>")


def table2_html(table: pd.DataFrame) -> str:
    """Table 2: each row's headline (the protocol's own number) with its 95% interval, beside the paper's
    accuracy and the published numbers (real data only); a leave-one-subject-out row also shows the mean of
    its per-subject UF1, kept apart from the headline."""
    header = ["method", "dataset", "data", "protocol", "subject-independent", "folds (repeats)", "seeds", "headline",
              "accuracy [95%]", "UF1 [95%]", "UAR [95%]", "seed spread", "UF1 per-subject mean", "paper accuracy",
              "published UF1 / UAR", "note"]
    rows = []
    for _, r in table.iterrows():
        rows.append([r["method_name"], r["dataset"], r["data"], r["protocol"],
                     "yes" if r["subject_independent"] in (True, "True") else "no",
                     "—" if pd.isna(r["folds"]) else _folds_cell(r),
                     "—" if pd.isna(r["seeds"]) else str(int(r["seeds"])),
                     r["headline"], _headline(r, "accuracy"), _headline(r, "uf1"), _headline(r, "uar"),
                     _seed_spread(r), _cell(r.get("uf1_subject_mean")), _cell(r["paper_accuracy"]),
                     "—" if pd.isna(r.get("published_uf1")) else f"{r['published_uf1']:.4f} / {r['published_uar']:.4f}",
                     "" if pd.isna(r.get("note")) else r["note"]])
    return _html_table(header, rows)


def composite_table_html(table: pd.DataFrame) -> str:
    """The composites' scores as MEGC reports them: every method on the full composite and on each source
    dataset, all subjects' test predictions pooled, with the subject-bootstrap interval and the published
    numbers beside ours (real data only); empty when Table 2 has no composite (no `{composite}/{source}` rows)."""
    parts = table["dataset"].astype(str).str.partition("/")
    composites = list(dict.fromkeys(parts.loc[parts[2] != "", 0]))
    if not composites:
        return ""
    header = ["method", "part", "data", "protocol", "accuracy [95%]", "UF1 [95%]", "UAR [95%]", "UF1 (published)",
              "UAR (published)", "note"]
    rows = []
    for _, r in table[parts[0].isin(composites)].iterrows():
        rows.append([r["method_name"], parts.loc[r.name, 2] or "full composite", r["data"], r["protocol"],
                     _headline(r, "accuracy"), _headline(r, "uf1"), _headline(r, "uar"),
                     _cell(r.get("published_uf1"), 4), _cell(r.get("published_uar"), 4),
                     "" if pd.isna(r.get("note")) else r["note"]])
    return (f"<h2>Composite: {html.escape(', '.join(composites))}, overall and per source dataset</h2>"
            '<p class="note">As MEGC scores a composite: leave one subject out, the test predictions of every '
            "subject pooled, then accuracy, unweighted F1 and unweighted average recall, over the whole composite "
            "and over each source dataset's subjects; the interval resamples those subjects. Published: MEGC "
            "2019's baselines and STSTNet, shown only on the real datasets.</p>" + _html_table(header, rows))


def selection_html(table: pd.DataFrame) -> str:
    """"Published, as coded, honest": per network and dataset with more than one epoch selection, the published
    UF1 / UAR (real data only), merflow's test-selected (as the published code chooses), inner and last numbers
    with their intervals, and the gaps; empty without a test or inner row. A test row is shown only beside
    its method's last row."""
    if "selection" not in table or not table["selection"].isin(["inner", "test"]).any():
        return ""
    scored = table[table["folds"].fillna(0) > 0]
    method = scored["method"].astype(str).map(lambda row: split_row(row)[0])
    header = ["method", "dataset", "protocol", "published UF1 / UAR", "test (as coded) UF1 / UAR",
              "inner UF1 / UAR", "last UF1 / UAR", "UF1 gap test − last", "UF1 gap test − inner"]
    rows = []
    for (name, ds, protocol), group in scored.groupby([method, "dataset", "protocol"], sort=False):
        by = {r["selection"]: r for _, r in group.iterrows()}
        if "last" not in by or len(by) < 2:
            continue

        def pair(selection: str, by: dict = by) -> str:
            return f"{_headline(by[selection], 'uf1')} / {_headline(by[selection], 'uar')}" if selection in by else "—"

        def gap(a: str, b: str, by: dict = by) -> str:
            return f"{by[a]['uf1'] - by[b]['uf1']:+.3f}" if a in by and b in by else "—"

        last = by["last"]
        published = ("—" if pd.isna(last.get("published_uf1")) else
                     f"{last['published_uf1']:.4f} / {last['published_uar']:.4f}")
        rows.append([METHOD_NAMES.get(name, name), ds, protocol, published, pair("test"), pair("inner"), pair("last"),
                     gap("test", "last"), gap("test", "inner")])
    if not rows:
        return ""
    return ("<h2>Published, as coded, honest</h2>"
            '<p class="note">The same network scored three ways (docs/selection.md). <em>test</em>: each fold\'s '
            "epoch chosen on that fold's own test labels, as HTNet's and CausalNet's published code does: it reads "
            "the test labels, so it is an audit number, not an estimate for unseen subjects. <em>inner</em>: the "
            "epoch chosen on validation subjects drawn from the fold's training subjects; <em>last</em>: the fixed "
            "schedule's last epoch; neither reads a test label. Published numbers stand only beside real data. "
            "Intervals as in Table 2; the gap is the selection's optimism where it exceeds the intervals.</p>"
            + _html_table(header, rows))


STYLE = ("body{font-family:sans-serif;max-width:1200px;margin:2em auto;padding:0 1em;color:#222}"
         "table.table2{border-collapse:collapse;font-size:0.9em}"
         "table.table2 td,table.table2 th{padding:4px 10px;border-bottom:1px solid #ddd;text-align:left}"
         "table.table2 th{background:#f3f3f3}"
         "table.table2 td{white-space:nowrap}"
         "table.table2 td.note{white-space:normal;min-width:24em;font-size:0.85em;color:#555}"
         "figure{display:inline-block;margin:4px;vertical-align:top}"
         "figcaption{font-size:0.8em;text-align:center;color:#555}"
         "p.note{font-size:0.9em;color:#444}")


def published_html(methods: Sequence[str]) -> str:
    """The published MEGC 2019 composite scores (aggregate.MEGC2019_PUBLISHED) of the given methods."""
    rows = []
    for method in [m for m in MEGC2019_PUBLISHED if m in methods]:
        scores = MEGC2019_PUBLISHED[method]
        cells = [METHOD_NAMES.get(method, method),
                 *(f"{scores[s]['uf1']:.4f} / {scores[s]['uar']:.4f}" if s in scores else "—"
                   for s in ("full", "smic", "casme2", "samm"))]
        rows.append("<tr>" + "".join(f"<td>{html.escape(c)}</td>" for c in cells) + "</tr>")
    header = ["method", "composite (full)", "SMIC-HS", "CASME II", "SAMM"]
    return ('<table class="table2"><thead><tr>' + "".join(f"<th>{h} UF1 / UAR</th>" if i else f"<th>{h}</th>"
                                                         for i, h in enumerate(header))
            + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>")


def report_stage(table_csv: str | os.PathLike, metrics_paths: Sequence[str], prediction_paths: Sequence[str],
                 align_qc_dirs: Sequence[str], magnify_qc_dirs: Sequence[str], out_html: str | os.PathLike,
                 *, tensors_paths: Sequence[str] = (), index_paths: Sequence[str] = (),
                 flow_qc_dirs: Sequence[str] = (), apex_paths: Sequence[str] = (),
                 figures_dir: str | os.PathLike | None = None, qc_examples: int = 4) -> None:
    """results/report.html (self-contained) and, when figures_dir is given, the same figures as PNGs
    there, one folder per kind: summary/, confusion/, jitter/, alignment_qc/, evm/, flow_qc/, apex/.

    QC folders, tensors files and apex tables are per dataset, in the same order; the dataset's name is
    the folder above them (data/{ds}/...). The flow QC and the apex spotting tables come from the flow
    stage, which runs only with a flow network.
    """
    table = pd.read_csv(table_csv)
    folds = fold_table(metrics_paths) if metrics_paths else pd.DataFrame()
    figures: list[tuple[str, str, bytes]] = []         # (kind, file stem, png): written to figures_dir

    def add(kind: str, stem: str, png: bytes) -> bytes:
        figures.append((kind, stem, png))
        return png

    parts = ["<h2>Table 2: ours beside the paper's</h2>",
             '<p class="note">Each row leads with its protocol\'s own number (<em>headline</em>). k-fold (the '
             "paper's protocol): the mean over folds (all folds of all repeats) with the 95% corrected resampled t "
             "interval, which allows for the training clips that folds share. Leave one subject out (MEGC's "
             "protocol, and every composite's per-source row): the scores of all subjects' predictions pooled, "
             "with a 95% percentile interval from resampling the subjects; the mean of per-subject scores, which "
             "subjects with one or two classes bias, stands apart. With several seeds the headline is their mean "
             "and the seed spread their min–max. Two rows whose intervals overlap are not shown to differ.</p>"
             '<p class="note"><em>Subject-independent</em>: no test subject has clips in training. k-fold splits '
             "clips at random, as the paper does, so a test subject's other clips are in training and the "
             "network may recognise the person as much as the expression; leave one subject out holds each "
             "subject out whole. Rows with <em>data = synthetic</em> come from merflow's synthetic stand-in; the "
             "paper's and published numbers, which are for the real datasets, are left out of them (the note "
             "names them).</p>", table2_html(table), composite_table_html(table), selection_html(table)]
    published = [m for m in MEGC2019_PUBLISHED if m in set(table.loc[table["published_uf1"].notna(), "method"])]
    if published:       # beside a MEGC 2019 composite of the real datasets only
        parts += ["<h2>Published on MEGC 2019's composite</h2>",
                  '<p class="note">UF1 / UAR as published, on SMIC-HS + CASME II + SAMM (3 classes, leave one '
                  "subject out over 68 subjects, all subjects' predictions pooled): LBP-TOP and OFF-ApexNet as See "
                  "et al. report them (MEGC 2019), with STSTNet in Table III of Liong et al. (FG 2019). LBP-TOP's "
                  "SMIC pair (UF1 0.2000, UAR 0.5280) is no target: no pooled confusion matrix of SMIC-HS's clips "
                  "gives both.</p>", published_html(published)]
    if len(folds):
        parts += ["<h2>Accuracy, UF1 and UAR per fold</h2>",
                  _figure(add("summary", "fold_metrics", png_bytes(fold_accuracy_figure(folds, table))),
                          "every fold's test score (each seed's); bar: mean ± std; red diamond: the paper's accuracy "
                          "(real data)")]

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
                  _figure(add("summary", "per_class_f1", png_bytes(per_class_f1_figure(pooled))),
                          "F1 of each class over all folds' test clips")]
        for (ds, protocol, method), (predictions, classes) in pooled.items():
            title = group_label(method, ds, protocol)
            png = png_bytes(confusion_figure(predictions, classes, title))
            parts.append(_figure(add("confusion", f"{method}_{ds}_{protocol}", png), title))

    if tensors_paths:
        parts += ["<h2>Temporal jitter: the variants of one clip</h2>",
                  '<p class="note">Every clip becomes keep-ratios × resampling methods tensors (48 in the '
                  "paper): a random selection of 100 %, 90 %, …, 50 % of its frames, resampled to 30 frames "
                  "with 8 kernels. Test predictions average the softmax over all of them.</p>"]
        parts.append(distinct_variants_html(tensors_paths))
        for tensors_h5 in tensors_paths:
            ds = Path(tensors_h5).parent.name
            fig, clip_id = jitter_figure(tensors_h5)
            parts.append(_figure(add("jitter", f"{ds}_{clip_id}", png_bytes(fig)), f"{ds}: {clip_id}"))

    if index_paths:
        parts += ["<h2>Read differently from the sheets</h2>",
                  '<p class="note">Clips kept with a note (data/{ds}/index.csv): a correction of a known '
                  "sheet error, an apex estimated from the aligned face where none is coded, an offset past "
                  "the last frame file.</p>", notes_html(index_paths)]

    if apex_paths:
        tables = {Path(p).parent.name: pd.read_csv(p) for p in apex_paths}
        parts += ["<h2>Apex spotting: the estimate against the coded apex</h2>",
                  '<p class="note">The apex pipeline/apex.py estimates from the aligned face (no label), minus the '
                  "apex the sheet codes, on the clips that have one (data/{ds}/apex_spotting.csv). Clips without a "
                  "coded apex use the estimate.</p>",
                  _figure(add("apex", "apex_error", png_bytes(apex_error_figure(tables))),
                          "estimated − coded apex, in frames")]

    for title, kind, dirs in (("Alignment QC", "alignment_qc", align_qc_dirs),
                              ("EVM before / after", "evm", magnify_qc_dirs),
                              ("Onset → apex optical flow (TV-L1): arrows, direction, strain", "flow_qc",
                               flow_qc_dirs)):
        if kind == "flow_qc" and not dirs:
            continue
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


def distinct_variants_html(tensors_paths: Sequence[str]) -> str:
    """Per dataset: how many of each clip's variants are different tensors (tensors.h5 /distinct_variants).
    A keep-ratio that selects 30 frames or fewer gives fewer distinct kernels, so short clips have fewer."""
    import h5py

    from pipeline.jitter import distinct_variants_summary
    lines = []
    for tensors_h5 in tensors_paths:
        with h5py.File(tensors_h5, "r") as h5:
            if "distinct_variants" not in h5:
                continue
            counts, variants = h5["distinct_variants"][()].tolist(), int(h5["x"].shape[1])
        lines.append(f"<li>{html.escape(Path(tensors_h5).parent.name)}: "
                     f"{html.escape(distinct_variants_summary(counts, variants))}</li>")
    if not lines:
        return ""
    return ('<p class="note">Distinct variants: a selection of 30 frames or fewer resamples alike with several '
            "kernels (docs: reproducing the paper), so short clips have fewer different tensors than variants."
            "</p><ul>" + "".join(lines) + "</ul>")


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


def one_clip_per_subject(pngs: list[Path]) -> list[Path]:
    """The first QC image of each subject (clip ids start with the subject: sub01_EP02_01f)."""
    seen: dict[str, Path] = {}
    for png in pngs:
        seen.setdefault(png.stem.split("_")[0], png)
    return list(seen.values())


# ---------------------------------------------------------------- ablations (pipeline/ablations.py)

def ablations_page(table: pd.DataFrame, figures: Mapping[str, bytes]) -> str:
    """results/ablations.html: the ablation table and one figure per family, images embedded."""
    header = ["family", "setting", "network", "overrides", "folds", "test views", "accuracy",
              "accuracy 95% interval", "accuracy (unjittered view)", "Δ accuracy", "p (Wilcoxon)", "UF1", "UAR",
              "per-fold accuracy", "reran", "seconds"]
    rows = []
    for _, r in table.iterrows():
        low, high = r.get("accuracy_low", np.nan), r.get("accuracy_high", np.nan)
        cells = [r["family"], f"{r['setting']} (reference)" if r["reference"] else r["setting"],
                 r.get("method", "rcnn"), "" if pd.isna(r["overrides"]) else r["overrides"], int(r["folds"]),
                 "—" if pd.isna(r.get("test_views")) else int(r["test_views"]),
                 _mean_std(r["accuracy_mean"], r["accuracy_std"]),
                 "—" if pd.isna(low) else f"[{low:.3f}, {high:.3f}]",
                 _mean_std(r.get("accuracy_unjittered_mean", np.nan), r.get("accuracy_unjittered_std", np.nan)),
                 f"{r['delta_accuracy']:+.3f}",
                 "—" if pd.isna(r["p_wilcoxon"]) else f"{r['p_wilcoxon']:.3g}",
                 _mean_std(r["uf1_mean"], r["uf1_std"]), _mean_std(r["uar_mean"], r["uar_std"]),
                 r["fold_accuracy"], "" if pd.isna(r["stages_rerun"]) else r["stages_rerun"], f"{r['seconds']:.0f}"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    parts = ['<p class="note">Each setting changes only what its overrides name; the folds are the main '
             "pipeline's; a flow family trains each flow network on each setting. Δ accuracy: the mean paired "
             "difference from the family's reference (same network) on the same folds; the interval: Table 2's "
             "corrected resampled t over the k folds; "
             "p: two-sided Wilcoxon signed-rank test of the per-fold accuracies against the reference (with 5 "
             "folds it cannot go below 0.0625). Accuracy: each test clip scored by its mean softmax over its "
             "store's test views (a setting with one copy per clip has one view); accuracy (unjittered view): "
             "scored on the clip's keep-ratio 1.0, bilinear view alone, the same input in every jitter setting. "
             "Seconds: wall time of the jobs the setting reran.</p>",
             '<table class="table2"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"]
    parts += [_figure(png, f"{family}: accuracy against the setting") for family, png in figures.items()]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>merflow ablations</title>"
            f"<style>{STYLE}</style></head><body><h1>merflow ablations: the paper's claims</h1>"
            + "\n".join(parts) + "</body></html>")


# ---------------------------------------------------------------- spotting (pipeline/spotting/)

def spotting_page(table: pd.DataFrame, figures: Mapping[str, list[tuple[str, bytes]]]) -> str:
    """results/spotting.html: the spotting table and, per dataset and spotter, every video's curves with its true
    and spotted intervals (`figures`: "dataset / spotter" -> [(video, png)]), images embedded."""
    header = ["dataset", "data", "spotter", "type", "TP", "FP", "FN", "precision", "recall", "F1", "published F1"]
    rows = []
    for _, r in table.iterrows():
        cells = [r["dataset"], r["data"], r["spotter_name"], r["type"], int(r["tp"]), int(r["fp"]), int(r["fn"]),
                 f"{r['precision']:.3f}", f"{r['recall']:.3f}", f"{r['f1']:.3f}",
                 "—" if pd.isna(r["published_f1"]) else f"{r['published_f1']:.4f} ({r['published_source']})"]
        rows.append("<tr>" + "".join(f"<td>{html.escape(str(c))}</td>" for c in cells) + "</tr>")
    parts = ['<p class="note">MEGC\'s spotting metric: a spotted interval is a hit when its intersection over union '
             "with a true interval of its type is at least 0.5, each interval matched at most once; TP, FP and FN "
             "pooled over the dataset's videos. Published F1 only on the real datasets.</p>",
             '<table class="table2"><thead><tr>' + "".join(f"<th>{html.escape(h)}</th>" for h in header)
             + "</tr></thead><tbody>" + "".join(rows) + "</tbody></table>"]
    for name, videos in figures.items():
        parts.append(f"<h2>{html.escape(name)}</h2>")
        parts += [_figure(png, video) for video, png in videos]
    return ("<!doctype html><html><head><meta charset='utf-8'><title>merflow spotting</title>"
            f"<style>{STYLE}</style></head><body><h1>merflow spotting: expressions in long videos</h1>"
            + "\n".join(parts) + "</body></html>")
