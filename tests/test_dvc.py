"""DVC: the committed dvc.yaml is current, `dvc repro` runs the tiny pipeline in a fresh git repo, and its
stages have the Snakemake rules' names, inputs and outputs (so the two runners cannot drift apart)."""

from __future__ import annotations

import csv
import io
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_params
from pipeline.dvcgen import dvc_yaml

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
    params = load_params(REPO / "params.yaml", TINY)
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
    assert table.startswith("method,method_name,dataset") and "rcnn,MER-RCNN,casme2" in table
    assert (repo / "results" / "report.html").is_file()
    lock = yaml.safe_load((repo / "dvc.lock").read_text())
    assert {"index@casme2", "tensors@casme2", "train@casme2-kfold5-rcnn-0", "aggregate"} <= set(lock["stages"])
    assert all(out["md5"] for out in lock["stages"]["tensors@casme2"]["outs"])
    again = run([str(BIN / "dvc"), "repro"], repo)
    assert again.returncode == 0 and "Running stage" not in again.stdout


def test_dvc_stages_mirror_the_snakemake_rules(dvc_repo):
    """Every file Snakemake would make is made by the DVC stage of the same name, from the same inputs."""
    repo, _ = dvc_repo
    from dvc.repo import Repo

    with Repo(str(repo)) as dvc:
        stages = {out.def_path: stage for stage in dvc.index.stages for out in stage.outs}
        dvc_deps = {stage.addressing: {dep.def_path for dep in stage.deps} for stage in dvc.index.stages}
    summary = run([sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
                   str(repo), "--configfile", str(repo / "params.yaml"), "--detailed-summary"], repo)
    assert summary.returncode == 0, summary.stderr[-3000:]
    rows = list(csv.DictReader(io.StringIO(summary.stdout[summary.stdout.index("output_file"):]), delimiter="\t"))
    assert len(rows) > 20
    for row in rows:
        output = row["output_file"]
        assert output in stages, f"no DVC stage makes {output} (Snakemake rule {row['rule']})"
        stage = stages[output]
        assert stage.addressing.split("@")[0] == row["rule"], output
        inputs = {os.path.relpath(p, REPO) if os.path.isabs(p) else p for p in row["input-file(s)"].split(",") if p}
        assert inputs == dvc_deps[stage.addressing], f"{stage.addressing}: inputs differ"
