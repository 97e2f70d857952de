"""Provenance you can audit: `merflow audit` on a finished tiny run, and Snakemake rerunning a stage when
the pipeline/ module it calls changes (and nothing upstream of it).

One tiny Snakemake run in a copy of the workflow (Snakefile, workflow/, pipeline/, params), so that a
test may edit a module of the copy without touching the repository others work in.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.test_workflow import job_counts

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "tiny.yaml"
# One training fold is enough to audit a model.pt; the other folds would only add minutes.
TARGETS = ["data/casme2/tensors.h5", "results/casme2/kfold5/rcnn/seed0/fold0/model.pt"]


def run(command: list[str], cwd: Path, timeout: int = 600) -> subprocess.CompletedProcess:
    # PYTHONPATH first: the copy's pipeline/, not the editable install's, is what the rules import and list.
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}", "PYTHONPATH": str(cwd)}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)


def snakemake(copy: Path, *args: str) -> subprocess.CompletedProcess:
    return run([sys.executable, "-m", "snakemake", "--cores", "2", "--configfile", "tests/tiny.yaml", *args,
                "--", *TARGETS], copy)


def audit(copy: Path, *params: Path) -> tuple[int, list[dict]]:
    result = run([sys.executable, "-m", "pipeline.cli", "audit", "--json", "--params", "params.yaml",
                  "tests/tiny.yaml", *map(str, params)], copy)
    assert result.returncode in (0, 1), result.stderr[-3000:]
    return result.returncode, json.loads(result.stdout)


def by_stage(entries: list[dict]) -> dict[str, dict]:
    return {entry["stage"]: entry for entry in entries}


@pytest.fixture(scope="module")
def tiny_copy(tmp_path_factory):
    copy = tmp_path_factory.mktemp("audit")
    for name in ("Snakefile", "params.yaml", "environment.yml"):
        if (REPO / name).exists():
            shutil.copy2(REPO / name, copy / name)
    for name in ("workflow", "pipeline"):
        shutil.copytree(REPO / name, copy / name, ignore=shutil.ignore_patterns("__pycache__"))
    (copy / "tests").mkdir()
    shutil.copy2(TINY, copy / "tests" / "tiny.yaml")
    result = snakemake(copy)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    return copy


def test_audit_of_a_finished_run_is_up_to_date(tiny_copy):
    status, entries = audit(tiny_copy)
    stages = by_stage(entries)
    for stage in ("align casme2", "magnify casme2", "tensors casme2", "train casme2 kfold5 rcnn seed0 fold0"):
        assert stages[stage]["status"] == "up to date", stages[stage]
    tensors = stages["tensors casme2"]
    assert tensors["artifact"] == "data/casme2/tensors.h5"
    assert tensors["params"]["keep_ratios"] == [1.0, 0.6] and tensors["params"]["kernels"] == ["nearest", "bicubic"]
    assert [(i["name"], i["path"], i["status"]) for i in tensors["inputs"]] == \
        [("magnified", "data/casme2/magnified.h5", "unchanged")]
    model = stages["train casme2 kfold5 rcnn seed0 fold0"]
    assert model["params"]["fold"] == 0 and model["params"]["maps"] == 2
    assert {i["name"] for i in model["inputs"]} == {"tensors", "folds"}
    # CSVs and folders record their provenance beside them (<artifact>.provenance.json): nothing is unrecorded
    index = stages["index casme2"]
    assert index["status"] == "up to date" and index["params"]["layout"] == "casme2"
    assert [(i["name"], i["path"], i["status"]) for i in index["inputs"]] == \
        [("tree", "data/synthetic/casme2", "unchanged")]           # a folder, by its listing
    assert (tiny_copy / "data" / "casme2" / "index.csv.provenance.json").is_file()
    assert not [e for e in entries if e["status"] == "not recorded"]
    # folds 1-4, Table 2 and the report were not made (not targeted): missing, so the exit status is 1
    assert stages["train casme2 kfold5 rcnn seed0 fold1"]["status"] == "missing" and status == 1

    text = run([sys.executable, "-m", "pipeline.cli", "audit", "--params", "params.yaml", "tests/tiny.yaml"],
               tiny_copy).stdout
    line = next(line for line in text.splitlines() if line.startswith("magnify casme2"))
    assert "data/casme2/magnified.h5" in line and "[up to date]" in line
    assert re.search(r"input aligned: data/casme2/aligned.h5 sha256 [0-9a-f]{12} unchanged", text)


def test_a_changed_param_makes_its_stage_and_everything_downstream_stale(tiny_copy, tmp_path):
    changed = tmp_path / "alpha.yaml"
    changed.write_text(yaml.safe_dump({"magnify": {"alpha": 20}}))
    _, entries = audit(tiny_copy, changed)
    stages = by_stage(entries)
    assert stages["align casme2"]["status"] == "up to date"
    assert stages["magnify casme2"]["status"] == "stale"
    assert any("alpha: 10 -> 20" in reason for reason in stages["magnify casme2"]["reasons"])
    for stage in ("tensors casme2", "train casme2 kfold5 rcnn seed0 fold0"):   # made from a stale input
        assert stages[stage]["status"] == "stale", stages[stage]


def test_a_changed_input_file_is_found_by_its_checksum(tiny_copy):
    folds_csv = tiny_copy / "data" / "casme2" / "folds" / "kfold5.csv"
    original, stat = folds_csv.read_bytes(), folds_csv.stat()
    folds_csv.write_bytes(original + b"\n")
    try:
        _, entries = audit(tiny_copy)
    finally:
        folds_csv.write_bytes(original)
        os.utime(folds_csv, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    stages = by_stage(entries)
    model = stages["train casme2 kfold5 rcnn seed0 fold0"]
    assert model["status"] == "stale"
    # the folds file records its own checksum: it is stale itself, and so is every fold made from it
    folds = stages["folds casme2 kfold5"]
    assert folds["status"] == "stale" and any("changed since its record" in r for r in folds["reasons"])
    assert {i["name"]: i["status"] for i in model["inputs"]} == {"tensors": "unchanged", "folds": "stale"}
    assert stages["tensors casme2"]["status"] == "up to date"


def test_editing_a_module_reruns_the_stages_that_run_it_and_nothing_upstream(tiny_copy):
    assert "Nothing to be done" in (result := snakemake(tiny_copy, "--dry-run")).stdout + result.stderr
    evm = tiny_copy / "pipeline" / "evm.py"
    original, stat = evm.read_bytes(), evm.stat()
    evm.write_bytes(original + b"\n# an edit\n")
    try:
        result = snakemake(tiny_copy, "--dry-run")
    finally:
        evm.write_bytes(original)
        os.utime(evm, ns=(stat.st_atime_ns, stat.st_mtime_ns))
    assert result.returncode == 0, result.stderr[-3000:]
    planned = job_counts(result.stdout + result.stderr)
    assert set(planned) == {"magnify", "tensors", "train"}, planned   # not synth, index, align or folds
    assert "Nothing to be done" in (result := snakemake(tiny_copy, "--dry-run")).stdout + result.stderr
