"""The ablation grid's jobs as `merflow stage ablation_* / ablations` runs them for DVC (Snakemake runs the
same stage functions from ablations.smk, through workflow/scripts/stage.py).

A job runs the stage table's magnify, tensors, train or flow entry, or a flow network's entries
(`{method}_folds`, `{method}`), on the grid's paths (pipeline/stages.py), with the params of its setting's
key (pipeline/ablations.py), and records its wall time in the benchmark file Snakemake's `benchmark:` would
write, which the ablation table reads. This module is kept apart
from pipeline/ablations.py so that the table's code dependencies are the table's own code, not every stage's.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping

import pandas as pd

from pipeline import ablations, paths
from pipeline.artifacts import atomic_output
from pipeline.errors import MerflowError
from pipeline.runner import call_stage
from pipeline.stages import EPOCH_FILES, STAGES, TRAIN_FILES, fold_outputs

DVC_STAGES = ("ablation_magnify", "ablation_tensors", "ablation_train", "ablation_flow", "ablation_flownet_folds",
              "ablation_flownet", "ablations")


def write_benchmark(path: str | os.PathLike, seconds: float) -> None:
    """A benchmark file as Snakemake's `benchmark:` writes it (the columns the table reads)."""
    with atomic_output(path) as tmp:
        pd.DataFrame({"s": [round(seconds, 4)], "h:m:s": [f"{int(seconds // 3600)}:{int(seconds % 3600 // 60):02d}:"
                                                          f"{seconds % 60:06.3f}"]}).to_csv(tmp, sep="\t", index=False)


def flownet_files(params: Mapping, method: str, key: str, ds: str, protocol: str,
                  fold: int | None) -> dict[str, str]:
    """The files of a flow network's job on a flow setting: every fold together (fold None) or one fold."""
    flow = {"flow_h5": paths.ABLATION_FLOW.format(ds=ds, key=key),
            "folds_csv": paths.FOLDS.format(ds=ds, protocol=protocol)}
    store = ablations.flownet_store(key, ds, protocol, method)
    if fold is None:
        return {**flow, "out_h5": store}
    fold_dir = paths.ABLATION_FLOWNET_FOLD_DIR.format(ds=ds, protocol=protocol, key=key, method=method, fold=fold)
    return {**flow, **({"trained_h5": store} if params[method]["folds_together"] else {}),
            **fold_outputs(fold_dir, EPOCH_FILES)}


def job_files(params: Mapping, stage: str, key: str, ds: str, protocol: str, fold: int | None) -> dict[str, str]:
    """The named inputs and outputs of one ablation job of the RCNN's stages or the flow stage (the names of the
    stage table's entry)."""
    overrides = ablations.overrides_for_key(params, key)
    if stage == "flow":
        return {"aligned_h5": paths.ALIGNED.format(ds=ds), "out_h5": paths.ABLATION_FLOW.format(ds=ds, key=key),
                "qc_dir": paths.ABLATION_FLOW_QC.format(ds=ds, key=key),
                "apex_csv": paths.ABLATION_APEX_SPOTTING.format(ds=ds, key=key)}
    if stage == "magnify":
        return {"aligned_h5": paths.ALIGNED.format(ds=ds), "out_h5": paths.ABLATION_MAGNIFIED.format(ds=ds, key=key),
                "qc_dir": paths.ABLATION_MAGNIFY_QC.format(ds=ds, key=key)}
    if stage == "tensors":
        return {"magnified_h5": ablations.magnified_path(overrides, ds),
                "out_h5": paths.ABLATION_TENSORS.format(ds=ds, key=key)}
    fold_dir = paths.ABLATION_FOLD_DIR.format(ds=ds, protocol=protocol, key=key, fold=fold)
    return {"tensors_h5": ablations.tensors_path(overrides, ds),
            "folds_csv": paths.FOLDS.format(ds=ds, protocol=protocol), **fold_outputs(fold_dir, TRAIN_FILES)}


def run_ablation_stage(params: Mapping, stage: str, *, ds: str | None = None, protocol: str | None = None,
                       fold: int | None = None, key: str | None = None, method: str | None = None) -> None:
    """One ablation job, as the ablations.smk rule of the same name runs it, timed into its benchmark file."""
    ablations.validate_ablations(params)
    ds = ds or params["ablations"]["dataset"]
    protocol = protocol or params["ablations"]["protocol"]
    if stage == "ablations":
        ablations.ablations_stage({s: params[s] for s in ablations.PARAM_SECTIONS},
                                  paths.FOLDS.format(ds=ds, protocol=protocol), paths.ABLATIONS,
                                  paths.ABLATIONS_REPORT, paths.ABLATION_FIGURES)
        return
    if stage not in DVC_STAGES:
        raise ValueError(f"unknown ablation stage '{stage}'")
    if key is None:
        raise MerflowError(f"merflow stage {stage} needs --key")
    if stage in ("ablation_train", "ablation_flownet") and fold is None:
        raise MerflowError(f"merflow stage {stage} needs --fold")
    base = stage.removeprefix("ablation_")
    if base.startswith("flownet"):
        if method not in ablations.FLOW_NETWORKS:
            raise MerflowError(f"merflow stage {stage} needs --method, one of {', '.join(ablations.FLOW_NETWORKS)}")
        entry = STAGES[f"{method}_folds" if base == "flownet_folds" else method]
        files = flownet_files(params, method, key, ds, protocol, None if base == "flownet_folds" else fold)
    else:
        entry, files = STAGES[base], job_files(params, base, key, ds, protocol, fold)
    started = time.perf_counter()
    wildcards = {"ds": ds, "protocol": protocol, "fold": fold, "seed": params["seeds"][0]}
    call_stage(entry, files, {w: v for w, v in wildcards.items() if w in entry.wildcards},
               ablations.ablation_stage_params(params, entry.name, key, ds))
    bench = paths.ABLATION_BENCHMARKS[base].format(ds=ds, protocol=protocol, key=key, fold=fold, method=method)
    write_benchmark(bench, time.perf_counter() - started)
