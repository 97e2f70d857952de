"""Spotting long videos: the workflow (`snakemake results/spotting.csv`) on a synthetic CAS(ME)² tree, with the
face registered across each video, the MDMD curves, the intervals and their scores; `merflow spot` on a user's
own recording as a frame folder and as a video file; and a bad recording (an unreadable frame, a stretch
without a face) spotted with each problem named."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline.spotting.spot import runs
from pipeline.spotting.video import interpolated_eyes
from tests.test_workflow import finished_jobs, snakemake

SECONDS = 10


def merflow(*args: str, cwd: Path) -> subprocess.CompletedProcess:
    command = [str(Path(sys.executable).parent / "merflow"), *args]
    return subprocess.run(command, cwd=cwd, capture_output=True, text=True, timeout=300)


@pytest.fixture(scope="module")
def workflow(tmp_path_factory) -> Path:
    """`snakemake results/spotting.csv` on a synthetic CAS(ME)² tree: 2 subjects, one 10 s video each at 30 fps."""
    workdir = tmp_path_factory.mktemp("spotting")
    overlay = workdir / "spotting.yaml"
    overlay.write_text(yaml.safe_dump({
        "synth_long_videos": {"subjects": 2, "videos_per_subject": 1, "seconds": SECONDS},
        "spotting": {"datasets": {"casme_sq": {"layout": "casme_sq", "root": "data/synthetic/casme_sq",
                                               "synthetic": True}}}}))
    result = snakemake(workdir, "results/spotting.csv", configfiles=(overlay,))
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-6000:]
    assert finished_jobs(result.stdout + result.stderr) == {"synth_long": 1, "spot": 2, "spotting": 1}   # mdmd, softnet
    return workdir


@pytest.fixture(scope="module")
def tree(workflow) -> Path:
    return workflow / "data" / "synthetic" / "casme_sq"


@pytest.fixture(scope="module")
def spotted(workflow) -> Path:
    return workflow / "results" / "spotting" / "casme_sq" / "mdmd"


def test_interpolated_eyes_follow_the_key_frames():
    keys = {0: np.array([[10.0, 20.0], [30.0, 20.0]]), 30: np.array([[13.0, 20.0], [33.0, 23.0]])}
    np.testing.assert_allclose(interpolated_eyes(keys, 10), [[11.0, 20.0], [31.0, 21.0]])
    np.testing.assert_allclose(interpolated_eyes(keys, 45), keys[30])       # beyond the last: the last
    np.testing.assert_allclose(interpolated_eyes({5: keys[0]}, 0), keys[0])


def test_runs_of_frames_with_a_face():
    assert runs(np.array([1, 1, 0, 1, 1, 1, 0, 0, 1], dtype=bool)) == [(0, 2), (3, 6), (8, 9)]
    assert runs(np.zeros(4, dtype=bool)) == []


def test_a_synthetic_dataset_is_spotted_and_scored_against_its_sheet(tree, spotted):
    truth = pd.read_csv(tree / "synth_truth.csv")
    expressions = truth[truth["kind"] != "blink"]
    with h5py.File(spotted / "aligned.h5") as h5:
        assert len(h5["videos"]) == 2
        group = h5["videos/0"]
        assert group["frames"].shape == (SECONDS * 30, 128, 128) and group["has_face"][()].all()
        np.testing.assert_array_equal(group["number"][()], np.arange(1, SECONDS * 30 + 1))
    intervals = pd.read_csv(spotted / "intervals.csv")
    assert set(intervals["type"]) <= {"micro", "macro"} and (intervals["onset"] <= intervals["offset"]).all()
    scores = pd.read_csv(spotted / "scores.csv").set_index("type")
    table = pd.read_csv(spotted.parents[2] / "spotting.csv")
    assert table[["dataset", "spotter", "type", "data"]].values.tolist() == [
        ["casme_sq", spotter, kind, "synthetic"]
        for spotter in ("mdmd", "softnet") for kind in ("micro", "macro", "overall")]
    np.testing.assert_allclose(table["f1"][:3], scores["f1"], atol=1e-4)
    softnet = pd.read_csv(spotted.parent / "softnet" / "scores.csv").set_index("type")
    assert softnet.loc["overall", "tp"] + softnet.loc["overall", "fn"] == len(expressions)
    assert list(pd.read_csv(spotted.parent / "softnet" / "curves" / "0.csv").columns) == \
        ["frame", "softnet_micro", "score_micro", "softnet_macro", "score_macro"]
    assert table["published_f1"].isna().all()         # synthetic data: the published numbers stay empty
    page = (spotted.parents[2] / "spotting.html").read_text()
    assert page.count("<img") == 4 and "s15/15_0101disgustingteeth" in page   # 2 videos x 2 spotters
    assert list(scores.index) == ["micro", "macro", "overall"]
    counts = scores.loc["overall"]
    assert counts["tp"] + counts["fn"] == len(expressions)          # every coded expression is a truth once
    assert counts["tp"] + counts["fp"] == len(intervals)
    # The synthetic macro-expressions (0.6-4 s, 4x the micro amplitude) stand out of the camera noise.
    assert scores.loc["macro", "recall"] == 1.0
    curves = pd.read_csv(spotted / "curves" / "0.csv")
    assert list(curves.columns) == ["frame", "mdmd_micro", "score_micro", "mdmd_macro", "score_macro"]
    assert curves["score_micro"].isna().sum() < len(curves) / 2
    assert (spotted / "figures" / "0.png").stat().st_size > 10_000
    assert len(pd.read_csv(spotted / "problems.csv")) == 0


def test_a_bad_recording_is_spotted_around_its_unreadable_frame_and_faceless_stretch(tree, tmp_path):
    video = next((tree / "rawpic" / "s15").iterdir())
    frames = tmp_path / "recording"
    shutil.copytree(video, frames)
    (frames / "img050.jpg").write_bytes(b"not a jpeg")
    blank = np.full((480, 640, 3), 128, dtype=np.uint8)
    for number in range(150, 221):                        # 2.4 s of grey wall: no face at key frames 151-211
        cv2.imwrite(str(frames / f"img{number:03d}.jpg"), blank)
    out = tmp_path / "spot"
    result = merflow("spot", str(frames), "--fps", "30", "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    problems = pd.read_csv(out / "problems.csv")
    unreadable = problems[problems["reason"].str.startswith("unreadable")]
    assert unreadable[["video", "frame"]].values.tolist() == [["recording", 50]]
    assert unreadable["file"].iloc[0].endswith("img050.jpg")
    faceless = problems[problems["reason"].str.contains("no face")]
    assert sorted(faceless["frame"]) == [151, 181, 211]
    assert "recording frame 50" in result.stdout and "img050.jpg" in result.stdout
    curves = pd.read_csv(out / "curves" / "0.csv")
    assert np.isnan(curves.loc[curves["frame"] == 50, "mdmd_micro"]).all()    # no face there: not scored
    assert curves.loc[curves["frame"] < 40, "score_micro"].notna().any()     # the rest is
    assert curves.loc[curves["frame"] > 240, "score_micro"].notna().any()


def test_a_video_file_is_spotted_at_its_own_frame_rate(tree, tmp_path):
    video = next((tree / "rawpic" / "s16").iterdir())
    path = tmp_path / "me.avi"
    writer = cv2.VideoWriter(os.fspath(path), cv2.VideoWriter_fourcc(*"MJPG"), 30.0, (640, 480))
    for number in range(1, 91):
        writer.write(cv2.imread(str(video / f"img{number:03d}.jpg")))
    writer.release()
    out = tmp_path / "spot"
    result = merflow("spot", str(path), "--out", str(out), cwd=tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with h5py.File(out / "aligned.h5") as h5:
        assert h5["videos/0"].attrs["fps"] == 30.0 and h5["videos/0/frames"].shape[0] == 90


def test_a_frame_folder_needs_its_frame_rate_and_an_input_must_exist(tree, tmp_path):
    video = next((tree / "rawpic" / "s15").iterdir())
    result = merflow("spot", str(video), cwd=tmp_path)
    assert result.returncode == 1 and "--fps" in result.stderr and "Traceback" not in result.stderr
    result = merflow("spot", str(tmp_path / "nothing"), cwd=tmp_path)
    assert result.returncode == 1 and "no such video file" in result.stderr and "Traceback" not in result.stderr
    assert not (tmp_path / "results").exists()
