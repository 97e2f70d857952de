"""`merflow predict` and `merflow inspect` on a model trained by the real stages on tiny synthetic data:
a new clip is preprocessed exactly as the training clips were, and bad input, a model trained with other
params, or an older checkpoint is refused with one clear message."""

from __future__ import annotations

import json
import os
from pathlib import Path

import cv2
import h5py
import numpy as np
import pandas as pd
import pytest
import torch
import yaml

from pipeline.cli import build_parser, main
from pipeline.config import load_params
from pipeline.predict import (
    clip_tensors,
    load_checkpoint,
    magnify_kwargs,
    natural_key,
    preprocessing_params,
    read_input,
)
from pipeline.runner import run_stage

REPO = Path(__file__).resolve().parent.parent
TINY_PARAMS = [str(REPO / "params.yaml"), str(REPO / "tests" / "tiny.yaml")]   # what `trained` trains with


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """synth (2 subjects x 3 clips) -> index -> align -> magnify -> tensors -> folds -> one fold trained."""
    root = tmp_path_factory.mktemp("predict")
    params = load_params(*TINY_PARAMS)
    params["synth"].update(subjects=2, clips_per_subject=3, frames_min=10, frames_max=12)
    params["protocols"] = ["kfold2"]
    cwd = os.getcwd()
    os.chdir(root)  # stages write under data/ and results/ of the working directory, as under Snakemake
    try:
        run_stage(params, "synth", ds="casme2")
        for stage in ("index", "align", "magnify", "tensors"):
            run_stage(params, stage, ds="casme2")
        run_stage(params, "folds", ds="casme2", protocol="kfold2")
        run_stage(params, "train", ds="casme2", protocol="kfold2", method="rcnn", fold=0)
    finally:
        os.chdir(cwd)
    index = pd.read_csv(root / "data" / "casme2" / "index.csv")
    return {"root": root, "params": params, "model": root / "results/casme2/kfold2/rcnn/seed0/fold0/model.pt",
            "clip": index.iloc[0], "frame_dir": Path(root, index.iloc[0]["frames"].split(";")[0]).parent}


def cli(capsys, *args: str) -> tuple[int, str, str]:
    code = main(list(args))
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def write_video(path: Path, frames: list[np.ndarray]) -> None:
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"MJPG"), 30, frames[0].shape[1::-1])
    for frame in frames:
        writer.write(frame)
    writer.release()


def test_the_model_records_the_preprocessing_params(trained):
    prep = preprocessing_params(load_checkpoint(trained["model"]), trained["model"])
    params = trained["params"]
    assert prep["align"] == params["align"]
    assert prep["magnify"] == {**params["magnify"], "eye_y": params["align"]["eye_y"]}   # the QC strip's eye row
    assert {k: v for k, v in prep["tensors"].items() if k != "classes"} == params["tensors"]


def test_a_clip_is_preprocessed_exactly_as_the_pipeline_did(trained):
    """The tensors predict builds from the clip's frames are the tensors.h5 row the model was trained on."""
    clip = trained["clip"]
    frame_paths = [str(trained["root"] / p) for p in clip["frames"].split(";")]
    frames = np.stack([cv2.cvtColor(cv2.imread(p), cv2.COLOR_BGR2RGB) for p in frame_paths])
    prep = preprocessing_params(load_checkpoint(trained["model"]), trained["model"])
    variants, face_frame = clip_tensors(frames, frame_paths, prep, clip["clip_id"], float(clip["fps"]))
    with h5py.File(trained["root"] / "data" / "casme2" / "tensors.h5", "r") as h5:
        row = h5["clip_id"].asstr()[()].tolist().index(clip["clip_id"])
        np.testing.assert_array_equal(variants, h5["x"][row])
    assert face_frame == 0


def test_predict_a_frame_folder(trained, capsys):
    code, out, err = cli(capsys, "predict", str(trained["frame_dir"]), "--model", str(trained["model"]), "--json")
    assert code == 0, err
    result = json.loads(out)
    assert result["classes"] == ["positive", "negative", "surprise", "others"]
    assert result["frames"] == len(trained["clip"]["frames"].split(";")) and result["variants"] == 4
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-4)
    assert result["predicted"] == max(result["probabilities"], key=result["probabilities"].get)

    code, out, _ = cli(capsys, "predict", str(trained["frame_dir"]), "--model", str(trained["model"]))
    assert code == 0 and "<- predicted" in out and "face found on frame 0" in out


def test_predict_a_video(trained, capsys, tmp_path):
    frames = [cv2.imread(str(p)) for p in sorted(trained["frame_dir"].glob("*.jpg"), key=lambda p: natural_key(p.name))]
    video = tmp_path / "clip.avi"
    write_video(video, frames)
    code, out, err = cli(capsys, "predict", str(video), "--model", str(trained["model"]), "--json",
                         "--params", *TINY_PARAMS)
    assert code == 0, err
    result = json.loads(out)
    assert result["frames"] == len(frames) and result["input"] == str(video) and result["fps"] == 30
    assert sum(result["probabilities"].values()) == pytest.approx(1, abs=1e-4)


def test_frames_are_read_in_natural_order(tmp_path):
    for n in (10, 2, 1):
        cv2.imwrite(str(tmp_path / f"img{n}.png"), np.full((8, 8, 3), n, np.uint8))
    frames, names, fps = read_input(tmp_path)
    assert [Path(n).name for n in names] == ["img1.png", "img2.png", "img10.png"] and fps is None
    assert frames[:, 0, 0, 0].tolist() == [1, 2, 10]


def test_clear_errors(trained, capsys, tmp_path):
    model = str(trained["model"])
    noise = np.random.default_rng(0).integers(0, 256, (12, 240, 320, 3), dtype=np.uint8)
    write_video(tmp_path / "noface.avi", list(noise))
    (tmp_path / "broken.mp4").write_text("this is not a video")
    (tmp_path / "empty").mkdir()
    cases = {tmp_path / "noface.avi": "no face found", tmp_path / "broken.mp4": "not a readable video",
             tmp_path / "missing.mp4": "no such video file", tmp_path / "empty": "no frames"}
    for path, message in cases.items():
        code, _, err = cli(capsys, "predict", str(path), "--model", model)
        assert code == 1 and message in err and "Traceback" not in err, (path, err)

    (tmp_path / "other.yaml").write_text(yaml.safe_dump({"magnify": {"alpha": 20}}))
    code, _, err = cli(capsys, "predict", str(trained["frame_dir"]), "--model", model,
                       "--params", *TINY_PARAMS, str(tmp_path / "other.yaml"))
    assert code == 1 and "trained with different params" in err and "magnify.alpha: model 10, params 20" in err


def test_a_checkpoint_without_preprocessing_params_is_refused(trained, capsys, tmp_path):
    checkpoint = torch.load(trained["model"], weights_only=True)
    del checkpoint["provenance"]["upstream"]                      # as model.pt of an older merflow
    torch.save(checkpoint, tmp_path / "old.pt")
    code, _, err = cli(capsys, "predict", str(trained["frame_dir"]), "--model", str(tmp_path / "old.pt"))
    assert code == 1 and "does not record the align, magnify, tensors params" in err
    code, out, err = cli(capsys, "predict", str(trained["frame_dir"]), "--model", str(tmp_path / "old.pt"),
                         "--params", *TINY_PARAMS, "--json")
    assert code == 0 and "warning" in err and json.loads(out)["predicted"]

    checkpoint["provenance"]["upstream"] = load_checkpoint(trained["model"])["provenance"]["upstream"]
    checkpoint["config"]["pixels"] = 1000                          # a network for another input size
    torch.save(checkpoint, tmp_path / "odd.pt")
    code, _, err = cli(capsys, "predict", str(trained["frame_dir"]), "--model", str(tmp_path / "odd.pt"))
    assert code == 1 and "the network takes 1000 pixels" in err

    (tmp_path / "text.pt").write_text("not a model")
    code, _, err = cli(capsys, "predict", str(trained["frame_dir"]), "--model", str(tmp_path / "text.pt"))
    assert code == 1 and "not a merflow model.pt" in err


def test_inspect_a_model_and_an_artifacts_lineage(trained, capsys):
    code, out, _ = cli(capsys, "inspect", str(trained["model"]))
    assert code == 0
    assert 'classes: ["positive", "negative", "surprise", "others"]' in out
    assert '"maps": 2' in out and "stage: train" in out and '"magnify"' in out
    code, out, _ = cli(capsys, "inspect", str(trained["root"] / "data" / "casme2" / "tensors.h5"))
    assert code == 0 and "stage: tensors" in out and "/x: (6, 4, 3, 1966, 30) uint8" in out
    assert '"align": {' in out and '"magnify": {' in out


def test_help_lists_every_command():
    text = build_parser().format_help()
    for command in ("synth", "stage", "dvc-yaml", "inspect", "predict"):
        assert command in text


def test_the_band_pass_follows_the_inputs_frame_rate():
    """As the magnify stage: r1 and r2 hold at reference_fps; at half the rate each frame forgets twice as much."""
    params = {"enabled": True, "alpha": 10, "lambda_c": 16, "r1": 0.4, "r2": 0.05, "reference_fps": 200,
              "chrom_attenuation": 0.1, "exaggeration": 2, "eye_y": 0.34, "device": "cuda"}
    at_100 = magnify_kwargs(params, 100)
    assert at_100["r1"] == pytest.approx(1 - 0.6**2) and at_100["r2"] == pytest.approx(1 - 0.95**2)
    assert not {"enabled", "reference_fps", "eye_y", "device"} & set(at_100)     # device: the NumPy path
    assert magnify_kwargs(params, 200)["r1"] == pytest.approx(0.4)
    per_frame = {k: v for k, v in params.items() if k != "reference_fps"}       # params of an older model
    assert magnify_kwargs(per_frame, 100)["r1"] == 0.4
