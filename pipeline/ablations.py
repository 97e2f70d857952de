"""Ablations of the paper's claims: EVM, temporal jittering, recurrence and model size, one switch at a time;
and of the flow networks' input: the optical flow method.

`params.yaml`'s `ablations.families` maps a family (evm, alpha, jitter, recurrence, maps, flow) to ordered
settings; a setting is a dict of dotted overrides, and the family's one empty setting is its reference (the
params as they are). `ablations.run` lists the families the grid runs (a list, so that a --configfile
overlay replaces it, while it can only add to a dict). A family overrides either the RCNN's stages
(magnify, tensors, train: the RCNN is trained on each setting) or the flow stage (flow: each of
FLOW_NETWORKS is trained on each setting, with its own params, `folds_together` included).

Caching: a setting's artifact of a stage is keyed by the overrides of that stage and of every stage
upstream of it (`stage_key`). A stage with no such overrides is the main pipeline's own artifact
(`data/{ds}/tensors.h5`, `results/{ds}/{protocol}/rcnn/fold{k}/`), so a train-only switch reuses the main
run's tensors, a tensors switch its magnified clips, and the reference setting its trained folds; a
stage with overrides writes `data/{ds}/ablations/{key}/` or `results/ablations/{ds}/{protocol}/{key}/`
(a flow network's folds: `.../{key}/{method}/`). The overridden stages run the main pipeline's own stage
functions with the merged params (`ablation_stage_params`); every setting is tested on the main
pipeline's folds.

`ablations_stage` writes one row per setting and network (accuracy, UF1, UAR: mean, sample std and per
fold; the stages it reran and their wall time from Snakemake's benchmark files; the paired Wilcoxon
signed-rank p-value of its per-fold accuracies against its family's reference on the same folds, with the
same network), an HTML page and one figure per family.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from pipeline import paths
from pipeline.artifacts import atomic_output, canonical_json
from pipeline.config import validate_params
from pipeline.errors import MerflowError, ParamsError
from pipeline.metrics import fold_interval
from pipeline.protocols import kfold_k
from pipeline.stages import stage_params

STAGE_ORDER = ("magnify", "tensors", "train")   # the RCNN's stages a setting may override, upstream first
METHOD = "rcnn"                                 # what a family of those stages trains
FLOW = "flow"                                   # the flow stage, the other one a setting may override
# What a flow family trains: the networks on the onset-apex flow (HTNet is left out: at the authors' size one
# run is GPU days, docs/flow.md).
FLOW_NETWORKS = ("ststnet", "off_apexnet")
KEY_LENGTH = 10
# The param sections the ablation table depends on (the `ablations` rule's params).
PARAM_SECTIONS = ("ablations", "dataset", "mappings", "align", "magnify", "tensors", "train", "seeds", "selection",
                  FLOW, *FLOW_NETWORKS)


@dataclass(frozen=True)
class Setting:
    family: str
    name: str
    overrides: Mapping[str, Any] = field(default_factory=dict)
    methods: tuple[str, ...] = (METHOD,)     # the networks trained on it (its family's)

    @property
    def is_reference(self) -> bool:
        return not self.overrides


def family_methods(entries: Mapping[str, Any]) -> tuple[str, ...]:
    """The networks a family trains: FLOW_NETWORKS when its settings override the flow stage, else the RCNN."""
    sections = {dotted.split(".", 1)[0] for overrides in entries.values() for dotted in (overrides or {})}
    return FLOW_NETWORKS if FLOW in sections else (METHOD,)


def settings(params: Mapping) -> list[Setting]:
    """Every setting of every family, in the order of params.yaml."""
    if "ablations" not in params:
        raise ParamsError("params have no `ablations:` section (see params.yaml)")
    section = params["ablations"]
    return [Setting(family, str(name), dict(overrides or {}), family_methods(section["families"][family]))
            for family in section["run"] for name, overrides in section["families"][family].items()]


def reference(params: Mapping, family: str) -> Setting:
    return next(s for s in settings(params) if s.family == family and s.is_reference)


def apply_overrides(params: Mapping, overrides: Mapping[str, Any]) -> dict:
    """A copy of params with each `section.key` of overrides set."""
    merged = copy.deepcopy(dict(params))
    for dotted, value in overrides.items():
        section, key = dotted.split(".", 1)
        merged[section][key] = copy.deepcopy(value)
    return merged


def cumulative_overrides(overrides: Mapping[str, Any], stage: str) -> dict[str, Any]:
    """The overrides of `stage` and of the stages upstream of it: what its artifact depends on (the flow
    stage's upstream, alignment, is never overridden)."""
    upto = (FLOW,) if stage == FLOW else STAGE_ORDER[:STAGE_ORDER.index(stage) + 1]
    return {k: v for k, v in overrides.items() if k.split(".", 1)[0] in upto}


def overrides_key(overrides: Mapping[str, Any]) -> str | None:
    """A short hash of a set of overrides (k + 9 hex digits); None for none (the main pipeline's artifact)."""
    if not overrides:
        return None
    # A letter first: a key of digits (and one e) would read as a number in YAML (dvc.yaml's foreach).
    return "k" + hashlib.sha256(canonical_json(dict(overrides)).encode()).hexdigest()[:KEY_LENGTH - 1]


def stage_key(overrides: Mapping[str, Any], stage: str) -> str | None:
    return overrides_key(cumulative_overrides(overrides, stage))


def overrides_for_key(params: Mapping, key: str) -> dict[str, Any]:
    """The cumulative overrides a key stands for (as the rules' {key} wildcard gives it)."""
    for setting in settings(params):
        for stage in (*STAGE_ORDER, FLOW):
            if stage_key(setting.overrides, stage) == key:
                return cumulative_overrides(setting.overrides, stage)
    raise MerflowError(f"ablations: no setting of params.yaml has the artifact key {key!r}")


def ablation_stage_params(params: Mapping, stage: str, key: str, ds: str | None = None) -> dict[str, Any]:
    """The stage function's keyword arguments under a key's overrides (pipeline.stages.stage_params; `stage` is
    a stage table name: magnify, tensors, train, flow, or a flow network's ststnet_folds, ststnet, ...)."""
    return stage_params(apply_overrides(params, overrides_for_key(params, key)), stage, ds=ds, method=METHOD)


def validate_ablations(params: Mapping) -> None:
    """Every family has one reference; every override names an existing magnify/tensors/train key, and the
    params it gives pass the schema."""
    if "ablations" not in params:
        return
    section = params["ablations"]
    if section["dataset"] not in params["dataset"]:
        raise ParamsError(f"ablations.dataset: '{section['dataset']}' is not a key of `dataset:`")
    unknown = [family for family in section["run"] if family not in section["families"]]
    if unknown:
        raise ParamsError(f"ablations.run: {unknown} are not keys of ablations.families")
    for family, entries in section["families"].items():
        references = [name for name, overrides in entries.items() if not overrides]
        if len(references) != 1:
            raise ParamsError(f"ablations.families.{family}: needs exactly one reference setting ({{}}: the params "
                              f"as they are), got {references or 'none'}")
        sections = {dotted.split(".", 1)[0] for overrides in entries.values() for dotted in (overrides or {})}
        if FLOW in sections and len(sections) > 1:
            raise ParamsError(f"ablations.families.{family}: overrides the flow stage and {sorted(sections - {FLOW})}; "
                              f"a family varies either the flow networks' input (flow) or the RCNN's stages")
    for setting in settings(params):
        where = f"ablations.families.{setting.family}.{setting.name}"
        for dotted in setting.overrides:
            stage, key = dotted.split(".", 1)
            if stage not in (*STAGE_ORDER, FLOW) or key not in params[stage]:
                raise ParamsError(f"{where}: {dotted} is not a key of {' / '.join((*STAGE_ORDER, FLOW))}")
        try:
            validate_params(apply_overrides(params, setting.overrides))
        except ParamsError as error:
            raise ParamsError(f"{where}: the overridden params are invalid: {error}") from None


# --- artifact paths ------------------------------------------------------------------------------

def magnified_path(overrides: Mapping[str, Any], ds: str) -> str:
    key = stage_key(overrides, "magnify")
    return paths.MAGNIFIED.format(ds=ds) if key is None else paths.ABLATION_MAGNIFIED.format(ds=ds, key=key)


def tensors_path(overrides: Mapping[str, Any], ds: str) -> str:
    key = stage_key(overrides, "tensors")
    return paths.TENSORS.format(ds=ds) if key is None else paths.ABLATION_TENSORS.format(ds=ds, key=key)


def flow_path(overrides: Mapping[str, Any], ds: str) -> str:
    key = stage_key(overrides, FLOW)
    return paths.FLOW.format(ds=ds) if key is None else paths.ABLATION_FLOW.format(ds=ds, key=key)


def flownet_store(key: str, ds: str, protocol: str, method: str) -> str:
    """A flow setting's store of a network's folds trained together (`{method}.folds_together`)."""
    return paths.ABLATION_FLOWNET_STORE.format(ds=ds, protocol=protocol, key=key, method=method)


def fold_dir(overrides: Mapping[str, Any], ds: str, protocol: str, fold: int, seed: int, method: str = METHOD) -> str:
    """A setting's fold folder for one network: the main pipeline's (at `seed`, the first of params' seeds,
    which the grid's training runs with too) when it overrides nothing upstream of that network."""
    if method != METHOD:
        key = stage_key(overrides, FLOW)
        if key is None:
            return paths.FOLD_DIR.format(ds=ds, protocol=protocol, method=method, seed=seed, fold=fold)
        return paths.ABLATION_FLOWNET_FOLD_DIR.format(ds=ds, protocol=protocol, key=key, method=method, fold=fold)
    key = stage_key(overrides, "train")
    if key is None:
        return paths.FOLD_DIR.format(ds=ds, protocol=protocol, method=METHOD, seed=seed, fold=fold)
    return paths.ABLATION_FOLD_DIR.format(ds=ds, protocol=protocol, key=key, fold=fold)


def rerun_jobs(params: Mapping, setting: Setting, folds: Sequence[int],
               method: str | None = None) -> list[tuple[str, str]]:
    """(stage, benchmark file) of every job a setting runs beyond the main pipeline (for one of its networks
    when `method` is given: the flow stage they share counts for each)."""
    ds, protocol = params["ablations"]["dataset"], params["ablations"]["protocol"]
    bench = paths.ABLATION_BENCHMARKS
    jobs = []
    flow_key = stage_key(setting.overrides, FLOW)
    if flow_key is not None:
        jobs.append((FLOW, bench[FLOW].format(ds=ds, key=flow_key)))
        for network in [method] if method else setting.methods:
            where = dict(ds=ds, protocol=protocol, key=flow_key, method=network)
            if params[network]["folds_together"]:
                jobs.append(("flownet_folds", bench["flownet_folds"].format(**where)))
            jobs += [("flownet", bench["flownet"].format(**where, fold=f)) for f in folds]
    for stage in STAGE_ORDER:
        key = stage_key(setting.overrides, stage)
        if key is None:
            continue
        template = bench[stage]
        if stage == "train":
            jobs += [(stage, template.format(ds=ds, protocol=protocol, key=key, fold=f)) for f in folds]
        else:
            jobs.append((stage, template.format(ds=ds, key=key)))
    return jobs


def grid_files(params: Mapping, folds: Sequence[int]) -> tuple[list[str], list[str]]:
    """Every setting's per-fold metrics.json (of each of its networks) and every benchmark file: the ablation
    table's inputs."""
    ds, protocol = params["ablations"]["dataset"], params["ablations"]["protocol"]
    metrics, benchmarks = [], []
    for setting in settings(params):
        metrics += [f"{fold_dir(setting.overrides, ds, protocol, f, params['seeds'][0], method)}/metrics.json"
                    for method in setting.methods for f in folds]
        benchmarks += [b for _, b in rerun_jobs(params, setting, folds)]
    return list(dict.fromkeys(metrics)), list(dict.fromkeys(benchmarks))


# --- the table -----------------------------------------------------------------------------------

def wilcoxon_p(values: Sequence[float], reference_values: Sequence[float]) -> float:
    """Two-sided Wilcoxon signed-rank p-value of paired per-fold values (scipy; zero differences dropped).
    Identical values give 1.0. With n folds and no ties the smallest possible p is 2 / 2**n (0.0625 for 5)."""
    from scipy.stats import wilcoxon
    differences = np.asarray(values, dtype=float) - np.asarray(reference_values, dtype=float)
    if np.allclose(differences, 0):
        return 1.0
    return float(wilcoxon(values, reference_values).pvalue)


def check_fold_params(params: Mapping, setting: Setting, fold_path: str | os.PathLike, ds: str) -> None:
    """The model a fold folder holds was trained with the setting's train params, on tensors and magnified
    clips made with its tensors and magnify params (model.pt's params and provenance)."""
    import torch
    merged = apply_overrides(params, setting.overrides)
    checkpoint = torch.load(Path(fold_path) / "model.pt", map_location="cpu", weights_only=True)
    upstream = json.loads(checkpoint["provenance"]["upstream"])
    stored = {"train": {k: v for k, v in checkpoint["params"].items() if k != "fold"},
              "tensors": upstream.get("tensors"), "magnify": upstream.get("magnify")}
    expected = {"train": stage_params(merged, "train", method=METHOD),
                "tensors": stage_params(merged, "tensors", ds=ds), "magnify": stage_params(merged, "magnify")}
    for stage in STAGE_ORDER:
        if canonical_json(stored[stage]) != canonical_json(expected[stage]):
            raise MerflowError(f"ablations: {fold_path}/model.pt was made with other {stage} params than setting "
                               f"{setting.family}={setting.name} asks for:\n  stored   {canonical_json(stored[stage])}"
                               f"\n  expected {canonical_json(expected[stage])}\n(rerun the pipeline)")


def check_flow_fold(params: Mapping, setting: Setting, fold_metrics: Mapping, fold_path: str | os.PathLike,
                    ds: str) -> None:
    """A flow network's fold was trained on the flow store of the setting, and that store was made with the
    setting's flow params (the fold's recorded input checksum and the store's provenance)."""
    from pipeline.artifacts import file_sha256, read_provenance
    flow_h5 = flow_path(setting.overrides, ds)
    stored = read_provenance(flow_h5).get("params")
    expected = stage_params(apply_overrides(params, setting.overrides), FLOW)
    if canonical_json(stored) != canonical_json(expected):
        raise MerflowError(f"ablations: {flow_h5} was made with other flow params than setting {setting.family}="
                           f"{setting.name} asks for:\n  stored   {canonical_json(stored)}\n  expected "
                           f"{canonical_json(expected)}\n(rerun the pipeline)")
    inputs = json.loads(fold_metrics.get("provenance", {}).get("inputs", "{}"))
    if inputs.get("flow", {}).get("sha256") != file_sha256(flow_h5):
        raise MerflowError(f"ablations: {fold_path} was not trained on {flow_h5} (setting {setting.family}="
                           f"{setting.name}; rerun the pipeline)")


def benchmark_seconds(path: str | os.PathLike) -> float:
    """Wall-clock seconds of a Snakemake benchmark file (column s)."""
    return float(pd.read_csv(path, sep="\t")["s"].sum())


def _joined(values: Sequence[float]) -> str:
    return ";".join(f"{v:.4f}" for v in values)


def ablations_table(params: Mapping, folds: Sequence[int], check_params: bool = True) -> pd.DataFrame:
    """One row per setting and network; paths are relative to the working directory."""
    ds, protocol = params["ablations"]["dataset"], params["ablations"]["protocol"]
    scores: dict[tuple[str, str, str], pd.DataFrame] = {}
    for setting in settings(params):
        for method in setting.methods:
            rows = []
            for fold in folds:
                directory = fold_dir(setting.overrides, ds, protocol, fold, params["seeds"][0], method)
                with open(f"{directory}/metrics.json") as handle:
                    m = json.load(handle)
                if check_params and method == METHOD:
                    check_fold_params(params, setting, directory, ds)
                elif check_params:
                    check_flow_fold(params, setting, m, directory, ds)
                plain = m.get("unjittered") or {}
                rows.append({"fold": fold, "accuracy": m["accuracy"], "uf1": m["uf1"], "uar": m["uar"],
                             "test_views": m.get("test_views"), "accuracy_unjittered": plain.get("accuracy", np.nan)})
            scores[setting.family, setting.name, method] = pd.DataFrame(rows)

    table = []
    for setting, method in ((s, m) for s in settings(params) for m in s.methods):
        own = scores[setting.family, setting.name, method]
        ref = scores[setting.family, reference(params, setting.family).name, method]
        jobs = rerun_jobs(params, setting, folds, method)
        counts = {stage: sum(s == stage for s, _ in jobs)
                  for stage in (FLOW, "flownet_folds", "flownet", *STAGE_ORDER)}
        row = {"family": setting.family, "setting": setting.name, "method": method,
               "reference": setting.is_reference,
               "overrides": canonical_json(dict(setting.overrides)) if setting.overrides else "",
               "dataset": ds, "protocol": protocol, "folds": len(own)}
        for metric in ("accuracy", "uf1", "uar"):
            row[f"{metric}_mean"] = float(own[metric].mean())
            row[f"{metric}_std"] = float(own[metric].std(ddof=1)) if len(own) > 1 else 0.0
        # Table 2's k-fold interval (the corrected resampled t); none for leave-one-subject-out, whose
        # headline pools the predictions (the table shows the per-fold spread there).
        k = kfold_k(protocol)
        interval = fold_interval(own["accuracy"], 1 / (k - 1)) if k else (np.nan, np.nan)
        row["accuracy_low"], row["accuracy_high"] = np.clip(interval, 0.0, 1.0).tolist()
        # The scores above are each clip's mean over its own store's views (a "1 copy" setting: 1 view);
        # the unjittered view is the same input in every jitter setting, so it compares them alike.
        row["test_views"] = own["test_views"].iloc[0]
        row["accuracy_unjittered_mean"] = float(own["accuracy_unjittered"].mean())
        row["accuracy_unjittered_std"] = float(own["accuracy_unjittered"].std(ddof=1)) if len(own) > 1 else 0.0
        row["delta_accuracy"] = float((own["accuracy"] - ref["accuracy"]).mean())
        row["p_wilcoxon"] = np.nan if setting.is_reference else wilcoxon_p(own["accuracy"], ref["accuracy"])
        for metric in ("accuracy", "uf1", "uar"):
            row[f"fold_{metric}"] = _joined(own[metric])
        row["stages_rerun"] = " ".join(f"{stage}x{n}" if n > 1 else stage for stage, n in counts.items() if n)
        row["seconds"] = round(sum(benchmark_seconds(b) for _, b in jobs), 1)
        table.append(row)
    return pd.DataFrame(table)


def ablations_stage(params: Mapping, folds_csv: str | os.PathLike, out_csv: str | os.PathLike,
                    out_html: str | os.PathLike, figures_dir: str | os.PathLike) -> None:
    """results/ablations.csv, results/ablations.html and one PNG per family in figures_dir."""
    from pipeline.artifacts import atomic_directory
    from pipeline.figures import ablation_figure, png_bytes
    from pipeline.protocols import fold_numbers
    from pipeline.report import ablations_page
    table = ablations_table(params, fold_numbers(Path(folds_csv)))
    figures = {family: png_bytes(ablation_figure(table[table["family"] == family]))
               for family in dict.fromkeys(table["family"])}
    with atomic_output(out_csv) as tmp:
        table.to_csv(tmp, index=False, float_format="%.6g")
    with atomic_directory(figures_dir) as tmp_dir:
        for family, png in figures.items():
            (tmp_dir / f"{family}.png").write_bytes(png)
    with atomic_output(out_html) as tmp:
        tmp.write_text(ablations_page(table, figures))
    print(table[["family", "setting", "method", "accuracy_mean", "accuracy_std", "p_wilcoxon", "seconds"]].to_string())
