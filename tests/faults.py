"""Tools for the reliability tests (tests/test_reliability.py): run the workflow from a snapshot of the
code, kill it with SIGKILL when a condition on its files holds, checksum artifacts, and run a stage under
an address-space limit. Not a test module; plain functions, no mocks."""

from __future__ import annotations

import hashlib
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
SNAPSHOT_PARTS = ("Snakefile", "params.yaml", "environment.yml", "pipeline", "workflow")


def repo_snapshot(dest: Path) -> Path:
    """A copy of the workflow and the `pipeline` package. Runs use it (PYTHONPATH), so that an edit to
    the working tree during a test, which Snakemake would see as changed code, cannot trigger reruns."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in SNAPSHOT_PARTS:
        source = REPO / part
        if source.is_dir():
            shutil.copytree(source, dest / part, ignore=shutil.ignore_patterns("__pycache__"))
        else:
            shutil.copy2(source, dest / part)
    return dest


def snapshot_env(snapshot: Path) -> dict[str, str]:
    """The environment of a run from `snapshot`: its package first on the path, one thread per job."""
    return {**os.environ, "PYTHONPATH": str(snapshot), "OMP_NUM_THREADS": "1",
            "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}


def snakemake_command(snapshot: Path, workdir: Path, configfiles: Iterable[Path], *options: str,
                      targets: Iterable[str] = ("results/table2.csv",)) -> list[str]:
    return [sys.executable, "-m", "snakemake", "--snakefile", str(snapshot / "Snakefile"), "--directory",
            str(workdir), "--cores", "2", "--configfile", *map(str, configfiles), *options, "--", *targets]


def run_logged(command: list[str], env: dict[str, str], log: Path, *,
               kill_when: Callable[[], bool] | None = None, timeout_s: float = 600,
               poll_s: float = 0.01) -> tuple[int, bool]:
    """Run `command` in its own process group, output to `log`; (exit status, killed).

    With `kill_when`, the whole group (Snakemake and the jobs it started, as when a node dies or a
    scheduler kills the allocation) gets SIGKILL as soon as `kill_when()` is true."""
    with open(log, "w") as out:
        process = subprocess.Popen(command, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        deadline = time.monotonic() + timeout_s
        killed = False
        while process.poll() is None:
            if kill_when is not None and kill_when():
                os.killpg(process.pid, signal.SIGKILL)
                killed = True
                break
            if time.monotonic() > deadline:
                os.killpg(process.pid, signal.SIGKILL)
                raise TimeoutError(f"{command[:4]}... ran past {timeout_s} s (log: {log})")
            time.sleep(poll_s)
        process.wait()
    if killed:
        wait_for_group_to_die(process.pid)
    return process.returncode, killed


def wait_for_group_to_die(pgid: int, timeout_s: float = 10) -> None:
    """SIGKILL is asynchronous: wait until no live process of the group is left (zombies are dead)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        alive = [pid for pid in _group_members(pgid) if _state(pid) not in ("Z", "X", None)]
        if not alive:
            return
        time.sleep(0.05)
    raise TimeoutError(f"processes of group {pgid} still alive after SIGKILL")


def _group_members(pgid: int) -> list[int]:
    members = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                if os.getpgid(int(entry)) == pgid:
                    members.append(int(entry))
            except ProcessLookupError:
                pass
    return members


def _state(pid: int) -> str | None:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (FileNotFoundError, ProcessLookupError, IndexError):
        return None


def finished_jobs(output: str) -> dict[str, int]:
    """Jobs Snakemake reports as finished ('Finished jobid: N (Rule: NAME)'), counted per rule."""
    counts: dict[str, int] = {}
    for rule in re.findall(r"Finished jobid: \d+ \(Rule: (\w+)\)", output):
        counts[rule] = counts.get(rule, 0) + 1
    return counts


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        while block := handle.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


def checksums(root: Path, patterns: Iterable[str]) -> dict[str, str]:
    """{path relative to root: sha256} of the files matching the glob patterns (temp files excluded)."""
    files = sorted({path for pattern in patterns for path in root.glob(pattern) if path.is_file()})
    return {path.relative_to(root).as_posix(): sha256(path) for path in files
            if not any(part.startswith(".") for part in path.relative_to(root).parts)}


def tree_state(*roots: Path) -> dict[str, str]:
    """Every file under the roots (temporary ones too) with its checksum: what 'nothing changed' compares."""
    return {os.fspath(path): sha256(path) for root in roots if root.exists()
            for path in sorted(root.rglob("*")) if path.is_file()}


def run_limited(script: str, limit_bytes: int, cwd: Path, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Run a Python `script` whose address space is capped at `limit_bytes` (RLIMIT_AS, set before
    any import, so the interpreter, numpy, h5py and torch count against it). The script's last
    stdout line should report /proc/self/status VmPeak."""
    prelude = ("import resource\n"
               f"resource.setrlimit(resource.RLIMIT_AS, ({limit_bytes}, {limit_bytes}))\n")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "OPENBLAS_NUM_THREADS": "1", "MKL_NUM_THREADS": "1",
           "MALLOC_ARENA_MAX": "2", "PYTHONPATH": str(REPO)}
    return subprocess.run([sys.executable, "-c", prelude + script], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=timeout_s)


VM_PEAK = ("print('VmPeak_MiB', int(open('/proc/self/status').read().split('VmPeak:')[1].split()[0]) // 1024)")


def vm_peak_mib(output: str) -> int:
    return int(re.findall(r"VmPeak_MiB (\d+)", output)[-1])
