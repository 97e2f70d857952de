"""The tiny pipeline on a real SLURM cluster through Snakemake's SLURM executor plugin.

tests/slurm/start.sh starts a private single-node cluster (munged, slurmctld, slurmd as root; see
../shared/notes/local-slurm.md), the workflow runs with `--profile workflow/profiles/slurm`, and the
assertions read SLURM's own records (squeue --states=all): every job was a SLURM job, asked for what
its rule declares (CPUs, memory, and for training the GPU of `resources.train_gpus`), and completed.
tests/slurm/stop.sh stops exactly the daemons start.sh started.

To keep the test short the tiny config is run with 2 folds, and the short CPU stages are batched as
Snakemake group jobs (one sbatch for synth..folds, one for aggregate + report); each training fold is
its own SLURM job. Status polling dominates the time: without slurmdbd sacct cannot answer, so the
plugin polls with squeue (the recipe's pitfall: with sacct it waits forever).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml

REPO = Path(__file__).resolve().parent.parent
TINY = REPO / "tests" / "tiny.yaml"
SLURM = REPO / "tests" / "slurm"
LOCK = Path(tempfile.gettempdir()) / "merflow-slurm-test.lock"   # one test cluster per machine at a time
TARGETS = ["results/table2.csv", "results/report.html"]
FOLDS = 2
METHODS = yaml.safe_load(TINY.read_text())["methods"]      # the RCNN and LBP-TOP: a job per fold each
# Snakemake group jobs: rule -> group; each group runs as one SLURM job (its connected parts together).
GROUPS = {"synth": "prep", "index": "prep", "align": "prep", "magnify": "prep", "tensors": "prep",
          "folds": "prep", "aggregate": "summary", "report": "summary", "publish": "summary"}


@contextlib.contextmanager
def machine_lock(timeout_s: float = 900):
    """Wait for other test runs on this machine to finish with their cluster (/etc/slurm is shared)."""
    with open(LOCK, "w") as handle:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() > deadline:
                    pytest.fail(f"another test run held {LOCK} for {timeout_s:.0f} s")
                time.sleep(2)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def daemon_pids(state: Path) -> list[int]:
    pids = state / "started.pids"
    return [int(pid) for pid in pids.read_text().split()] if pids.is_file() else []


@pytest.fixture(scope="module")
def cluster():
    if os.geteuid() != 0:
        pytest.skip("a SLURM cluster needs root to start munged, slurmctld and slurmd")
    with machine_lock():
        state = Path(tempfile.mkdtemp(prefix="merflow-slurm-"))
        state.chmod(0o755)   # the slurm and munge users work below it
        started = subprocess.run(["bash", str(SLURM / "start.sh"), str(state)], capture_output=True, text=True,
                                 timeout=600)
        try:
            if started.returncode == 77:
                pytest.skip(started.stderr.strip().splitlines()[-1])
            assert started.returncode == 0, started.stdout[-2000:] + started.stderr[-4000:] + logs(state)
            pids = daemon_pids(state)
            assert len(pids) == 3
            yield state
        finally:
            stopped = subprocess.run(["bash", str(SLURM / "stop.sh"), str(state)], capture_output=True, text=True,
                                     timeout=120)
            alive = [pid for pid in pids if Path(f"/proc/{pid}").exists()] if started.returncode == 0 else []
            shutil.rmtree(state, ignore_errors=True)
        assert stopped.returncode == 0 and not alive, f"daemons left running: {alive}; {stopped.stderr}"


def logs(state: Path) -> str:
    return "".join(f"\n--- {log}\n{log.read_text()[-2000:]}" for log in sorted((state / "log").glob("*.log")))


def squeue(*args: str) -> str:
    return subprocess.run(["squeue", "--states=all", "--noheader", *args], capture_output=True, text=True,
                          timeout=60, check=True).stdout


@pytest.fixture(scope="module")
def slurm_run(cluster, tmp_path_factory):
    workdir = tmp_path_factory.mktemp("slurm")
    overlay = workdir / "cluster.yaml"
    overlay.write_text(yaml.safe_dump({"protocols": [f"kfold{FOLDS}"], "resources": {"train_gpus": 1}}))
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory", str(workdir),
               "--profile", str(REPO / "workflow" / "profiles" / "slurm"),
               "--configfile", str(TINY), str(overlay),
               "--slurm-status-command", "squeue", "--slurm-init-seconds-before-status-checks", "2",
               "--latency-wait", "5",
               # A group job asks for the threads of the group's jobs that could run side by side (align's
               # 2 + folds' 1); --cores caps that at the node's CPUs, or SLURM never schedules it.
               "--cores", str(os.cpu_count()), "--groups", *[f"{rule}={group}" for rule, group in GROUPS.items()],
               "--", *TARGETS]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    started = time.monotonic()
    result = subprocess.run(command, capture_output=True, text=True, timeout=900, env=env)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-6000:] + logs(cluster)
    return workdir, output, time.monotonic() - started


def test_the_tiny_pipeline_runs_to_the_end_on_slurm(slurm_run):
    workdir, _, seconds = slurm_run
    table = pd.read_csv(workdir / "results" / "table2.csv")
    assert dict(zip(table["method"], table["folds"], strict=True)) == {method: FOLDS for method in METHODS}
    assert (workdir / "results" / "report.html").is_file()
    for fold in range(FOLDS):
        fold_dir = workdir / "results" / "casme2" / f"kfold{FOLDS}" / "rcnn" / "seed0" / f"fold{fold}"
        assert (fold_dir / "model.pt").is_file()
    print(f"tiny pipeline on SLURM: {seconds:.0f} s")


def test_every_job_went_through_slurm_and_asked_for_its_resources(slurm_run):
    _, output, _ = slurm_run
    submitted = set(re.findall(r"submitted with SLURM jobid (\d+)", output))
    # SLURM's own records of those jobs; the plugin's --comment names the rule (and wildcards) of each
    rows = [line.split("|") for line in squeue("-O", "JobID:|,Comment:|,State:|,tres-per-job:|,NumCPUs:|,"
                                                     "MinMemory:|").splitlines()]
    jobs = {row[0].strip(): [cell.strip() for cell in row[1:6]] for row in rows if row[0].strip() in submitted}
    assert set(jobs) == submitted and len(submitted) == 1 + FOLDS * len(METHODS) + 1, (submitted, rows)
    assert all(state == "COMPLETED" for _, state, *_ in jobs.values()), jobs
    train = {comment: rest for comment, *rest in jobs.values() if comment.startswith("rule_train")}
    assert sorted(train) == [f"rule_train_wildcards_casme2_kfold{FOLDS}_rcnn_0_{fold}" for fold in range(FOLDS)]
    for _, gres, cpus, memory in train.values():
        assert gres == "gres:gpu:1" and cpus == "1" and memory == "1000M"   # tiny.yaml's train_mem_mb
    groups = [rest for comment, *rest in jobs.values() if not comment.startswith("rule_train")]
    assert all(gres == "N/A" for _, gres, _, _ in groups)          # no GPU for the CPU stages
