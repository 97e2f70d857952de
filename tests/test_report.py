"""The report stage (pipeline/report.py): Table 2 beside the paper's, the figures, the self-contained page,
and the page as a browser shows it (headless Chromium)."""

from __future__ import annotations

import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest

from pipeline.aggregate import aggregate_stage
from pipeline.artifacts import open_h5_for_write, write_clip
from pipeline.figures import per_class_f1
from pipeline.imageio import write_rgb
from pipeline.jitter import tensors_stage
from pipeline.report import report_stage

CLASSES = ["positive", "negative", "surprise", "others"]
DATASETS = {"casme2": {"layout": "casme2", "synthetic": True}}
TENSORS = {"height": 16, "width": 12, "crop": 0.8, "pixels": 123, "frames": 8, "keep_ratios": [1.0, 0.7, 0.5],
           "kernels": ["nearest", "bicubic", "lanczos3"], "seed": 0, "classes": CLASSES}


def write_fold(root: Path, method: str, fold: int, rng: np.random.Generator) -> tuple[str, str]:
    """metrics.json and predictions.csv of one fold, as the train stage writes them."""
    fold_dir = root / "results" / "casme2" / "kfold5" / method / "seed0" / f"fold{fold}"
    fold_dir.mkdir(parents=True)
    true = rng.integers(0, 4, 12)
    predicted = np.where(rng.random(12) < 0.6, true, rng.integers(0, 4, 12))
    p = rng.dirichlet(np.ones(4), 12)
    table = pd.DataFrame({"clip_id": [f"sub{i:02d}_EP{fold}" for i in range(12)], "subject": "s",
                          "true": [CLASSES[i] for i in true], "predicted": [CLASSES[i] for i in predicted],
                          **{f"p_{c}": p[:, k] for k, c in enumerate(CLASSES)}})
    table.to_csv(fold_dir / "predictions.csv", index=False)
    accuracy = float(np.mean(true == predicted))
    (fold_dir / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "uf1": accuracy * 0.9,
                                                       "uar": accuracy * 0.95, "n_test": 12}))
    return str(fold_dir / "metrics.json"), str(fold_dir / "predictions.csv")


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """Two methods x 3 folds of results, QC images, a tensors.h5 of 2 clips, and the report made from them.
    Table 2 gets one extra row of a method that could not run, with a note, as a baseline may add."""
    root = tmp_path_factory.mktemp("report")
    rng = np.random.default_rng(0)
    metrics, predictions = [], []
    for method in ("rcnn", "cnn"):
        for fold in range(3):
            m, p = write_fold(root, method, fold, rng)
            metrics.append(m)
            predictions.append(p)
    table_csv = root / "results" / "table2.csv"
    aggregate_stage(metrics, table_csv, datasets=DATASETS)
    table = pd.read_csv(table_csv)
    not_run = {c: None for c in table.columns} | {"method": "pretrained_cnn", "method_name": "Pre-trained CNNs",
                                                   "dataset": "casme2", "data": "synthetic", "protocol": "kfold5",
                                                   "paper_accuracy": 0.304}
    table = pd.concat([table, pd.DataFrame([not_run])], ignore_index=True)
    table["note"] = [*table["note"].iloc[:2], "not run: needs pre-trained weights"]
    table.to_csv(table_csv, index=False)

    data = root / "data" / "casme2"
    for qc in ("align_qc", "magnify_qc"):
        (data / qc).mkdir(parents=True)
        for clip_id in ("sub01_EP01", "sub01_EP02", "sub02_EP01"):  # one image per subject is shown
            write_rgb(data / qc / f"{clip_id}.png", rng.integers(0, 256, (300, 1600, 3), dtype=np.uint8))
    with open_h5_for_write(data / "magnified.h5") as h5:
        for n, clip_id in enumerate(("sub01_EP01", "sub02_EP01")):
            t = np.arange(14)[:, None, None, None]                   # the right half moves over time
            moving = (np.arange(12) > 5)[None, None, :, None]
            frames = (100 + 40 * np.sin(t / 3 + n) * moving) * np.ones((1, 16, 12, 3))
            write_clip(h5, clip_id, frames.astype(np.uint8),
                       {"subject": clip_id[:5], "label": "positive", "onset": 0, "apex": 7, "offset": 13})
    tensors_stage(data / "magnified.h5", data / "tensors.h5", **TENSORS)

    cwd = os.getcwd()
    os.chdir(root)  # the stage reads dataset names from the paths, as Snakemake passes them (relative)
    try:
        report_stage("results/table2.csv", [os.path.relpath(m, root) for m in metrics],
                     [os.path.relpath(p, root) for p in predictions], ["data/casme2/align_qc"],
                     ["data/casme2/magnify_qc"], "results/report.html", tensors_paths=["data/casme2/tensors.h5"],
                     figures_dir="results/figures")
    finally:
        os.chdir(cwd)
    return root


def test_table2_is_on_the_page_ours_beside_the_papers(run):
    page = (run / "results" / "report.html").read_text()
    table = page[page.index('<table class="table2">'):page.index("</table>")]
    header = re.findall(r"<th>(.*?)</th>", table)
    assert header[7:11] == ["headline", "accuracy [95%]", "UF1 [95%]", "UAR [95%]"] and header[13] == "paper accuracy"
    rows = re.findall(r"<tr>(.*?)</tr>", table)[1:]
    assert len(rows) == 3
    cells = [dict(zip(header, re.findall(r"<td[^>]*>(.*?)</td>", row), strict=True)) for row in rows]
    mer_rcnn = next(c for c in cells if c["method"] == "MER-RCNN")
    assert re.fullmatch(r"0\.\d{3} \[\d\.\d\d, \d\.\d\d\]", mer_rcnn["accuracy [95%]"])
    assert mer_rcnn["headline"] == "fold mean" and mer_rcnn["subject-independent"] == "no"
    assert mer_rcnn["paper accuracy"] == "—" and "paper_accuracy 0.658" in mer_rcnn["note"]   # synthetic data
    assert "Subject-independent</em>: no test subject has clips in training" in page
    assert re.search(r"<li>casme2: distinct variants per clip: min/median/max \d+/\d+/\d+ of \d+</li>", page)
    not_run = next(c for c in cells if c["method"] == "Pre-trained CNNs")
    assert not_run["accuracy [95%]"] == "—" and not_run["note"] == "not run: needs pre-trained weights"


def test_table2_gives_repeats_and_the_corrected_interval_over_all_folds(tmp_path):
    """10 folds of kfold5 (folds.repeats 2): repeats 2, and the 95% interval is the corrected resampled t
    over all 10 folds, mean +- t(9, .975) sqrt((1/10 + 12/48) s^2), t(9, .975) = 2.2622."""
    accuracies = [0.5, 0.6, 0.4, 0.7, 0.55, 0.45, 0.65, 0.5, 0.6, 0.35]
    paths = []
    for fold, accuracy in enumerate(accuracies):
        fold_dir = tmp_path / "results" / "casme2" / "kfold5" / "rcnn" / "seed0" / f"fold{fold}"
        fold_dir.mkdir(parents=True)
        (fold_dir / "metrics.json").write_text(json.dumps({"accuracy": accuracy, "uf1": accuracy, "uar": accuracy,
                                                           "n_test": 12, "n_train_clips": 48}))
        paths.append(fold_dir / "metrics.json")
    aggregate_stage(paths, tmp_path / "table2.csv", datasets=DATASETS)
    row = pd.read_csv(tmp_path / "table2.csv").iloc[0]
    assert (row["folds"], row["repeats"]) == (10, 2)
    half = 2.2622 * np.sqrt((1 / 10 + 12 / 48) * np.var(accuracies, ddof=1))
    assert row["accuracy_ci_low"] == pytest.approx(np.mean(accuracies) - half, abs=1e-4)
    assert row["accuracy_ci_high"] == pytest.approx(np.mean(accuracies) + half, abs=1e-4)
    assert row["uar_ci_low"] == row["accuracy_ci_low"]


def test_every_figure_is_embedded_and_also_written_as_png(run):
    figures = run / "results" / "figures"
    written = sorted(str(p.relative_to(figures)) for p in figures.rglob("*.png"))
    assert written == ["alignment_qc/casme2_sub01_EP01.png", "alignment_qc/casme2_sub02_EP01.png",
                       "confusion/cnn_casme2_kfold5.png", "confusion/rcnn_casme2_kfold5.png",
                       "evm/casme2_sub01_EP01.png", "evm/casme2_sub02_EP01.png",
                       "jitter/casme2_sub01_EP01.png", "summary/fold_metrics.png", "summary/per_class_f1.png"]
    page = (run / "results" / "report.html").read_text()
    embedded = re.findall(r'<img src="data:image/png;base64,([^"]+)"', page)
    assert len(embedded) == len(written) == page.count("<img")     # nothing refers to a file beside it
    assert sorted(base64.b64decode(e) for e in embedded) == sorted(p.read_bytes() for p in figures.rglob("*.png"))
    qc = cv2.imread(str(figures / "alignment_qc" / "casme2_sub01_EP01.png"))
    assert qc.shape[1] == 760                                        # QC images are scaled down for the page
    jitter = cv2.imread(str(figures / "jitter" / "casme2_sub01_EP01.png"))
    assert jitter.shape[0] > 300 and jitter.shape[1] > 300


def test_rerun_gives_the_same_page(run, tmp_path):
    cwd = os.getcwd()
    shutil.copytree(run / "data", tmp_path / "data")
    shutil.copytree(run / "results", tmp_path / "results")
    os.chdir(tmp_path)
    try:
        metrics = sorted(str(p) for p in Path("results").rglob("metrics.json"))
        report_stage("results/table2.csv", metrics, [m.replace("metrics.json", "predictions.csv") for m in metrics],
                     ["data/casme2/align_qc"], ["data/casme2/magnify_qc"], "results/report.html",
                     tensors_paths=["data/casme2/tensors.h5"], figures_dir="results/figures")
    finally:
        os.chdir(cwd)
    assert (tmp_path / "results" / "report.html").read_bytes() == (run / "results" / "report.html").read_bytes()


def test_per_class_f1_of_pooled_predictions():
    predictions = pd.DataFrame({"true": ["positive", "positive", "negative", "surprise"],
                                "predicted": ["positive", "negative", "negative", "positive"]})
    f1 = per_class_f1(predictions, CLASSES)
    # positive: TP 1, FP 1, FN 1 -> 0.5; negative: TP 1, FP 1 -> 2/3; surprise: FN 1 -> 0; others: absent
    np.testing.assert_allclose(f1[:3], [0.5, 2 / 3, 0.0])
    assert np.isnan(f1[3])


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser") or shutil.which("google-chrome")
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars"]


def chromium(page: Path, profile: Path, *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([CHROMIUM, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args, page.as_uri()],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.skipif(CHROMIUM is None, reason="needs Chromium (.ci/run installs Debian's `chromium`)")
def test_page_renders_in_a_browser_with_its_table_and_figures(run, tmp_path):
    page = run / "results" / "report.html"
    dom = chromium(page, tmp_path / "profile", "--dump-dom")
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "<th>paper accuracy</th>" in dom.stdout and "<th>UF1 [95%]</th>" in dom.stdout and "MER-RCNN" in dom.stdout
    assert dom.stdout.count("<img") == 9
    screenshot = tmp_path / "page.png"
    shot = chromium(page, tmp_path / "profile", f"--screenshot={screenshot}", "--window-size=1280,6000")
    assert screenshot.is_file(), shot.stderr[-2000:]
    image = cv2.imread(str(screenshot))
    # The figures, not just text: a tall page with many non-white pixels, and the plots', confusion
    # matrices' and jitter panels' saturated colours, which only decoded images put on the page.
    inked = image.min(axis=2) < 235
    content = image[: np.flatnonzero(inked.any(axis=1))[-1] + 1]
    assert len(content) > 2000 and np.mean(content.min(axis=2) < 235) > 0.1
    saturation = cv2.cvtColor(content, cv2.COLOR_BGR2HSV)[:, :, 1]
    assert np.mean(saturation > 120) > 0.01


def test_the_report_lists_every_clip_read_differently_from_its_sheet(tmp_path):
    from pipeline.report import notes_html
    index = tmp_path / "casme2" / "index.csv"
    index.parent.mkdir()
    pd.DataFrame({"dataset": ["casme2", "casme2"], "clip_id": ["sub07_EP06_01", "sub01_EP02_01f"],
                  "apex_source": ["sheet", "estimated"],
                  "notes": ["row 5: OffsetFrame 68 corrected to 91 (frame files)", ""]}).to_csv(index, index=False)
    page = notes_html([str(index)])
    assert "sub07_EP06_01" in page and "OffsetFrame 68 corrected to 91" in page and "sub01_EP02_01f" not in page
    index.write_text("dataset,clip_id,apex_source,notes\ncasme2,sub01_EP02_01f,sheet,\n")
    assert notes_html([str(index)]) == "<p>Every clip was read as its sheet codes it.</p>"
