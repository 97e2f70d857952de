"""End to end: the real Snakemake workflow on the tiny config, then a no-op rerun, then a training-param change.

One run of the whole DAG (synth → index → align → magnify → tensors → folds → train ×5 → aggregate → report)
in a temporary working directory; the assertions read Snakemake's own job summary, not timings.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from tests.faults import sha256

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "tiny.yaml"
TARGETS = ["results/table2.csv", "results/report.html"]


def snakemake(workdir: Path, *targets: str, configfiles: tuple[Path, ...] = (TINY,),
              timeout: int = 600, options: tuple[str, ...] = ()) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--cores", "2", *options, "--configfile", *map(str, configfiles), "--", *targets]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout, env=env)


def finished_jobs(output: str) -> dict[str, int]:
    """Jobs Snakemake reports as finished ('Finished jobid: N (Rule: NAME)'), counted per rule."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def job_counts(output: str) -> dict[str, int]:
    """Snakemake's 'Job stats' table: rule name -> number of jobs it plans to run."""
    counts: dict[str, int] = {}
    lines = output.splitlines()
    start = next(i for i, line in enumerate(lines) if line.strip() == "Job stats:")
    for line in lines[start + 3:]:
        match = re.fullmatch(r"\s*(\w+)\s+(\d+)\s*", line)
        if not match or match.group(1) == "total":
            break
        counts[match.group(1)] = int(match.group(2))
    return counts


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("e2e")
    result = snakemake(workdir, *TARGETS)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return workdir, result


def test_whole_pipeline_writes_every_artifact(tiny_run):
    workdir, result = tiny_run
    counts = finished_jobs(result.stdout + result.stderr)
    assert counts == {"synth": 1, "index": 1, "align": 1, "magnify": 1, "tensors": 1, "folds": 1, "train": 5,
                      "lbptop": 5, "aggregate": 1, "report": 1, "publish": 1}
    data = workdir / "data" / "casme2"
    for name in ("index.csv", "excluded.csv", "aligned.h5", "magnified.h5", "tensors.h5", "folds/kfold5.csv"):
        assert (data / name).is_file(), name
    assert len(list((data / "align_qc").glob("*.png"))) == 20
    index = pd.read_csv(data / "index.csv")
    assert len(index) == 20 and index["subject"].nunique() == 5
    assert set(index["label"]) == {"positive", "negative", "surprise", "others"}
    with h5py.File(data / "tensors.h5", "r") as h5:
        assert h5["x"].shape == (20, 4, 3, 1966, 30)   # 2 keep-ratios x 2 kernels in the tiny config
        assert h5.attrs["stage"] == "tensors"
    for fold in range(5):
        fold_dir = workdir / "results" / "casme2" / "kfold5" / "rcnn" / "seed0" / f"fold{fold}"
        for name in ("model.pt", "predictions.csv", "metrics.json", "train_log.csv"):
            assert (fold_dir / name).is_file(), f"fold{fold}/{name}"
    table = pd.read_csv(workdir / "results" / "table2.csv")
    assert table["method"].tolist() == ["lbptop", "rcnn"]
    row = table.iloc[1]
    assert (row["method"], row["dataset"], row["protocol"], row["folds"]) == ("rcnn", "casme2", "kfold5", 5)
    assert row["data"] == "synthetic" and pd.isna(row["paper_accuracy"])       # the paper's is for real data
    assert "paper_accuracy 0.658" in row["note"] and row["headline"] == "fold mean"
    assert not row["subject_independent"] and row["seeds"] == 1
    per_fold = [json.loads((workdir / "results" / "casme2" / "kfold5" / "rcnn" / "seed0" / f"fold{k}" / "metrics.json")
                           .read_text())["accuracy"] for k in range(5)]
    assert row["accuracy"] == pytest.approx(np.mean(per_fold), abs=1e-4)
    assert row["accuracy_ci_low"] <= row["accuracy"] <= row["accuracy_ci_high"]
    summary = json.loads((workdir / "results" / "metrics.json").read_text())["casme2"]["kfold5"]["rcnn"]
    assert summary["accuracy"] == row["accuracy"] and summary["folds"] == 5   # DVC's metrics file
    assert "paper_accuracy" not in summary
    baseline = table.iloc[0]          # LBP-TOP + SVM on the aligned faces, same folds
    assert baseline["folds"] == 5 and "paper_accuracy 0.592" in baseline["note"]
    assert 0 <= baseline["accuracy"] <= 1
    for fold in range(5):
        fold_dir = workdir / "results" / "casme2" / "kfold5" / "lbptop" / "seed0" / f"fold{fold}"
        assert (fold_dir / "predictions.csv").is_file()
    page = (workdir / "results" / "report.html").read_text()
    assert "Table 2" in page and page.count("<img") >= 3
    for rule in ("synth", "index", "align", "magnify", "tensors", "aggregate", "report"):
        assert list((workdir / "logs").rglob(f"{rule}*")), f"no log for {rule}"


def test_second_run_does_nothing(tiny_run):
    workdir, _ = tiny_run
    result = snakemake(workdir, *TARGETS)
    assert result.returncode == 0
    assert "Nothing to be done" in result.stdout + result.stderr


# Each params section: a change, and exactly the rules Snakemake plans to rerun for it on the finished tiny
# run (methods rcnn and lbptop). Table 2, the report and their publishing rerun whenever anything they read
# does; a section the tiny run does not read (a method not listed, the flow, the ablations, the jobs'
# resources) reruns nothing.
AFTER_FOLDS = {"train", "lbptop", "aggregate", "report", "publish"}
RERUNS = {
    "synth": ({"synth": {"subjects": 6}}, {"synth", "index", "align", "magnify", "tensors", "folds", *AFTER_FOLDS}),
    "index": ({"index": {"on_bad_clip": "drop"}}, {"index", "align", "magnify", "tensors", "folds", *AFTER_FOLDS}),
    "align": ({"align": {"min_score": -0.5}}, {"align", "magnify", "tensors", *AFTER_FOLDS}),
    "magnify": ({"magnify": {"alpha": 20}}, {"magnify", "tensors", "train", "aggregate", "report", "publish"}),
    "tensors": ({"tensors": {"seed": 1}}, {"tensors", "train", "aggregate", "report", "publish"}),
    "folds": ({"folds": {"seed": 1}}, {"folds", *AFTER_FOLDS}),
    "protocols": ({"protocols": ["kfold2"]}, {"folds", *AFTER_FOLDS}),
    "train": ({"train": {"lr": 0.002}}, {"train", "aggregate", "report", "publish"}),
    "seeds": ({"seeds": [0, 1]}, {"train", "aggregate", "report", "publish"}),
    "svm": ({"svm": {"c": 2.0}}, {"lbptop", "aggregate", "report", "publish"}),
    "lbptop": ({"lbptop": {"frames": 6}}, {"lbptop", "aggregate", "report", "publish"}),
    "methods": ({"methods": ["rcnn"]}, {"aggregate", "report", "publish"}),
    "aggregate": ({"aggregate": {"bootstrap": 1000}}, {"aggregate", "report", "publish"}),
    # rcnn's test row: its training records every epoch's test predictions; lbptop has no epochs
    "selection": ({"selection": ["last", "test"]}, {"train", "train_test", "aggregate", "report", "publish"}),
    # all at once: if together they rerun nothing, none of them does
    "cnn, flow, ablations, resources, htnet, epoch_selection": (
        {"cnn": {"epochs": 2}, "flow": {"tau": 0.2}, "ablations": {"families": {}}, "resources": {"train_mem_mb": 2000},
         "htnet": {"dim": 8}, "epoch_selection": {"ties": "earliest"}}, set()),
}


@pytest.mark.parametrize("section", list(RERUNS))
def test_a_changed_param_reruns_exactly_what_reads_it(tiny_run, tmp_path, section):
    """Snakemake's plan (a dry run: the reruns themselves are what every other end-to-end test runs)."""
    workdir, _ = tiny_run
    change, expected = RERUNS[section]
    tiny = yaml.safe_load(TINY.read_text())
    changed = tmp_path / "changed.yaml"
    changed.write_text(yaml.safe_dump({key: {**tiny.get(key, {}), **value} if isinstance(value, dict) else value
                                       for key, value in change.items()}))
    result = snakemake(workdir, *TARGETS, configfiles=(TINY, changed), options=("--dry-run",))
    assert result.returncode == 0, result.stderr[-4000:]
    if not expected:
        assert "Nothing to be done" in result.stdout + result.stderr
        return
    planned = job_counts(result.stdout + result.stderr)
    assert {rule for rule, n in planned.items() if n} == expected
    if section in ("train", "seeds"):
        assert planned["train"] == 5        # seeds [0, 1]: only seed 1's five folds are new


def test_the_rerun_matrix_covers_every_params_section():
    sections = set(yaml.safe_load((REPO / "params.yaml").read_text()))
    # dataset/datasets/mappings: what a dataset is and how it is labelled is switched whole (the next test)
    untested = {"dataset", "datasets", "mappings", "lbpsip", "tics", "mdmo", "pretrained_cnn", "ststnet",
                "off_apexnet",    # methods not in the tiny run: as `cnn`, nothing reruns
                "synth_long_videos",    # read by `merflow synth --layout casme_sq|samm_lv` only, no stage
                "spotting"}             # read by `merflow spot` only, no stage
    assert sections - untested == {name for key in RERUNS for name in key.split(", ")}


def test_switching_configs_in_one_folder_reruns_what_changed_and_publishes_the_right_table(tiny_run):
    """The tiny k-fold run's folder, then MEGC 2019's composite, then each again, with no -R or --forceall:
    each Table 2 holds exactly its config's rows, and switching back only publishes the run already made
    (pipeline/runs.py). `merflow audit` names a published table left from the other config. Ends with the
    k-fold run published, as the tests below expect."""
    workdir, _ = tiny_run
    lbptop = workdir / "lbptop.yaml"          # the composite with one method: a few seconds per fold
    lbptop.write_text("methods: [lbptop]\n")
    kfold = (TINY,)
    composite = (REPO / "workflow" / "configs" / "megc2019.yaml", TINY, lbptop)

    def plan(configfiles: tuple[Path, ...]) -> dict[str, int]:
        result = snakemake(workdir, *TARGETS, configfiles=configfiles, options=("--dry-run",))
        assert result.returncode == 0, result.stderr[-4000:]
        text = result.stdout + result.stderr
        return {} if "Nothing to be done" in text else job_counts(text)

    def run(configfiles: tuple[Path, ...]) -> pd.DataFrame:
        result = snakemake(workdir, *TARGETS, configfiles=configfiles)
        assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
        return pd.read_csv(workdir / "results" / "table2.csv")

    def audit(configfiles: tuple[Path, ...]) -> subprocess.CompletedProcess:
        command = [sys.executable, "-m", "pipeline.cli", "audit", "--params", str(REPO / "params.yaml"),
                   *map(str, configfiles)]
        return subprocess.run(command, cwd=workdir, capture_output=True, text=True, timeout=300)

    assert pd.read_csv(workdir / "results" / "table2.csv")["dataset"].tolist() == ["casme2", "casme2"]
    switch = plan(composite)
    # leave-one-subject-out's folds (one per subject) join the plan once the folds checkpoint has run
    assert {"composite_index", "composite_aligned", "folds", "aggregate", "report", "publish"} <= set(switch)
    assert "train" not in switch and switch["folds"] == 1
    table = run(composite)
    assert table["dataset"].tolist() == ["megc2019", "megc2019/casme2", "megc2019/samm", "megc2019/smic"]
    assert set(table["protocol"]) == {"loso"}
    fresh = audit(composite)
    assert fresh.returncode == 0, fresh.stdout[-3000:]
    assert "0 stale, 0 missing, 0 not recorded" in fresh.stdout

    stale = audit(kfold)                   # the config switched back, before it is run: the table is the composite's
    assert stale.returncode == 1
    line = next(line for line in stale.stdout.splitlines() if line.startswith("publish"))
    assert "results/table2.csv" in line and "[stale]" in line
    assert "made from 5 file(s) the current params do not read: results/runs/" in stale.stdout

    assert plan(kfold) == {"publish": 1}
    assert plan(composite) == {}           # the composite is what results/ holds now
    assert run(kfold)["method"].tolist() == ["lbptop", "rcnn"]
    assert set(plan(composite)) == {"publish"}
    assert len(list((workdir / "results" / "runs").iterdir())) == 2


def test_snakemake_report_holds_the_same_figures(tiny_run):
    """`snakemake --report report.zip` (the figures are registered with report() in the report rule)."""
    import zipfile
    workdir, _ = tiny_run
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--configfile", str(TINY), "--report", str(workdir / "report.zip")]
    result = subprocess.run(command, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"})
    assert result.returncode == 0, result.stderr[-4000:]
    names = zipfile.ZipFile(workdir / "report.zip").namelist()
    figures = sorted(str(p.relative_to(workdir / "results" / "figures"))
                     for p in (workdir / "results" / "figures").rglob("*.png"))
    assert "summary/fold_metrics.png" in figures and "jitter/casme2_" in " ".join(figures)
    for figure in figures:
        assert any(name.endswith(Path(figure).name) for name in names), figure
    assert any(name.endswith("table2.csv") for name in names) and any(name.endswith("report.html") for name in names)


# --- what is the same on every CPU (docs: reproducibility) -----------------------------------------------

DIGESTS = REPO / "tests" / "data" / "tiny_digests.json"
BYTE_IDENTICAL = ("data/casme2/index.csv", "data/casme2/folds/kfold5.csv")
# A lower OpenCV/oneDNN/PyTorch kernel path than this machine's best: what another CPU may run.
OTHER_KERNELS = {"OPENCV_CPU_DISABLE": "AVX2,FMA3", "ONEDNN_MAX_CPU_ISA": "SSE41", "ATEN_CPU_CAPABILITY": "default"}


def test_index_and_folds_match_the_recorded_checksums(tiny_run):
    """The index and the folds depend only on the sheets, the params and the code, never on pixel
    arithmetic: their bytes are recorded in the repo and must come out the same on any machine.
    (After an intended change to either, write the new digests printed here into tests/data.)"""
    workdir, _ = tiny_run
    recorded = json.loads(DIGESTS.read_text())
    observed = {name: sha256(workdir / name) for name in BYTE_IDENTICAL}
    assert observed == recorded, json.dumps(observed, indent=2)


def test_pixel_artifacts_agree_across_cpu_kernel_paths(tiny_run, tmp_path):
    """The same synthetic frames aligned, magnified and jittered on a lower kernel path: landmarks and
    transforms (dlib, no run-time dispatch) are byte-identical; the uint8 frames may differ by a grey
    level or two where OpenCV's vector kernels round differently (FMA against separate multiply-add)."""
    workdir, _ = tiny_run
    other = tmp_path / "other"
    shutil.copytree(workdir / "data" / "synthetic", other / "data" / "synthetic")
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(other),
               "--cores", "2", "--configfile", str(TINY), "--", *BYTE_IDENTICAL[1:], "data/casme2/tensors.h5"]
    env = {**os.environ, **OTHER_KERNELS, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    result = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert result.returncode == 0, result.stderr[-4000:]
    assert "rule synth" not in result.stdout + result.stderr           # the same frames, not re-rendered
    for name in BYTE_IDENTICAL:
        assert sha256(other / name) == sha256(workdir / name), name
    data, other_data = workdir / "data" / "casme2", other / "data" / "casme2"
    for name in ("aligned.h5", "magnified.h5"):
        with h5py.File(data / name, "r") as mine, h5py.File(other_data / name, "r") as theirs:
            assert sorted(mine["clips"]) == sorted(theirs["clips"])
            for clip in mine["clips"]:
                for key in mine["clips"][clip]:
                    a, b = mine["clips"][clip][key][()], theirs["clips"][clip][key][()]
                    if key == "frames":
                        assert_grey_levels_close(a, b, f"{name} {clip}")
                    else:
                        assert np.array_equal(a, b), f"{name} {clip}/{key}"
    with h5py.File(data / "tensors.h5", "r") as mine, h5py.File(other_data / "tensors.h5", "r") as theirs:
        assert_grey_levels_close(mine["x"][()], theirs["x"][()], "tensors.h5 x")


def assert_grey_levels_close(a: np.ndarray, b: np.ndarray, what: str) -> None:
    assert a.dtype == b.dtype == np.uint8 and a.shape == b.shape, what
    difference = np.abs(a.astype(np.int16) - b.astype(np.int16))
    assert difference.max() <= 2 and (difference > 0).mean() < 1e-3, \
        f"{what}: max {difference.max()}, {(difference > 0).mean():.2e} of the pixels differ"
