"""Reliability, measured (issue #10): a pipeline killed mid-stage resumes and gives the same answer, bad
input is refused clearly without touching what was computed before, two runs are byte-identical, and
the tensors stage and training stream from HDF5 in bounded memory.

Each group ends with a test that prints its counts (faults survived, bad inputs refused, artifacts
compared, memory limits), so `pytest tests/test_reliability.py -s` (or -rA) shows them.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import cv2
import h5py
import numpy as np
import openpyxl
import pandas as pd
import pytest
import torch
import yaml

from pipeline import cli
from pipeline.checkpoints import CHECKPOINT_NAME, resume_key, save_epoch_checkpoint
from pipeline.config import deep_update
from pipeline.datasets.synth_writers import CASME2_SHEET, generate_casme2
from pipeline.model import RCNN, RCNNConfig
from pipeline.train import train_fold_stage
from tests.faults import (
    REPO,
    VM_PEAK,
    checksums,
    finished_jobs,
    repo_snapshot,
    run_limited,
    run_logged,
    snakemake_command,
    snapshot_env,
    tree_state,
    vm_peak_mib,
)

TALLY: dict[str, list[str]] = {"faults survived": [], "bad inputs refused": [], "sheet quirks kept": [],
                               "artifacts compared": [], "memory limits held": []}


def tally(group: str, item: str) -> None:
    TALLY[group].append(item)


# =====================================================================================================
# 1. Resume of one training fold (pipeline/train.py's epoch checkpoint), killed for real with SIGKILL
# =====================================================================================================

CLASSES = ["calm", "twitch"]
TRAIN = dict(method="rcnn", maps=2, recurrent_steps=1, batch_size=8, lr=0.05, lr_decay=0.8, min_lr=0.02,
             max_epochs=10, momentum=0.9, weight_decay=5e-4, seed=0, device="cpu", threads=1)  # 5 epochs


def write_store(folder: Path, n_clips: int, variants: int = 4, pixels: int = 300, frames: int = 16,
                seed: int = 1) -> tuple[Path, Path]:
    """A tensors.h5 (as the tensors stage writes it) whose class "twitch" has a bright band, and its
    3-fold folds.csv."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n_clips) % 2
    clip_ids = [f"clip{i:04d}" for i in range(n_clips)]
    subjects = [f"s{i % 5}" for i in range(n_clips)]
    folder.mkdir(parents=True, exist_ok=True)
    tensors, folds = folder / "tensors.h5", folder / "folds.csv"
    with h5py.File(tensors, "w") as h5:
        x = h5.create_dataset("x", (n_clips, variants, 3, pixels, frames), np.uint8,
                              chunks=(1, variants, 3, pixels, frames))
        for i in range(n_clips):          # clip by clip, so the writer's memory stays small too
            clip = rng.integers(60, 140, (variants, 3, pixels, frames), dtype=np.uint8)
            if labels[i]:
                clip[:, :, pixels // 4:pixels // 2, frames // 3:frames // 2] += 80
            x[i] = clip
        h5["clip_id"], h5["subject"] = clip_ids, subjects
        h5["label"] = [CLASSES[i] for i in labels]
        h5["label_index"] = labels.astype(np.int64)
        h5.attrs["classes"] = json.dumps(CLASSES)
    pd.DataFrame({"clip_id": clip_ids, "subject": subjects, "label": [CLASSES[i] for i in labels],
                  "fold": np.arange(n_clips) % 3}).to_csv(folds, index=False)
    return tensors, folds


@pytest.fixture(scope="module")
def fold_inputs(tmp_path_factory):
    folder = tmp_path_factory.mktemp("fold")
    tensors, folds = write_store(folder, 24)
    uninterrupted = folder / "uninterrupted"
    train_fold_stage(tensors, folds, 0, uninterrupted, **TRAIN)
    return tensors, folds, uninterrupted


def same_fold_outputs(a: Path, b: Path) -> None:
    """predictions.csv and model.pt byte-identical (train_log and metrics hold timings)."""
    for name in ("predictions.csv", "model.pt"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    losses = [pd.read_csv(d / "train_log.csv")[["epoch", "lr", "loss", "train_accuracy"]] for d in (a, b)]
    pd.testing.assert_frame_equal(*losses)


def test_a_fold_killed_after_an_epoch_resumes_there_and_ends_identical(fold_inputs, tmp_path):
    tensors, folds, uninterrupted = fold_inputs
    out_dir = tmp_path / "fold0"
    script = (f"from pipeline.train import train_fold_stage\n"
              f"train_fold_stage({str(tensors)!r}, {str(folds)!r}, 0, {str(out_dir)!r}, **{TRAIN!r})\n")
    checkpoint = out_dir / CHECKPOINT_NAME
    status, killed = run_logged([sys.executable, "-c", script], snapshot_env(REPO), tmp_path / "train.log",
                                kill_when=checkpoint.exists, poll_s=0.005)
    assert killed and status == -9, (tmp_path / "train.log").read_text()[-2000:]
    state = torch.load(checkpoint, weights_only=True)            # the file a kill leaves is whole
    assert 1 <= state["epoch"] < 5 and not (out_dir / "model.pt").exists()
    train_fold_stage(tensors, folds, 0, out_dir, **TRAIN)
    scores = json.loads((out_dir / "metrics.json").read_text())
    assert scores["resumed_after_epoch"] == state["epoch"] and scores["epochs"] == 5
    same_fold_outputs(out_dir, uninterrupted)
    assert not checkpoint.exists()                                 # removed once the fold is done
    tally("faults survived", f"SIGKILL of a training fold after epoch {state['epoch']} of 5")


def test_a_fold_recording_every_epoch_resumes_with_its_recorded_epochs(fold_inputs, tmp_path):
    """With `test` among the selections the test clips' probabilities of each epoch live in the checkpoint's
    log: killed after an epoch and resumed, the fold's epochs.h5 holds every epoch, as uninterrupted."""
    tensors, folds, _ = fold_inputs
    params = {**TRAIN, "selections": ["last", "test"]}
    train_fold_stage(tensors, folds, 0, tmp_path / "whole", **params)
    out_dir = tmp_path / "fold0"
    script = (f"from pipeline.train import train_fold_stage\n"
              f"train_fold_stage({str(tensors)!r}, {str(folds)!r}, 0, {str(out_dir)!r}, **{params!r})\n")
    status, killed = run_logged([sys.executable, "-c", script], snapshot_env(REPO), tmp_path / "train.log",
                                kill_when=(out_dir / CHECKPOINT_NAME).exists, poll_s=0.005)
    assert killed and status == -9, (tmp_path / "train.log").read_text()[-2000:]
    train_fold_stage(tensors, folds, 0, out_dir, **params)
    assert json.loads((out_dir / "metrics.json").read_text())["resumed_after_epoch"] >= 1
    with h5py.File(out_dir / "epochs.h5") as resumed, h5py.File(tmp_path / "whole" / "epochs.h5") as whole:
        assert resumed["test_probabilities"].shape[0] == 5
        assert np.array_equal(resumed["test_probabilities"][()], whole["test_probabilities"][()])


def test_an_unreadable_checkpoint_is_never_loaded_training_starts_over(fold_inputs, tmp_path, capfd):
    tensors, folds, uninterrupted = fold_inputs
    out_dir = tmp_path / "fold0"
    out_dir.mkdir()
    good = torch.load(uninterrupted / "model.pt", weights_only=True)
    with open(out_dir / CHECKPOINT_NAME, "wb") as handle:          # a checkpoint cut short (disk full, ...)
        torch.save({"key": "x", "model": good["state_dict"]}, handle)
    data = (out_dir / CHECKPOINT_NAME).read_bytes()
    (out_dir / CHECKPOINT_NAME).write_bytes(data[:len(data) // 2])
    train_fold_stage(tensors, folds, 0, out_dir, **TRAIN)
    assert "cannot be read" in capfd.readouterr().err
    assert json.loads((out_dir / "metrics.json").read_text())["resumed_after_epoch"] == 0
    same_fold_outputs(out_dir, uninterrupted)
    tally("faults survived", "truncated checkpoint.pt (ignored, trained from scratch)")


def test_a_checkpoint_of_other_params_is_not_resumed(fold_inputs, tmp_path, capfd):
    tensors, folds, uninterrupted = fold_inputs
    out_dir = tmp_path / "fold0"
    # What a run with another learning rate leaves when killed after an epoch: its key differs.
    model = RCNN(RCNNConfig(maps=2, recurrent_steps=1, n_classes=2, pixels=300, frames=16))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.04)
    save_epoch_checkpoint(out_dir / CHECKPOINT_NAME, resume_key({**TRAIN, "lr": 0.04}, tensors, folds), 1, model,
                          optimizer, np.random.default_rng(0), [], 1.0, 64)
    train_fold_stage(tensors, folds, 0, out_dir, **TRAIN)
    assert "other params" in capfd.readouterr().err
    assert json.loads((out_dir / "metrics.json").read_text())["resumed_after_epoch"] == 0
    same_fold_outputs(out_dir, uninterrupted)
    tally("faults survived", "stale checkpoint.pt of other params (ignored, trained from scratch)")


# =====================================================================================================
# 2. Snakemake killed (SIGKILL to it and its jobs) mid-magnify and mid-training, then rerun
# =====================================================================================================

TINY = yaml.safe_load((REPO / "tests" / "tiny.yaml").read_text())
# 12 clips, 3 folds, 3 epochs: there is a "middle" to kill in, and folds 0 and 1 train together on
# 2 cores, so fold 2 is still training after they have finished.
SLOW = deep_update(yaml.safe_load(yaml.safe_dump(TINY)), {
    "synth": {"subjects": 3, "clips_per_subject": 4}, "protocols": ["kfold3"],
    "train": {"max_epochs": 3, "device": "cpu"}})
FOLDS = 3
ARTIFACTS = ["data/casme2/index.csv", "data/casme2/excluded.csv", "data/casme2/folds/kfold3.csv",
             "data/casme2/aligned.h5", "data/casme2/magnified.h5", "data/casme2/tensors.h5",
             "data/casme2/align_qc/*.png", "data/casme2/magnify_qc/*.png",
             "results/casme2/kfold3/rcnn/seed0/fold*/predictions.csv",
             "results/casme2/kfold3/rcnn/seed0/fold*/model.pt",
             "results/table2.csv"]


@pytest.fixture(scope="module")
def workflow(tmp_path_factory):
    """A snapshot of the code and the slow tiny config, shared by both runs."""
    root = tmp_path_factory.mktemp("workflow")
    snapshot = repo_snapshot(root / "repo")
    config = root / "slow.yaml"
    config.write_text(yaml.safe_dump(SLOW))
    return snapshot, config, root


def fold_dirs(workdir: Path) -> list[Path]:
    return [workdir / "results" / "casme2" / "kfold3" / "rcnn" / "seed0" / f"fold{k}" for k in range(FOLDS)]


@pytest.fixture(scope="module")
def uninterrupted_run(workflow):
    snapshot, config, root = workflow
    workdir = root / "uninterrupted"
    status, _ = run_logged(snakemake_command(snapshot, workdir, [config]), snapshot_env(snapshot),
                           root / "uninterrupted.log")
    assert status == 0, (root / "uninterrupted.log").read_text()[-4000:]
    return workdir


@pytest.fixture(scope="module")
def killed_run(workflow):
    """The same workflow killed twice; what happened at each step is recorded for the tests below."""
    snapshot, config, root = workflow
    workdir, env = root / "killed", snapshot_env(snapshot)
    data = workdir / "data" / "casme2"
    record: dict = {"workdir": workdir}

    def run(name: str, *options: str, kill_when=None) -> tuple[int, str]:
        log = root / f"{name}.log"
        status, killed = run_logged(snakemake_command(snapshot, workdir, [config], *options), env, log,
                                    kill_when=kill_when)
        record[f"{name}_killed"] = killed
        return status, log.read_text()

    # Kill 1: as soon as magnify has written its first clip (a QC strip in its temporary folder).
    status, _ = run("run1", kill_when=lambda: any(data.glob(".magnify_qc.*.tmp/*.png")))
    record["after_kill1"] = {"magnified": (data / "magnified.h5").exists(),
                             "magnified_tmp": [p.stat().st_size for p in data.glob(".magnified.h5.*.tmp")],
                             "h5": sorted(p.name for p in data.glob("*.h5")),
                             "readable": [readable_h5(p) for p in data.glob("*.h5")]}
    record["locked"] = run("locked")
    assert run("unlock1", "--unlock")[0] == 0

    # Kill 2: once at least one fold has finished (Snakemake said so) and another is between epochs
    # with an epoch still to train. (A fold past its last epoch may be writing model.pt by the time
    # the kill lands, and would then no longer be midway.)
    log2 = root / "run2.log"

    def training_midway() -> bool:
        finished = finished_jobs(log2.read_text()).get("train", 0) if log2.exists() else 0
        done = [d for d in fold_dirs(workdir) if (d / "metrics.json").exists()]
        if not finished or finished != len(done):
            return False
        return any(epoch < SLOW["train"]["max_epochs"] for epoch in midway_folds(workdir).values())

    status, text = run("run2", kill_when=training_midway)
    record["run2"] = finished_jobs(text)
    record["done_at_kill2"] = [d.name for d in fold_dirs(workdir) if (d / "metrics.json").exists()]
    record["midway_at_kill2"] = midway_folds(workdir)
    assert run("unlock2", "--unlock")[0] == 0
    status, text = run("run3", "--rerun-incomplete")
    assert status == 0, text[-4000:]
    record["run3"] = finished_jobs(text)
    logs = workdir / "logs" / "train"
    record["resumed_logs"] = {d.name: (logs / f"casme2_kfold3_rcnn_seed0_{d.name}.log").read_text()
                              for d in fold_dirs(workdir)}
    return record


def midway_folds(workdir: Path) -> dict[str, int]:
    """fold -> the epoch of its checkpoint, for the folds that have one and no model.pt yet."""
    midway = {}
    for fold_dir in fold_dirs(workdir):
        if (fold_dir / "model.pt").exists():
            continue
        try:            # written atomically, but a fold removes it once its outputs are written
            midway[fold_dir.name] = torch.load(fold_dir / CHECKPOINT_NAME, weights_only=True)["epoch"]
        except FileNotFoundError:
            pass
    return midway


def readable_h5(path: Path) -> bool:
    try:
        with h5py.File(path, "r") as h5:
            for clip in h5.get("clips", {}).values():
                clip["frames"][-1]
        return True
    except OSError:
        return False


def test_a_kill_during_magnify_leaves_no_partial_artifact(killed_run):
    after = killed_run["after_kill1"]
    assert killed_run["run1_killed"]
    assert not after["magnified"] and after["magnified_tmp"], "the kill did not land inside magnify"
    assert after["h5"] == ["aligned.h5"] and all(after["readable"])
    status, text = killed_run["locked"]           # SIGKILL leaves Snakemake's lock: it asks for --unlock
    assert status != 0 and "--unlock" in text
    # The rerun needed no --rerun-incomplete (no output of magnify existed) and redid only what was
    # missing: synth, index, align were not recomputed.
    assert killed_run["run2"].get("magnify") == 1
    assert not {"synth", "index", "align", "folds"} & set(killed_run["run2"])
    tally("faults survived", "SIGKILL of snakemake + jobs mid-magnify (partial file stayed a temp file)")


def test_a_kill_during_training_reruns_only_the_unfinished_folds_and_resumes_them(killed_run):
    assert killed_run["run2_killed"]
    done, midway = killed_run["done_at_kill2"], killed_run["midway_at_kill2"]
    assert 1 <= len(done) < FOLDS and midway, (done, midway)
    assert killed_run["run2"]["train"] == len(done)
    assert killed_run["run3"] == {"train": FOLDS - len(done), "aggregate": 1, "report": 1, "publish": 1}
    for fold, epoch in midway.items():
        assert 1 <= epoch <= 3   # after the last epoch too: killed while it evaluated
        assert f"epoch {epoch} done" in killed_run["resumed_logs"][fold]
    workdir = killed_run["workdir"]
    assert not list(workdir.glob("results/**/" + CHECKPOINT_NAME))
    tally("faults survived", f"SIGKILL of snakemake + jobs mid-training ({len(done)} fold(s) done, "
                             f"{', '.join(f'{k} after epoch {e}' for k, e in midway.items())})")


def test_killed_and_resumed_run_is_byte_identical_to_an_uninterrupted_one(uninterrupted_run, killed_run):
    """Reproducibility and resume at once: every artifact of the run killed twice has the same
    checksum as the uninterrupted run's (index, folds, aligned, magnified, tensors, QC images,
    every fold's predictions and model, Table 2)."""
    ours, theirs = checksums(killed_run["workdir"], ARTIFACTS), checksums(uninterrupted_run, ARTIFACTS)
    assert len(theirs) == 7 + 2 * 12 + 2 * FOLDS and set(ours) == set(theirs)   # 12 clips, 3 folds
    different = [name for name in theirs if ours[name] != theirs[name]]
    assert not different
    for name in theirs:
        tally("artifacts compared", name)


# =====================================================================================================
# 3. Bad input: each refused with a message naming what and where, exit status 1, nothing deleted
# =====================================================================================================

SMALL = {"seed": 3, "subjects": 2, "clips_per_subject": 2, "frames_min": 6, "frames_max": 7}
SENTINELS = ["data/casme2/index.csv", "data/casme2/excluded.csv", "data/casme2/aligned.h5",
             "data/casme2/align_qc/old.png", "data/casme2/magnified.h5", "data/casme2/tensors.h5",
             "data/casme2/folds/kfold5.csv", "results/table2.csv"]


@pytest.fixture(scope="module")
def pristine_dataset(tmp_path_factory) -> Path:
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    root = tmp_path_factory.mktemp("dataset") / "casme2"
    generate_casme2(root, **{**params["synth"], **SMALL})
    return root


def sheet(root: Path) -> tuple[openpyxl.Workbook, list[str], list[list]]:
    workbook = openpyxl.load_workbook(root / CASME2_SHEET)
    header, *rows = [list(r) for r in workbook.active.iter_rows(values_only=True)]
    return workbook, header, rows


def set_cell(root: Path, column: str, value, row: int = 0) -> str:
    """Set one cell of clip row `row` (0 = first clip); its clip id."""
    workbook, header, rows = sheet(root)
    workbook.active.cell(row=row + 2, column=header.index(column) + 1, value=value)
    workbook.save(root / CASME2_SHEET)
    return clip_id(header, rows[row])


def clip_id(header: list[str], row: list) -> str:
    return f"sub{int(row[header.index('Subject')]):02d}_{row[header.index('Filename')]}"


def first_clip(root: Path) -> tuple[str, list[Path]]:
    """The first clip's id and frame files (onset..offset), in order."""
    _, header, rows = sheet(root)
    row = rows[0]
    subject, episode = f"sub{int(row[header.index('Subject')]):02d}", row[header.index("Filename")]
    onset, offset = int(row[header.index("OnsetFrame")]), int(row[header.index("OffsetFrame")])
    folder = root / "CASME2_RAW_selected" / subject / episode
    return f"{subject}_{episode}", [folder / f"img{n}.jpg" for n in range(onset, offset + 1)]


def missing_frame(root):
    clip, frames = first_clip(root)
    frames[2].unlink()
    return clip, frames[2], "missing"


def zero_byte_jpg(root):
    clip, frames = first_clip(root)
    frames[1].write_bytes(b"")
    return clip, frames[1], "empty"


def truncated_jpg(root):
    clip, frames = first_clip(root)
    data = frames[3].read_bytes()
    frames[3].write_bytes(data[:len(data) // 2])
    return clip, frames[3], "truncated"


def wrong_size_frame(root):
    clip, frames = first_clip(root)
    image = cv2.imread(str(frames[2]))
    cv2.imwrite(str(frames[2]), cv2.resize(image, (320, 240)))
    return clip, frames[2], "320x240"


def no_face(root):
    clip, frames = first_clip(root)
    shape = cv2.imread(str(frames[0])).shape
    wall = np.random.default_rng(0).integers(90, 110, shape, dtype=np.uint8)   # a blank wall, camera noise
    for frame in frames:
        cv2.imwrite(str(frame), wall)
    return clip, frames[0], "no face"


def apex_slash(root):
    return set_cell(root, "ApexFrame", "/"), "no apex coded"


def apex_outside(root):
    _, header, rows = sheet(root)
    offset = int(rows[0][header.index("OffsetFrame")])
    return set_cell(root, "ApexFrame", offset + 5), f"ApexFrame {offset + 5}"


def label_outside_mapping(root):
    return set_cell(root, "Estimated Emotion", "boredom"), root / CASME2_SHEET, "'boredom' is not in the label mapping"


def duplicate_clip_id(root):
    workbook, header, rows = sheet(root)
    workbook.active.append(rows[0])
    workbook.save(root / CASME2_SHEET)
    return clip_id(header, rows[0]), root / CASME2_SHEET, "duplicate clip id"


def unreadable_sheet(root):
    (root / CASME2_SHEET).write_bytes(b"PK\x03\x04 this is not a workbook")
    return "", root / CASME2_SHEET, "cannot be read"


def renamed_columns(root):
    workbook, header, _ = sheet(root)
    workbook.active.cell(row=1, column=header.index("ApexFrame") + 1, value="Apex")
    workbook.save(root / CASME2_SHEET)
    return "", root / CASME2_SHEET, "ApexFrame"


BROKEN_DATASETS = {f.__name__: f for f in (missing_frame, zero_byte_jpg, truncated_jpg, wrong_size_frame, no_face,
                                           label_outside_mapping, duplicate_clip_id, unreadable_sheet,
                                           renamed_columns)}
SHEET_QUIRKS = {f.__name__: f for f in (apex_slash, apex_outside)}   # in real sheets: kept, apex estimated


def workdir_for(tmp_path: Path, dataset: Path, dataset_dir: str = "raw") -> Path:
    """A working directory whose params point at a copy of `dataset`, holding earlier artifacts."""
    workdir = tmp_path / "work"
    root = Path(shutil.copytree(dataset, workdir / dataset_dir / "casme2"))
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    params["dataset"]["casme2"] = {"layout": "casme2", "root": str(root), "fps": 200, "mapping": "paper4"}
    (workdir / "params.yaml").write_text(yaml.safe_dump(params, allow_unicode=True))
    for sentinel in SENTINELS:
        (workdir / sentinel).parent.mkdir(parents=True, exist_ok=True)
        (workdir / sentinel).write_bytes(f"computed earlier: {sentinel}\n".encode())
    return workdir


def merflow(workdir: Path, monkeypatch, capsys, *args: str) -> tuple[int, str]:
    """`merflow ARGS` through its entry point, in `workdir`: (exit status, stderr)."""
    monkeypatch.chdir(workdir)
    capsys.readouterr()
    status = cli.main(list(args))
    return status, capsys.readouterr().err


def assert_refused(status: int, err: str, *named: str) -> None:
    assert status == 1, err[-2000:]
    message = err[err.index("merflow: error:"):]
    for text in named:
        assert text in message, f"{text!r} not in:\n{message}"
    assert "Traceback" not in err


@pytest.mark.parametrize("case", BROKEN_DATASETS)
def test_a_broken_dataset_is_refused_naming_clip_and_file(case, pristine_dataset, tmp_path, monkeypatch, capsys):
    workdir = workdir_for(tmp_path, pristine_dataset)
    clip, path, reason = BROKEN_DATASETS[case](workdir / "raw" / "casme2")
    stage = "index"
    if case == "no_face":                  # every frame decodes: the index accepts it, alignment cannot
        assert merflow(workdir, monkeypatch, capsys, "stage", "index", "--dataset", "casme2")[0] == 0
        stage = "align"
    before = tree_state(workdir / "data", workdir / "results")
    status, err = merflow(workdir, monkeypatch, capsys, "stage", stage, "--dataset", "casme2")
    assert_refused(status, err, clip, str(path), reason)
    assert tree_state(workdir / "data", workdir / "results") == before
    tally("bad inputs refused", f"{case} ({stage})")


@pytest.mark.parametrize("case", SHEET_QUIRKS)
def test_a_sheet_quirk_keeps_the_clip_with_a_note(case, pristine_dataset, tmp_path, monkeypatch, capsys):
    workdir = workdir_for(tmp_path, pristine_dataset)
    clip, note = SHEET_QUIRKS[case](workdir / "raw" / "casme2")
    status, err = merflow(workdir, monkeypatch, capsys, "stage", "index", "--dataset", "casme2")
    assert status == 0, err[-2000:]
    index = pd.read_csv(workdir / "data" / "casme2" / "index.csv", dtype=str, keep_default_na=False)
    rows = {row["clip_id"]: row for _, row in index.iterrows()}
    assert len(rows) == 4 and rows[clip]["apex_source"] == "estimated" and rows[clip]["apex"] == ""
    assert note in rows[clip]["notes"]
    tally("sheet quirks kept", f"{case}: {rows[clip]['notes']}")


def test_non_ascii_paths_work_and_are_named_exactly(pristine_dataset, tmp_path, monkeypatch, capsys):
    workdir = workdir_for(tmp_path, pristine_dataset, dataset_dir="données/微表情")
    root = workdir / "données" / "微表情" / "casme2"
    assert merflow(workdir, monkeypatch, capsys, "stage", "index", "--dataset", "casme2")[0] == 0
    status, err = merflow(workdir, monkeypatch, capsys, "stage", "align", "--dataset", "casme2")
    assert status == 0, err[-2000:]
    with h5py.File(workdir / "data" / "casme2" / "aligned.h5", "r") as h5:
        assert len(h5["clips"]) == 4
    clip, path, reason = truncated_jpg(root)
    before = tree_state(workdir / "data", workdir / "results")
    assert_refused(*merflow(workdir, monkeypatch, capsys, "stage", "index", "--dataset", "casme2"),
                   clip, str(path), reason)
    assert tree_state(workdir / "data", workdir / "results") == before
    tally("bad inputs refused", "non_ascii_paths (index, align work; a truncated frame is named exactly)")


BROKEN_PARAMS = {   # case: (params overlay, the key named, the reason given)
    "unknown_key": ({"magnify": {"alpah": 10}}, "magnify", "'alpah' was unexpected"),
    "wrong_type": ({"train": {"batch_size": "64"}}, "train.batch_size", "'64' is not of type 'integer'"),
    "negative_alpha": ({"magnify": {"alpha": -1}}, "magnify.alpha", "-1 is less than the minimum of 0"),
    "unknown_kernel": (
        {"tensors": {"kernels": ["nearest", "gaussian"]}}, "tensors.kernels", "'gaussian' is not one of"
    ),
}


@pytest.mark.parametrize("case", BROKEN_PARAMS)
def test_broken_params_are_refused_by_merflow_and_snakemake(case, pristine_dataset, tmp_path, monkeypatch, capsys):
    workdir = workdir_for(tmp_path, pristine_dataset)
    override, key, reason = BROKEN_PARAMS[case]
    (workdir / "bad.yaml").write_text(yaml.safe_dump(override))
    before = tree_state(workdir / "data", workdir / "results")
    status, err = merflow(workdir, monkeypatch, capsys, "stage", "magnify", "--dataset", "casme2", "--params",
                          "params.yaml", "bad.yaml")
    assert_refused(status, err, "params.schema.yaml", key, reason)
    # Snakemake validates the same schema when it builds the DAG, before any job runs.
    result = subprocess.run(snakemake_command(REPO, workdir, [workdir / "bad.yaml"], "--dry-run"),
                            capture_output=True, text=True, timeout=300, env=snapshot_env(REPO))
    snakemake_key = "".join(f"[{part!r}]" for part in key.split("."))      # magnify.alpha -> ['magnify']['alpha']
    said = result.stdout + result.stderr               # Snakemake 9 prints its errors on stdout
    assert result.returncode != 0
    assert "Error validating config file" in said and reason in said
    assert f"On instance{snakemake_key}" in said, said[-2000:]
    assert tree_state(workdir / "data", workdir / "results") == before
    tally("bad inputs refused", f"params {case} (merflow stage, snakemake)")


# =====================================================================================================
# 4. Bounded memory: the tensors stage and training stream from HDF5 under RLIMIT_AS
# =====================================================================================================

TENSORS_LIMIT_MIB = 640                       # measured: the tensors stage peaks at ~490 MiB of address space
MAGNIFIED_CLIPS, CLIP_SHAPE = 38, (30, 480, 640, 3)   # 38 x 26.4 MiB = 1003 MiB of frames


def test_tensors_stage_streams_a_store_larger_than_its_memory_limit(tmp_path):
    from pipeline.artifacts import open_h5_for_write, write_clip
    magnified = tmp_path / "magnified.h5"
    base = np.random.default_rng(0).integers(0, 256, CLIP_SHAPE, dtype=np.uint8)
    with open_h5_for_write(magnified) as h5:
        for i in range(MAGNIFIED_CLIPS):
            write_clip(h5, f"clip{i:02d}", np.roll(base, 7 * i, axis=2),
                       {"subject": f"s{i % 4}", "label": "positive", "label_index": 0, "onset": 1, "apex": 9,
                        "offset": CLIP_SHAPE[0]})
    size_mib = magnified.stat().st_size / 2**20
    assert size_mib > 1.5 * TENSORS_LIMIT_MIB
    script = ("from pipeline.jitter import tensors_stage\n"
              "tensors_stage('magnified.h5', 'tensors.h5', height=64, width=48, crop=0.8, pixels=1966, frames=30,"
              " keep_ratios=[1.0, 0.6], kernels=['nearest', 'bicubic'], seed=0, classes=['positive', 'other'])\n"
              + VM_PEAK)
    result = run_limited(script, TENSORS_LIMIT_MIB << 20, tmp_path)
    assert result.returncode == 0, result.stderr[-3000:]
    with h5py.File(tmp_path / "tensors.h5", "r") as h5:
        assert h5["x"].shape == (MAGNIFIED_CLIPS, 4, 3, 1966, 30)
    peak = vm_peak_mib(result.stdout)
    tally("memory limits held", f"tensors: {size_mib:.0f} MiB magnified.h5 under RLIMIT_AS {TENSORS_LIMIT_MIB} MiB "
                                f"(address-space peak {peak} MiB)")


TRAIN_HEADROOM_MIB = 80                       # address space allowed beyond what a warmed-up training process has
                                              # (streaming uses ~40 MiB of it: two buffers, batches, h5py caches)
TRAIN_BUFFER_MIB = 8                          # SHUFFLE_BUFFER_BYTES for the test (two buffers at most in memory)
TRAIN_CLIPS = 330                             # x 0.68 MiB = 223 MiB of tensors, 150 MiB in the training folds
MEMORY_TRAIN = {**TRAIN, "method": "rcnn", "maps": 1, "recurrent_steps": 0, "batch_size": 16, "max_epochs": 1}


def test_training_streams_a_store_larger_than_its_memory_headroom(tmp_path):
    """torch alone reserves ~900 MiB of address space (libraries, lazily imported modules, allocator
    pools), far more than a test can afford to train through on 2 cores. So the process first trains
    a 6-clip fold to load all of that, then caps its address space at its peak so far plus
    TRAIN_HEADROOM_MIB and trains on a store larger than that: streaming passes; the same run with the
    default 512 MiB shuffle buffer (which would hold the whole store) is refused its memory."""
    small_tensors, small_folds = write_store(tmp_path / "small", 6, variants=4, pixels=1966, frames=30)
    tensors, folds = write_store(tmp_path / "big", TRAIN_CLIPS, variants=4, pixels=1966, frames=30)
    size_mib = tensors.stat().st_size / 2**20
    assert size_mib * 2 / 3 > 1.8 * TRAIN_HEADROOM_MIB  # the training folds alone do not fit
    script = f"""
import resource, sys
import pipeline.train as train
def vm_peak():
    return int(open('/proc/self/status').read().split('VmPeak:')[1].split()[0]) // 1024
train.train_fold_stage({str(small_tensors)!r}, {str(small_folds)!r}, 0, 'warm', **{MEMORY_TRAIN!r})
limit = (vm_peak() + {TRAIN_HEADROOM_MIB}) << 20
resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
print('limit_MiB', limit >> 20)
train.SHUFFLE_BUFFER_BYTES = {TRAIN_BUFFER_MIB} << 20
train.train_fold_stage({str(tensors)!r}, {str(folds)!r}, 0, 'streamed', **{MEMORY_TRAIN!r})
print('VmPeak_MiB', vm_peak(), flush=True)
train.SHUFFLE_BUFFER_BYTES = 512 << 20
try:
    train.train_fold_stage({str(tensors)!r}, {str(folds)!r}, 0, 'whole', **{MEMORY_TRAIN!r})
    print('whole store: trained')
except (MemoryError, RuntimeError) as error:
    print('whole store: refused', type(error).__name__)
"""
    result = run_limited(script, 1 << 40, tmp_path)      # the script sets its own limit, after warming up
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert (tmp_path / "streamed" / "predictions.csv").is_file()
    assert "whole store: refused" in result.stdout, result.stdout
    limit = int(re.findall(r"limit_MiB (\d+)", result.stdout)[0])
    tally("memory limits held", f"training: {size_mib:.0f} MiB tensors.h5 under RLIMIT_AS {limit} MiB = warmed-up "
                                f"peak + {TRAIN_HEADROOM_MIB} MiB (peak {vm_peak_mib(result.stdout)} MiB); the "
                                f"same run with a 512 MiB shuffle buffer is refused")


# =====================================================================================================
# The counts
# =====================================================================================================

def test_zz_print_the_counts(capsys):
    with capsys.disabled():
        print("\nreliability counts (issue #10):")
        for group, items in TALLY.items():
            print(f"  {group}: {len(items)}")
            for item in items:
                print(f"    - {item}")
