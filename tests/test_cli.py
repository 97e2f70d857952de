"""The `merflow` command: synth writes a dataset, `stage` runs one stage as DVC does, bad input is refused
with one clear message (clip and file, no traceback) and nothing half-written is left behind."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from pipeline.config import load_params

REPO = Path(__file__).resolve().parent.parent
SMALL = {"subjects": 4, "clips_per_subject": 4, "frames_min": 10, "frames_max": 12}


def merflow(cwd: Path, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run([sys.executable, "-m", "pipeline.cli", *args], cwd=cwd, env=env, capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def workdir(tmp_path_factory):
    """A working directory with small params and a synthetic CASME II tree made by `merflow synth`."""
    root = tmp_path_factory.mktemp("cli")
    params = load_params(REPO / "params.yaml")
    params["synth"].update(SMALL)
    (root / "params.yaml").write_text(yaml.safe_dump(params))
    result = merflow(root, "synth", "--layout", "casme2")
    assert result.returncode == 0, result.stderr[-2000:]
    assert "data/synthetic/casme2" in result.stdout
    return root


def test_synth_then_index_stage(workdir):
    result = merflow(workdir, "stage", "index", "--dataset", "casme2")
    assert result.returncode == 0, result.stderr[-2000:]
    index = (workdir / "data" / "casme2" / "index.csv").read_text().splitlines()
    assert len(index) == 1 + 16


def test_a_missing_frame_is_named_and_nothing_is_written(workdir, tmp_path):
    broken = tmp_path / "broken"
    (broken / "data").mkdir(parents=True)
    os.symlink(workdir / "params.yaml", broken / "params.yaml")
    (broken / "data" / "synthetic").symlink_to(workdir / "data" / "synthetic", target_is_directory=True)
    frame = sorted((workdir / "data" / "synthetic" / "casme2" / "CASME2_RAW_selected" / "sub02").rglob("*.jpg"))[3]
    moved = frame.with_suffix(".bak")
    frame.rename(moved)
    try:
        result = merflow(broken, "stage", "index", "--dataset", "casme2")
    finally:
        moved.rename(frame)
    assert result.returncode == 1
    assert f"sub02_{frame.parent.name}" in result.stderr and frame.name in result.stderr
    assert "Traceback" not in result.stderr
    assert not (broken / "data" / "casme2" / "index.csv").exists()


def test_unknown_params_are_refused_before_anything_runs(workdir, tmp_path):
    params = yaml.safe_load((workdir / "params.yaml").read_text())
    params["magnify"]["alpha"] = -1
    (tmp_path / "params.yaml").write_text(yaml.safe_dump(params))
    result = merflow(tmp_path, "stage", "magnify", "--dataset", "casme2")
    assert result.returncode == 1 and "magnify.alpha" in result.stderr and "Traceback" not in result.stderr


def test_inspect_shows_provenance(workdir):
    assert merflow(workdir, "stage", "index", "--dataset", "casme2").returncode == 0
    result = merflow(workdir, "stage", "align", "--dataset", "casme2")
    assert result.returncode == 0, result.stderr[-2000:]
    shown = merflow(workdir, "inspect", "data/casme2/aligned.h5")
    assert shown.returncode == 0
    assert "stage: align" in shown.stdout and "params_sha256" in shown.stdout and "clips: 16" in shown.stdout
