"""DVC: the committed dvc.yaml is current, `dvc repro` runs the tiny pipeline in a fresh git repo, and its
stages have the Snakemake rules' names, inputs and outputs (so the two runners cannot drift apart).

DVC runs its stages one after another, so the tiny pipeline runs here with 2 folds."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from pipeline.config import load_params
from pipeline.dvcgen import dvc_stages, dvc_yaml

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "tiny.yaml"
BIN = Path(sys.executable).parent
ENV = {**os.environ, "PATH": f"{BIN}:{os.environ['PATH']}", "DVC_NO_ANALYTICS": "1"}


def run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run(command, cwd=cwd, env=ENV, capture_output=True, text=True, timeout=timeout)


def test_committed_dvc_yaml_is_generated_from_params():
    assert (REPO / "dvc.yaml").read_text() == dvc_yaml(load_params(REPO / "params.yaml")), \
        "dvc.yaml is out of date: run `merflow dvc-yaml`"


@pytest.fixture(scope="module")
def dvc_repo(tmp_path_factory):
    """A fresh git + DVC repository holding the tiny params, the generated dvc.yaml and the code it tracks."""
    repo = tmp_path_factory.mktemp("dvc")
    overlay = repo / "two_folds.yaml"
    overlay.write_text(yaml.safe_dump({"protocols": ["kfold2"]}))
    params = load_params(REPO / "params.yaml", TINY, overlay)
    overlay.unlink()
    (repo / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    (repo / "dvc.yaml").write_text(dvc_yaml(params))
    shutil.copytree(REPO / "pipeline", repo / "pipeline", ignore=shutil.ignore_patterns("__pycache__"))
    for command in (["git", "init", "-q"], [str(BIN / "dvc"), "init", "-q"]):
        assert run(command, repo).returncode == 0
    result = run([str(BIN / "dvc"), "repro"], repo)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    return repo, result


def test_dvc_repro_runs_the_pipeline_and_records_it(dvc_repo):
    repo, _ = dvc_repo
    table = (repo / "results" / "table2.csv").read_text()
    assert table.startswith("method,method_name,selection,dataset") and "rcnn,MER-RCNN,last,casme2" in table
    assert (repo / "results" / "report.html").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert {"index@casme2", "tensors@casme2", "train@casme2-kfold2-rcnn-0-1", "lbptop@casme2-kfold2-0-1",
            "aggregate"} <= set(lock["stages"])
    assert all(out["md5"] for out in lock["stages"]["tensors@casme2"]["outs"])
    again = run([str(BIN / "dvc"), "repro"], repo)
    assert again.returncode == 0 and "Running stage" not in again.stdout


def test_dvc_metrics_show_table2_and_plots_show_per_fold_accuracy(dvc_repo):
    repo, _ = dvc_repo
    shown = run([str(BIN / "dvc"), "metrics", "show", "--json"], repo)
    assert shown.returncode == 0, shown.stderr[-2000:]
    workspace = next(iter(json.loads(shown.stdout).values()))   # keyed "" before the first commit
    metrics = workspace["data"]["results/metrics.json"]["data"]
    table = pd.read_csv(repo / "results" / "table2.csv")
    row = table[table["method"] == "rcnn"].iloc[0]
    rcnn = metrics["casme2"]["kfold2"]["rcnn"]
    assert rcnn["accuracy"] == pytest.approx(row["accuracy"]) and rcnn["folds"] == 2 and rcnn["seeds"] == 1
    assert rcnn["accuracy_ci_low"] == pytest.approx(row["accuracy_ci_low"]) and rcnn["headline"] == "fold mean"
    assert "paper_accuracy" not in rcnn          # the paper's number stands beside its own protocol only
    assert "casme2.kfold2.rcnn.accuracy" in run([str(BIN / "dvc"), "metrics", "show"], repo).stdout
    plots = run([str(BIN / "dvc"), "plots", "show", "--json"], repo)
    assert plots.returncode == 0, plots.stderr[-2000:]
    folds = pd.read_csv(repo / "results" / "fold_metrics.csv")
    folds = folds[folds["method"] == "rcnn"]
    assert list(folds["fold"]) == [0, 1]
    values = json.loads(plots.stdout)["data"]["results/fold_metrics.csv"][0]["content"]["data"]["values"]
    values = [v for v in values if v["method"] == "rcnn"]
    assert [(v["fold"], float(v["accuracy"])) for v in values] == \
        [(str(f), pytest.approx(a)) for f, a in zip(folds["fold"], folds["accuracy"], strict=True)]


def snakemake_rules(workdir: Path) -> dict[str, tuple[set[str], set[str]]]:
    """rule -> (inputs, outputs) as Snakemake's --filegraph shows them, wildcards written {name}."""
    result = run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                  str(workdir), "--configfile", str(workdir / "params.yaml"), "--filegraph"], workdir)
    assert result.returncode == 0, result.stderr[-3000:]
    rules = {}
    for node in result.stdout.split('<font point-size="18">')[1:]:
        name = node[:node.index("<")]
        inputs, _, outputs = node.partition("output &rarr;")
        rules[name] = tuple({_normalise(f) for f in re.findall(r'<font face="monospace">(.*?)</font>', part)}
                            for part in (inputs, outputs))
    return rules


def _normalise(path: str) -> str:
    path = re.sub(r"\{(\w+),[^}]*\}", r"{\1}", path)            # {ds,[A-Za-z0-9_]+} -> {ds}
    return os.path.relpath(path, REPO) if os.path.isabs(path) else path


INPUT_FUNCTION = "&lt;input function&gt;"  # how --filegraph shows an input computed by a function


def _placeholders(path: str, wildcard: str) -> str:
    for field in ("ds", "protocol", "method", "seed", "fold"):
        path = path.replace(f"${{item.{field}}}", f"{{{field}}}")
    return path.replace("${item}", f"{{{wildcard}}}").replace("${key}", "{ds}")


def dvc_rules(params: dict) -> dict[str, tuple[set[str], set[str]]]:
    """stage -> (deps, outs) of the generated dvc.yaml, ${item...} placeholders written {name}; deps that
    Snakemake computes with an input function (a dataset's root, the per-fold results) are left out."""
    rules = {}
    for name, stage in dvc_stages(params)["stages"].items():
        body = stage.get("do", stage)
        wildcard = "layout" if name == "synth" else "ds"
        computed = {d for d in body["deps"] if d == "${item.root}" or re.match(r"results/.*/fold\d+/", d)}
        deps = {_placeholders(d, wildcard) for d in body["deps"] if d not in computed}
        # metrics and plots files are outputs too (the rule lists them among its outputs)
        outs = [*body["outs"], *body.get("metrics", []),
                *(next(iter(p)) if isinstance(p, dict) else p for p in body.get("plots", []))]
        rules[name] = (deps, {_placeholders(o, wildcard) for o in outs})
    return rules


def test_dvc_stages_mirror_the_snakemake_rules(dvc_repo):
    """Same stage names as the rules, and each stage the same inputs and outputs as its rule."""
    repo, _ = dvc_repo
    snakemake = snakemake_rules(repo)
    dvc = dvc_rules(yaml.safe_load((repo / "params.yaml").read_text()))
    assert set(snakemake) - {"all"} == set(dvc)
    for name, (deps, outs) in dvc.items():
        inputs, outputs = snakemake[name]
        assert (deps, outs) == (inputs - {INPUT_FUNCTION}, outputs), f"stage {name} differs from its Snakemake rule"


def test_dvc_repro_refuses_a_dvc_yaml_the_params_no_longer_make_then_follows_the_new_one(dvc_repo):
    """params.yaml edited without regenerating dvc.yaml: the first stage DVC reruns stops with what to do,
    and Table 2 is left as it was; regenerated, `dvc repro` makes the new run and publishes it."""
    repo, _ = dvc_repo
    params_file, dvc_file = repo / "params.yaml", repo / "dvc.yaml"
    original_params, original_dvc = params_file.read_text(), dvc_file.read_text()
    table = (repo / "results" / "table2.csv").read_text()
    params = yaml.safe_load(original_params)
    try:
        params_file.write_text(yaml.safe_dump({**params, "methods": ["rcnn"]}, sort_keys=False))
        refused = run([str(BIN / "dvc"), "repro"], repo)
        assert refused.returncode != 0
        assert "dvc.yaml was generated from other params than params.yaml now hold" in refused.stdout + refused.stderr
        assert "run `merflow dvc-yaml`" in refused.stdout + refused.stderr
        assert (repo / "results" / "table2.csv").read_text() == table
        assert run([str(BIN / "merflow"), "dvc-yaml"], repo).returncode == 0
        again = run([str(BIN / "dvc"), "repro"], repo)
        assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
        assert pd.read_csv(repo / "results" / "table2.csv")["method"].tolist() == ["rcnn"]
        assert "Running stage 'train" not in again.stdout          # the folds were trained already
    finally:
        params_file.write_text(original_params)
        dvc_file.write_text(original_dvc)
    restored = run([str(BIN / "dvc"), "repro"], repo)
    assert restored.returncode == 0 and (repo / "results" / "table2.csv").read_text() == table
