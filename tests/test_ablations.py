"""Ablations: each switch reruns only its own stage and those downstream, and a tiny grid runs end to end.

The end-to-end test runs the real Snakemake workflow on the tiny config with 2 folds: first the main
pipeline, then a grid of 3 settings in 2 families (EVM off: magnify, tensors and training; no recurrence:
training only) and a flow family (DIS against TV-L1: the flow stage, then STSTNet and OFF-ApexNet), then
dry runs that add one setting per switch and read Snakemake's job counts.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from pipeline import ablations
from pipeline.artifacts import clip_ids, read_clip, read_provenance
from pipeline.config import load_params
from pipeline.errors import ParamsError
from tests.test_workflow import REPO, TINY, finished_jobs, job_counts, snakemake

GRID = {"protocols": ["kfold2"], "methods": ["rcnn"],
        "ablations": {"protocol": "kfold2", "run": ["evm", "recurrence_tiny", "flow_tiny"],
                      "families": {"recurrence_tiny": {"0": {"train.recurrent_steps": 0}, "3": {}},
                                   "flow_tiny": {"tvl1": {}, "dis": {"flow.method": "dis"}}}}}
MAIN_STAGES = {"synth", "index", "align", "magnify", "tensors", "folds", "train"}


def dry_run(workdir, *targets: str, configfiles: tuple) -> subprocess.CompletedProcess:
    """`snakemake --dry-run` (tests.test_workflow.snakemake runs the jobs)."""
    command = [sys.executable, "-m", "snakemake", "--snakefile", str(REPO / "Snakefile"), "--directory",
               str(workdir), "--dry-run", "--configfile", *map(str, configfiles), "--", *targets]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}:{os.environ['PATH']}"}
    return subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)


def reasons(result: subprocess.CompletedProcess) -> str:
    """Why Snakemake planned its jobs (shown when a test finds more jobs than the switch explains)."""
    lines = (result.stdout + result.stderr).splitlines()
    return "\n".join(line for i, line in enumerate(lines) if line.startswith("Reason:") or
                     (i + 1 < len(lines) and lines[i + 1].startswith("Reason:")))


def params_with(*overlays: dict) -> dict:
    params = load_params(REPO / "params.yaml", TINY)
    for overlay in overlays:
        for section, values in overlay.items():
            if isinstance(values, dict) and isinstance(params.get(section), dict):
                params[section].update(values)
            else:
                params[section] = values
    return params


def test_keys_follow_the_stage_a_switch_changes():
    evm_off = {"magnify.enabled": False}
    jitter = {"tensors.keep_ratios": [1.0]}
    maps = {"train.maps": 16}
    # A train switch keeps the main pipeline's tensors; a tensors switch its magnified clips.
    assert ablations.tensors_path(maps, "casme2") == "data/casme2/tensors.h5"
    assert ablations.magnified_path(jitter, "casme2") == "data/casme2/magnified.h5"
    assert ablations.tensors_path(jitter, "casme2").startswith("data/casme2/ablations/")
    assert ablations.magnified_path(evm_off, "casme2").startswith("data/casme2/ablations/")
    # No overrides at all: the main run's folds.
    assert ablations.fold_dir({}, "casme2", "kfold5", 3, 0) == "results/casme2/kfold5/rcnn/seed0/fold3"
    # A key hashes the overrides of its stage and those upstream, so the keys of a stage differ per setting,
    # and a magnify switch's tensors key is its magnify key (the same overrides, one folder).
    assert ablations.stage_key(evm_off, "tensors") == ablations.stage_key(evm_off, "magnify")
    assert ablations.stage_key({**evm_off, **maps}, "tensors") == ablations.stage_key(evm_off, "tensors")
    assert ablations.stage_key({**evm_off, **maps}, "train") != ablations.stage_key(evm_off, "train")
    params = load_params(REPO / "params.yaml")
    assert [s for s, _ in ablations.rerun_jobs(params, ablations.Setting("evm", "off", evm_off), [0, 1])] == \
        ["magnify", "tensors", "train", "train"]
    assert [s for s, _ in ablations.rerun_jobs(params, ablations.Setting("maps", "16", maps), [0, 1])] == \
        ["train", "train"]


def test_a_flow_family_trains_the_flow_networks_on_its_own_flow():
    params = load_params(REPO / "params.yaml")
    flow = {s.name: s for s in ablations.settings(params) if s.family == "flow"}
    assert list(flow) == ["tvl1", "dis", "farneback"] and flow["tvl1"].is_reference
    assert all(s.methods == ablations.FLOW_NETWORKS for s in flow.values())
    assert all(s.methods == ("rcnn",) for s in ablations.settings(params) if s.family != "flow")
    dis = flow["dis"].overrides
    key = ablations.stage_key(dis, "flow")
    # The RCNN's stages are untouched by a flow switch, and the reference reads the main pipeline's folds.
    assert [ablations.stage_key(dis, stage) for stage in ablations.STAGE_ORDER] == [None, None, None]
    assert ablations.flow_path({}, "casme2") == "data/casme2/flow.h5"
    assert ablations.flow_path(dis, "casme2") == f"data/casme2/ablations/{key}/flow.h5"
    assert ablations.fold_dir({}, "casme2", "kfold5", 2, 0, "ststnet") == "results/casme2/kfold5/ststnet/seed0/fold2"
    assert ablations.fold_dir(dis, "casme2", "kfold5", 2, 0, "off_apexnet") == \
        f"results/ablations/casme2/kfold5/{key}/off_apexnet/fold2"
    assert ablations.overrides_for_key(params, key) == dis
    stage = ablations.ablation_stage_params(params, "flow", key)
    assert stage["method"] == "dis" and stage["tau"] == params["flow"]["tau"]
    assert ablations.ablation_stage_params(params, "ststnet_folds", key, "casme2")["epochs"] == \
        params["ststnet"]["epochs"]
    # One flow job, then per network its folds together and one job per fold (the flow counted once per network).
    assert [s for s, _ in ablations.rerun_jobs(params, flow["dis"], [0, 1], "ststnet")] == \
        ["flow", "flownet_folds", "flownet", "flownet"]
    jobs = ablations.rerun_jobs(params, flow["dis"], [0, 1])
    assert [s for s, _ in jobs].count("flow") == 1 and len(jobs) == 7
    params["ststnet"]["folds_together"] = False
    assert [s for s, _ in ablations.rerun_jobs(params, flow["dis"], [0], "ststnet")] == ["flow", "flownet"]
    mixed = params_with({"ablations": {**params["ablations"], "run": ["mixed"],
                                       "families": {"mixed": {"a": {"flow.method": "dis", "train.maps": 4}, "b": {}}}}})
    with pytest.raises(ParamsError, match="either the flow networks' input"):
        ablations.validate_ablations(mixed)


def test_the_default_grid_is_valid_and_bad_settings_are_refused():
    params = load_params(REPO / "params.yaml")
    ablations.validate_ablations(params)
    names = {(s.family, s.name) for s in ablations.settings(params)}
    assert {("evm", "off"), ("alpha", "20"), ("jitter", "1"), ("recurrence", "0"), ("maps", "128")} <= names
    for family in params["ablations"]["run"]:
        assert ablations.reference(params, family).overrides == {}
    stage = ablations.ablation_stage_params(params, "train", ablations.stage_key({"train.maps": 64}, "train"))
    assert (stage["maps"], stage["recurrent_steps"], stage["method"]) == (64, 3, "rcnn")
    bad = [({"maps": {"16": {"train.mapz": 16}, "32": {}}}, "train.mapz is not a key"),
           ({"maps": {"16": {"train.maps": 0}, "32": {}}}, "overridden params are invalid"),
           ({"maps": {"16": {"train.maps": 16}}}, "exactly one reference")]
    for families, message in bad:
        broken = params_with({"ablations": {**params["ablations"], "run": ["maps"], "families": families}})
        with pytest.raises(ParamsError, match=message):
            ablations.validate_ablations(broken)
    with pytest.raises(ParamsError, match="not keys of ablations.families"):
        ablations.validate_ablations(params_with({"ablations": {**params["ablations"], "run": ["nope"]}}))


def test_wilcoxon_p_of_paired_folds():
    assert ablations.wilcoxon_p([0.5, 0.6, 0.7], [0.5, 0.6, 0.7]) == 1.0
    # Five folds, all better: the smallest two-sided p there is with 5 pairs, 2 / 2**5.
    assert ablations.wilcoxon_p([0.6, 0.7, 0.8, 0.9, 1.0], [0.5, 0.5, 0.5, 0.5, 0.5]) == pytest.approx(0.0625)


@pytest.fixture(scope="module")
def grid_run(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("ablations")
    overlay = workdir / "grid.yaml"
    overlay.write_text(yaml.safe_dump(GRID))
    main = snakemake(workdir, "results/table2.csv", configfiles=(TINY, overlay))
    assert main.returncode == 0, main.stdout[-3000:] + main.stderr[-6000:]
    grid = snakemake(workdir, "results/ablations.csv", configfiles=(TINY, overlay))
    assert grid.returncode == 0, grid.stdout[-3000:] + grid.stderr[-6000:]
    return workdir, overlay, grid


def test_a_tiny_grid_reuses_the_main_run_and_writes_the_table(grid_run):
    workdir, _, grid = grid_run
    # Only what the switches change ran: EVM off (magnify, tensors, 2 folds), no recurrence (2 folds), DIS (its
    # flow, then each network's folds together and its 2 fold jobs); the references are the main run's
    # (which trained the flow networks on TV-L1 for the flow family's reference).
    finished = finished_jobs(grid.stdout + grid.stderr)
    assert {rule: n for rule, n in finished.items() if rule.startswith("ablation")} == {
        "ablation_magnify": 1, "ablation_tensors": 1, "ablation_train": 4, "ablation_flow": 1,
        "ablation_flownet_folds": 2, "ablation_flownet": 4, "ablations": 1}, reasons(grid)
    table = pd.read_csv(workdir / "results" / "ablations.csv")
    assert [(r.family, str(r.setting), r.method, r.reference) for r in table.itertuples()] == \
        [("evm", "on", "rcnn", True), ("evm", "off", "rcnn", False), ("recurrence_tiny", "0", "rcnn", False),
         ("recurrence_tiny", "3", "rcnn", True), ("flow_tiny", "dis", "ststnet", False),
         ("flow_tiny", "dis", "off_apexnet", False), ("flow_tiny", "tvl1", "ststnet", True),
         ("flow_tiny", "tvl1", "off_apexnet", True)]
    by_name = {(r.family, str(r.setting)): r for r in table.itertuples() if r.method == "rcnn"}
    by_flow = {(r.method, str(r.setting)): r for r in table.itertuples() if r.family == "flow_tiny"}
    # The references are the main run's folds, read back unchanged.
    main = [json.loads((workdir / f"results/casme2/kfold2/rcnn/seed0/fold{k}/metrics.json").read_text())
            for k in (0, 1)]
    for name in (("evm", "on"), ("recurrence_tiny", "3")):
        row = by_name[name]
        assert row.fold_accuracy == ";".join(f"{m['accuracy']:.4f}" for m in main)
        assert row.accuracy_mean == pytest.approx(np.mean([m["accuracy"] for m in main]))
        assert row.accuracy_std == pytest.approx(np.std([m["accuracy"] for m in main], ddof=1))
        assert np.isnan(row.p_wilcoxon) and row.seconds == 0 and pd.isna(row.stages_rerun)
    off, cnn = by_name["evm", "off"], by_name["recurrence_tiny", "0"]
    assert (off.stages_rerun, cnn.stages_rerun) == ("magnify tensors trainx2", "trainx2")
    assert off.seconds > 0 and cnn.seconds > 0
    for row in (off, cnn):
        assert 0 < row.p_wilcoxon <= 1 and row.folds == 2
        folds = [float(v) for v in row.fold_accuracy.split(";")]
        assert row.accuracy_mean == pytest.approx(np.mean(folds), abs=1e-4)
        assert row.delta_accuracy == pytest.approx(np.mean(folds) - by_name["evm", "on"].accuracy_mean, abs=1e-4)
    # EVM off: the magnify stage copied the aligned frames, and the tensors record it.
    key = ablations.stage_key({"magnify.enabled": False}, "magnify")
    data = workdir / "data" / "casme2"
    for clip_id in clip_ids(data / "aligned.h5")[:3]:
        np.testing.assert_array_equal(read_clip(data / "aligned.h5", clip_id)[0],
                                      read_clip(data / "ablations" / key / "magnified.h5", clip_id)[0])
    upstream = read_provenance(data / "ablations" / key / "tensors.h5")["upstream"]
    assert upstream["magnify"]["enabled"] is False
    # The flow family: its reference is the main run's folds of each network; DIS ran on a flow store of its own,
    # made with DIS, and each network's folds were trained on it.
    for method in ablations.FLOW_NETWORKS:
        main = [json.loads((workdir / f"results/casme2/kfold2/{method}/seed0/fold{k}/metrics.json").read_text())
                for k in (0, 1)]
        assert by_flow[method, "tvl1"].fold_accuracy == ";".join(f"{m['accuracy']:.4f}" for m in main)
        dis = by_flow[method, "dis"]
        assert dis.stages_rerun == "flow flownet_folds flownetx2" and dis.seconds > 0 and 0 < dis.p_wilcoxon <= 1
        assert 0 <= dis.accuracy_low <= dis.accuracy_mean <= dis.accuracy_high <= 1 or np.isnan(dis.accuracy_low)
    flow_key = ablations.stage_key({"flow.method": "dis"}, "flow")
    assert read_provenance(data / "ablations" / flow_key / "flow.h5")["params"]["method"] == "dis"
    assert read_provenance(data / "flow.h5")["params"]["method"] == "tvl1"
    assert {p.name for p in (workdir / "results" / "ablations" / "figures").glob("*.png")} == \
        {"evm.png", "recurrence_tiny.png", "flow_tiny.png"}
    page = (workdir / "results" / "ablations.html").read_text()
    assert page.count("<img") == 3 and "Wilcoxon" in page and "off_apexnet" in page


@pytest.mark.parametrize(("switch", "planned"), [
    ({"magnify.alpha": 5}, {"ablation_magnify": 1, "ablation_tensors": 1, "ablation_train": 2, "ablations": 1}),
    ({"tensors.kernels": ["bilinear"]}, {"ablation_tensors": 1, "ablation_train": 2, "ablations": 1}),
    ({"train.maps": 3}, {"ablation_train": 2, "ablations": 1}),
    ({"flow.method": "farneback"}, {"ablation_flow": 1, "ablation_flownet_folds": 2, "ablation_flownet": 4,
                                    "ablations": 1}),
])
def test_each_switch_reruns_only_its_stage_and_those_downstream(grid_run, tmp_path, switch, planned):
    workdir, overlay, _ = grid_run
    added = tmp_path / "switch.yaml"
    added.write_text(yaml.safe_dump({"ablations": {"run": ["evm", "recurrence_tiny", "switch"],
                                                   "families": {"switch": {"new": switch, "ref": {}}}}}))
    result = dry_run(workdir, "results/ablations.csv", configfiles=(TINY, overlay, added))
    assert result.returncode == 0, result.stderr[-4000:]
    counts = {rule: n for rule, n in job_counts(result.stdout + result.stderr).items() if n}
    assert counts == planned, reasons(result)
    assert not MAIN_STAGES & set(counts)


def test_dvc_lists_the_grid_only_when_asked():
    from pipeline.dvcgen import dvc_stages
    params = load_params(REPO / "params.yaml")
    assert not {name for name in dvc_stages(params)["stages"] if name.startswith("ablation")}
    params["ablations"]["dvc"] = True
    stages = dvc_stages(params)["stages"]
    folds = list(range(5))                                  # params.yaml: kfold5
    metrics, benchmarks = ablations.grid_files(params, folds)
    assert set(stages["ablations"]["deps"]) >= {*metrics, *benchmarks}
    # One train stage per non-reference setting and fold; magnify only for the EVM and alpha switches.
    settings = [s for s in ablations.settings(params) if not s.is_reference and s.methods == ("rcnn",)]
    assert len(stages["ablation_train"]["foreach"]) == len(settings) * len(folds)
    # The flow family (DIS, Farneback): one flow stage each, then per network its folds together and each fold.
    flow = [s for s in ablations.settings(params) if not s.is_reference and s.methods == ablations.FLOW_NETWORKS]
    assert len(stages["ablation_flow"]["foreach"]) == len(flow) == 2
    assert len(stages["ablation_flownet_folds"]["foreach"]) == 2 * len(flow)
    assert len(stages["ablation_flownet"]["foreach"]) == 2 * len(flow) * len(folds)
    per_fold = stages["ablation_flownet"]
    outs = {out.replace("${item.key}", item["key"]).replace("${item.method}", item["method"])
            .replace("${item.fold}", str(item["fold"]))
            for item in per_fold["foreach"].values() for out in per_fold["do"]["outs"]}
    assert {m for m in metrics if "/ablations/" in m and "/fold" in m and ("ststnet" in m or "apexnet" in m)} <= outs
    magnify = {ablations.stage_key(s.overrides, "magnify") for s in settings} - {None}
    assert set(stages["ablation_magnify"]["foreach"]) == magnify and len(magnify) == 4   # evm off, alpha 0/5/20
    produced = {out.replace("${item}", key) for key in magnify for out in stages["ablation_magnify"]["do"]["outs"]}
    assert {b for b in benchmarks if "/magnify/" in b} <= produced


def test_merflow_stage_runs_a_grid_job_as_snakemake_did(grid_run):
    """What the DVC stages run: retraining a fold gives the same metrics, and the table is the same."""
    workdir, overlay, _ = grid_run
    params = [str(REPO / "params.yaml"), str(TINY), str(overlay)]
    key = ablations.stage_key({"train.recurrent_steps": 0}, "train")
    metrics = workdir / "results" / "ablations" / "casme2" / "kfold2" / key / "fold0" / "metrics.json"
    before, table = json.loads(metrics.read_text()), pd.read_csv(workdir / "results" / "ablations.csv")
    merflow = str(Path(sys.executable).parent / "merflow")
    for command in (["ablation_train", "--dataset", "casme2", "--protocol", "kfold2", "--key", key, "--fold", "0"],
                    ["ablations"]):
        result = subprocess.run([merflow, "stage", *command, "--params", *params], cwd=workdir, capture_output=True,
                                text=True, timeout=300)
        assert result.returncode == 0, result.stderr[-3000:]
    after = json.loads(metrics.read_text())
    for name in ("accuracy", "uf1", "uar", "confusion"):
        assert after[name] == before[name], name
    again = pd.read_csv(workdir / "results" / "ablations.csv")
    pd.testing.assert_frame_equal(again.drop(columns="seconds"), table.drop(columns="seconds"))
    assert (again["seconds"] > 0).tolist() == (table["seconds"] > 0).tolist()
