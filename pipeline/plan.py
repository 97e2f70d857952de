"""What runs under params: every instance of each stage of the table (pipeline/stages.py), its files, and
the run folder that one configuration's Table 2 and report are made in.

DVC's stages (pipeline/dvcgen.py), `merflow audit` and `merflow stage` resolve a stage's paths here; the
Snakemake rules resolve the same templates themselves (workflow/rules/common.smk), wildcards by pattern.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from pipeline import paths
from pipeline.artifacts import params_sha256
from pipeline.baselines import BASELINES, TRAINED, any_method_runs, methods_to_run, rows_to_run, seeds_of
from pipeline.config import built_datasets, composite_sources, composites
from pipeline.protocols import fold_numbers, planned_folds
from pipeline.stages import (
    STAGES,
    Dependency,
    FoldFiles,
    IfParam,
    ParamFile,
    PerDataset,
    PerSource,
    Stage,
    output_template,
    param_value,
    stage_params,
)

FoldsOf = Callable[[str, str], Sequence[int]]   # (ds, protocol) -> its fold numbers, read from the data


def saved_fold_numbers(ds: str, protocol: str) -> list[int]:
    """The folds of a dataset and protocol, from its saved folds file."""
    return fold_numbers(Path(paths.FOLDS.format(ds=ds, protocol=protocol)))


def fold_numbers_of(params: Mapping, ds: str, protocol: str, folds_of: FoldsOf = saved_fold_numbers) -> list[int]:
    """The folds of a dataset and protocol: a k-fold protocol's are known from params alone (k times the
    repeats, before any data is read); leave-one-subject-out's, one per subject, come from `folds_of`
    (the saved folds file; Snakemake's folds checkpoint)."""
    planned = planned_folds(protocol, params["folds"].get("repeats", 1))
    return planned if planned is not None else list(folds_of(ds, protocol))


def fold_files(params: Mapping, name: str, folds_of: FoldsOf = saved_fold_numbers) -> list[str]:
    """Every fold's `name` file (metrics.json, predictions.csv) of the datasets, protocols, rows (methods and
    their epoch selections) and seeds of params that run (not the pre-trained CNN without weights)."""
    return [f"{paths.FOLD_DIR}/{name}".format(ds=ds, protocol=protocol, method=method, seed=seed, fold=fold)
            for ds in params["datasets"] for protocol in params["protocols"] for method in rows_to_run(params)
            for seed in seeds_of(params, method) for fold in fold_numbers_of(params, ds, protocol, folds_of)]


# --- a stage instance's files ----------------------------------------------------------------------------

def template_values(params: Mapping, wildcards: Mapping[str, Any], stage: Stage) -> dict[str, Any]:
    """The values a stage's templates may name: the wildcards, a dataset's root and the run (unless given)."""
    values = dict(wildcards)
    if "ds" in values and "root" not in values and "root" in params["dataset"].get(values["ds"], {}):
        values["root"] = params["dataset"][values["ds"]]["root"]
    if "run" not in values and any("{run}" in template for template in templates(stage)):
        values["run"] = run_key(params)
    return values


def templates(stage: Stage) -> list[str]:
    """Every path template of a stage's inputs and outputs."""
    found = []
    for value in stage.inputs.values():
        value = value.input if isinstance(value, Dependency) else value
        found.append(value if isinstance(value, str) else getattr(value, "template", ""))
    return [*found, *map(output_template, stage.outputs.values())]


def input_file(value: Any, params: Mapping, values: Mapping[str, Any],
               folds_of: FoldsOf = saved_fold_numbers) -> str | list[str] | None:
    """One input's path (a list of paths for a gathering input; None for an unset ParamFile)."""
    if isinstance(value, Dependency):
        return input_file(value.input, params, values, folds_of)
    if isinstance(value, PerDataset):
        needed = not value.needed_by or any_method_runs(params, value.needed_by)
        return [value.template.format(ds=ds) for ds in params["datasets"]] if needed else []
    if isinstance(value, PerSource):
        return [value.template.format(ds=source) for source in composite_sources(params, values["ds"])]
    if isinstance(value, FoldFiles):
        return fold_files(params, value.name, folds_of)
    if isinstance(value, ParamFile):
        return param_value(params, value.key) or None
    if isinstance(value, IfParam):
        return value.template.format(**values) if param_value(params, value.key) else None
    return value.format(**values)


def input_files(stage: Stage, params: Mapping, wildcards: Mapping[str, Any],
                folds_of: FoldsOf = saved_fold_numbers) -> dict[str, str | list[str] | None]:
    """name -> path (a list of paths for a gathering input; None for an unset ParamFile) of a stage's inputs."""
    values = template_values(params, wildcards, stage)
    return {name: input_file(value, params, values, folds_of) for name, value in stage.inputs.items()}


def input_paths(stage: Stage, params: Mapping, wildcards: Mapping[str, Any],
                folds_of: FoldsOf = saved_fold_numbers) -> list[str]:
    """Every input path of a stage instance in one list (gathering inputs' paths in turn, an unset
    ParamFile left out): a DVC stage's deps, the files an artifact's record should list."""
    found: list[str] = []
    for value in input_files(stage, params, wildcards, folds_of).values():
        found.extend(value if isinstance(value, list) else [] if value is None else [value])
    return found


def output_files(stage: Stage, params: Mapping, wildcards: Mapping[str, Any]) -> dict[str, str]:
    values = template_values(params, wildcards, stage)
    return {name: output_template(output).format(**values) for name, output in stage.outputs.items()}


def stage_files(stage: Stage, params: Mapping, wildcards: Mapping[str, Any],
                folds_of: FoldsOf = saved_fold_numbers) -> dict[str, Any]:
    """name -> path (or list of paths) of a stage's inputs and outputs for one set of wildcard values."""
    return {**input_files(stage, params, wildcards, folds_of), **output_files(stage, params, wildcards)}


# --- every instance of a stage -------------------------------------------------------------------------

def wildcard_values(stage: Stage, params: Mapping, folds_of: FoldsOf = saved_fold_numbers) -> list[dict[str, Any]]:
    """Every set of wildcard values the stage runs with under params, in order."""
    if stage.needed_by and not any_method_runs(params, stage.needed_by):
        return []
    if stage.when and not param_value(params, stage.when):
        return []
    row = stage.row or (stage.name if stage.name in BASELINES else None)
    if row is not None and "{" not in row and row not in rows_to_run(params):
        return []
    choices: dict[str, Callable[[dict[str, Any]], list[Any]]] = {
        "layout": lambda i: synthetic_layouts(params),
        "ds": lambda i: stage_datasets(stage, params),
        "protocol": lambda i: list(params["protocols"]),
        "method": lambda i: trained_methods(stage, params),
        "seed": lambda i: seeds_of(params, i.get("method", stage.method or stage.name)),
        "fold": lambda i: fold_numbers_of(params, i["ds"], i["protocol"], folds_of),
    }
    instances: list[dict[str, Any]] = [{}]
    for wildcard in stage.wildcards:
        instances = [{**i, wildcard: value} for i in instances for value in choices[wildcard](i)]
    return instances


def trained_methods(stage: Stage, params: Mapping) -> list[str]:
    """The RCNN's methods a stage with a {method} wildcard runs for: those listed, and of a row per method
    ({method}-inner) only those whose row runs."""
    running = rows_to_run(params)
    return [m for m in methods_to_run(params) if m in TRAINED
            and (stage.row is None or stage.row.format(method=m) in running)]


def stage_datasets(stage: Stage, params: Mapping) -> list[str]:
    """The datasets a per-dataset stage runs on: those read from a tree (composites' sources included),
    the composites, or every dataset params list."""
    if stage.applies_to == "tree":
        return built_datasets(params)
    if stage.applies_to == "composite":
        return composites(params)
    return list(params["datasets"])


def synthetic_layouts(params: Mapping) -> list[str]:
    """The layouts of the synthetic datasets params read (composites' sources included), each generated once."""
    return sorted({params["dataset"][n]["layout"] for n in built_datasets(params)
                   if params["dataset"][n].get("synthetic")})


# --- the run: which results one configuration's Table 2 and report are made from ------------------------

# The stages whose outputs decide the fold numbers (the clips and subjects a dataset has, its folds).
PLAN_STAGES = ("synth", "index", "composite_index", "folds")


def run_plan(params: Mapping) -> dict[str, Any]:
    """What decides the fold files Table 2 and the report read: the aggregate's params (datasets,
    protocols, methods not run), the seeds of each method that runs, and the params of every instance of
    the stages that decide the folds."""
    deciding = {}
    for name in PLAN_STAGES:
        for wildcards in wildcard_values(STAGES[name], params):
            deciding[" ".join([name, *map(str, wildcards.values())])] = stage_params(params, name,
                                                                                      ds=wildcards.get("ds"))
    return {"aggregate": stage_params(params, "aggregate"),
            "seeds": {method: seeds_of(params, method) for method in rows_to_run(params)},
            "deciding": deciding}


def run_key(params: Mapping) -> str:
    """The name of the run folder of params (results/runs/{run}): a hash of `run_plan`. Any change of plan
    gives a folder that does not exist yet, so its Table 2 and report are always made, never an older
    plan's left in place."""
    return params_sha256(run_plan(params))[:12]
