"""CASME II as its owners ship it: the 256 clips of the 2014-05-08 sheet with their real frame numbering
(tests/casme2_like.py), read with default params, and the README's own-data snippet run as written."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from collections import Counter
from pathlib import Path

import cv2
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.config import load_params
from pipeline.index import check_dataset
from tests.casme2_like import real_clips, write_casme2_like
from tests.test_workflow import TINY, snakemake

REPO = Path(__file__).resolve().parent.parent
MERFLOW = Path(sys.executable).parent / "merflow"
PAPER4 = yaml.safe_load((REPO / "params.yaml").read_text())["mappings"]["paper4"]
# The published counts of CASME2-coding-20140508.xlsx, and under the paper's 4 classes.
EMOTIONS = {"others": 99, "disgust": 64, "happiness": 32, "repression": 27, "surprise": 25, "sadness": 7, "fear": 2}
CLASSES = {"positive": 32, "negative": 73, "surprise": 25, "others": 126}


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("real") / "CASME2"
    root.mkdir()
    frame = root.parent / "frame.jpg"
    cv2.imwrite(str(frame), np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8))
    write_casme2_like(root, lambda subject, clip, n: frame)
    return root


def test_the_index_checks_keep_every_clip_of_the_real_sheet(tree):
    records, problems, left_out = check_dataset(tree, layout="casme2", emotions=PAPER4["emotions"],
                                                classes=PAPER4["classes"])
    assert problems == [] and left_out == []
    assert len(records) == 256 and len({r["subject"] for r in records}) == 26
    assert Counter(r["emotion"] for r in records) == EMOTIONS
    assert Counter(r["label"] for r in records) == CLASSES
    by_id = {r["clip_id"]: r for r in records}
    no_apex = {f"{c['subject']}_{c['folder']}" for c in real_clips() if c["apex"] == "/"}
    assert {i for i, r in by_id.items() if r["apex_source"] == "estimated"} == no_apex and len(no_apex) == 23
    fixed = by_id["sub07_EP06_01"]                           # the sheet's OffsetFrame 68, files to img91.jpg
    assert (fixed["onset"], fixed["offset"], len(fixed["frames"])) == (56, 91, 36)
    assert any("OffsetFrame 68 corrected to 91" in note for note in fixed["notes"])
    for clip in real_clips():
        record = by_id[f"{clip['subject']}_{clip['folder']}"]
        assert record["frames"][0].name == f"img{clip['first_frame']}.jpg"
        assert record["frames"][-1].name == f"img{clip['last_frame']}.jpg"


def test_check_dataset_passes_without_flags_from_any_folder(tree, tmp_path):
    result = subprocess.run([str(MERFLOW), "check-dataset", str(tree), "--layout", "casme2"], cwd=tmp_path,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    assert ("256 good clips from 26 subjects; positive 32, negative 73, surprise 25, others 126"
            in result.stdout)
    assert "23 clip(s) without a coded apex (the align stage estimates it)" in result.stdout
    assert re.search(r"sub07_EP06_01: row \d+: OffsetFrame 68 corrected to 91", result.stdout)
    assert "no problems" in result.stdout and "Traceback" not in result.stderr


def readme_snippet() -> str:
    text = (REPO / "README.md").read_text()
    block = text.split("<!-- own-data-snippet:start -->")[1].split("<!-- own-data-snippet:end -->")[0]
    return block.split("```yaml")[1].split("```")[0]


def test_the_readme_snippet_runs_as_an_overlay_on_the_real_clip_list(tree, tmp_path):
    """my.yaml exactly as the README shows it, with only its root edited; Snakemake indexes every clip and
    the folds put each one in exactly one test fold; dvc.yaml gets the same overlay."""
    snippet = readme_snippet()
    assert "root: /data/CASME2" in snippet
    my_yaml = tmp_path / "my.yaml"
    my_yaml.write_text(snippet.replace("/data/CASME2", str(tree)))
    params = load_params(REPO / "params.yaml", my_yaml)
    assert params["dataset"]["casme2"]["root"] == str(tree)
    command = re.search(r"snakemake --cores 8 --configfile my.yaml -- (\S+)", snippet)
    assert command and command.group(1) == "results/table2.csv"

    workdir = tmp_path / "work"
    workdir.mkdir()
    result = snakemake(workdir, "data/casme2/folds/kfold5.csv", configfiles=(TINY, my_yaml))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert not (workdir / "data" / "synthetic").exists()
    index = pd.read_csv(workdir / "data" / "casme2" / "index.csv", dtype={"apex": "Int64"}, keep_default_na=False)
    assert len(index) == 256 and (index["apex_source"] == "estimated").sum() == 23
    assert pd.read_csv(workdir / "data" / "casme2" / "excluded.csv").empty
    folds = pd.read_csv(workdir / "data" / "casme2" / "folds" / "kfold5.csv")
    assert sorted(folds["clip_id"]) == sorted(index["clip_id"]) and folds["clip_id"].is_unique
    assert sorted(folds["fold"].unique()) == [0, 1, 2, 3, 4]

    (workdir / "params.yaml").write_text((REPO / "params.yaml").read_text())
    (workdir / "my.yaml").write_text(my_yaml.read_text())
    env = {**os.environ, "PATH": f"{MERFLOW.parent}:{os.environ['PATH']}"}
    made = subprocess.run([str(MERFLOW), "dvc-yaml", "--params", "params.yaml", "my.yaml"], cwd=workdir, env=env,
                          capture_output=True, text=True, timeout=120)
    assert made.returncode == 0, made.stderr
    stages = yaml.safe_load((workdir / "dvc.yaml").read_text())["stages"]
    for name, stage in stages.items():
        body = stage.get("do", stage)
        assert body["cmd"].endswith("--params params.yaml my.yaml"), name
        assert {"my.yaml": None} in body["params"], name
    assert stages["index"]["foreach"]["casme2"]["root"] == str(tree) and "synth" not in stages
