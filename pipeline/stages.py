"""The stages of the pipeline in one table: what each reads and writes, which function it runs with which
arguments, which params it depends on, and (computed) which source files.

Everything that runs or describes a stage reads `STAGES`:

- the Snakemake rules (workflow/rules/*.smk) are written by hand with the same names, inputs and outputs
  (tests/test_dvc.py keeps them in step) and all run workflow/scripts/stage.py, which calls
  `run_snakemake_job`;
- `merflow stage NAME` (the command every DVC stage runs) calls `run_stage`;
- `merflow dvc-yaml` (pipeline/dvcgen.py) writes each stage's deps, outs and params from its entry;
- `merflow audit` (pipeline/audit.py) checks each stage's `audit` output;
- the ablation grid (pipeline/ablations.py) runs the magnify, tensors and train entries on its own paths.

A stage's function is called as `function(*args, **keywords, **stage_params(...))`: `args` and
`keywords` name the stage's inputs, outputs and wildcards (`fold_dir` is the folder of a per-fold
stage's outputs), and pipeline.config.stage_params gives exactly the params the stage reads. Its code
dependencies are the modules its function's module imports, followed transitively (imports inside
functions too), plus the data files named in `data`; editing one reruns the stage.

Adding a stage is one entry here, one rule in workflow/rules/ and the function (docs/architecture.md).
"""

from __future__ import annotations

import ast
import functools
import importlib
import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pipeline import paths
from pipeline.artifacts import params_sha256, write_sidecar
from pipeline.baselines import BASELINES, FLOWNETS, HANDCRAFTED, TRAINED, any_method_runs, methods_to_run, seeds_of
from pipeline.config import built_datasets, composite_sources, composites, stage_params
from pipeline.protocols import fold_numbers, planned_folds

PACKAGE_ROOT = Path(__file__).resolve().parent.parent


@dataclass(frozen=True)
class PerDataset:
    """An input of a stage that gathers every dataset: the template expanded over params' datasets (only
    when one of `needed_by` runs, if given: the flow stage's QC for the report)."""
    template: str
    needed_by: tuple[str, ...] = ()


@dataclass(frozen=True)
class PerSource:
    """An input of a composite's stage: the template expanded over the composite's source datasets."""
    template: str


@dataclass(frozen=True)
class FoldFiles:
    """An input that gathers every fold's `name` file of the methods that run (per dataset and protocol)."""
    name: str


@dataclass(frozen=True)
class ParamFile:
    """An input whose path is a param (dotted key), present only when the param is set."""
    key: str


Input = str | PerDataset | PerSource | FoldFiles | ParamFile


@dataclass(frozen=True)
class Stage:
    name: str
    function: str                       # "module:function"
    inputs: Mapping[str, Input]         # name -> path template ({ds}, {layout}, {protocol}, {method}, {seed}, {fold},
                                        # {root})
    outputs: Mapping[str, str]
    args: tuple[str, ...]               # positional arguments, by input, output or wildcard name
    wildcards: tuple[str, ...] = ()
    params: tuple[str, ...] = ()        # the params keys it reads, for DVC ({ds}, {mapping}: a dataset's)
    keywords: Mapping[str, str] = field(default_factory=dict)   # keyword argument -> input/output/wildcard
    audit: str | None = None            # the output `merflow audit` checks (default: the first)
    data: tuple[str, ...] = ()          # data files the code reads (a code dependency too)
    needed_by: tuple[str, ...] = ()     # methods that need it: it runs only when one of them runs (none: always)
    applies_to: str | None = None       # of a per-dataset stage: "tree" (datasets read from a tree, composites'
                                        # sources included) or "composite" (composites only); None: every dataset

    @property
    def audited(self) -> str:
        return self.audit or next(iter(self.outputs))

    def records_params(self) -> bool:
        """Whether the audited artifact records its provenance itself (HDF5 stores and model.pt); every
        other stage's is written beside it (pipeline.artifacts.write_sidecar)."""
        return self.audited in ("h5", "model")


def _fold_outputs(method: str, names: Sequence[str]) -> dict[str, str]:
    return {name.split(".")[0]: f"{paths.FOLD_DIR.replace('{method}', method)}/{name}" for name in names}


TRAIN_FILES = ("model.pt", "predictions.csv", "metrics.json", "train_log.csv")
BASELINE_FILES = ("predictions.csv", "metrics.json")
FOLD_ARGS = ("folds", "fold", "fold_dir")

STAGES: dict[str, Stage] = {stage.name: stage for stage in [
    Stage("synth", "pipeline.datasets.synth_layouts:generate_synthetic", {}, {"tree": paths.SYNTH_DIR},
          ("layout", "tree"), ("layout",), ("synth",)),
    Stage("index", "pipeline.index:index_stage", {"root": "{root}"},
          {"index": paths.INDEX, "excluded": paths.EXCLUDED}, ("index", "excluded"), ("ds",),
          ("dataset.{ds}", "mappings.{mapping}", "index"), data=("pipeline/datasets/corrections.csv",),
          applies_to="tree"),
    Stage("align", "pipeline.faces:align_stage", {"index": paths.INDEX},
          {"h5": paths.ALIGNED, "qc": paths.ALIGN_QC}, ("index", "h5", "qc"), ("ds",), ("align",), applies_to="tree"),
    # A composite (pipeline/composite.py) has its own index and aligned store, made from its sources'; the
    # stages from magnify on run on it as on any dataset.
    Stage("composite_index", "pipeline.composite:composite_index_stage", {"source_indexes": PerSource(paths.INDEX)},
          {"index": paths.INDEX, "excluded": paths.EXCLUDED}, ("source_indexes", "index", "excluded"), ("ds",),
          ("dataset.{ds}", "mappings.{mapping}", "dataset"), data=("pipeline/datasets/megc2019.csv",),
          applies_to="composite"),
    Stage("composite_aligned", "pipeline.composite:composite_aligned_stage",
          {"index": paths.INDEX, "aligned": PerSource(paths.ALIGNED), "align_qc": PerSource(paths.ALIGN_QC)},
          {"h5": paths.ALIGNED, "qc": paths.ALIGN_QC}, ("index", "aligned", "align_qc", "h5", "qc"), ("ds",),
          ("dataset.{ds}",), applies_to="composite"),
    Stage("magnify", "pipeline.evm:magnify_stage", {"aligned": paths.ALIGNED},
          {"h5": paths.MAGNIFIED, "qc": paths.MAGNIFY_QC}, ("aligned", "h5", "qc"), ("ds",),
          ("magnify", "align.eye_y")),
    Stage("tensors", "pipeline.jitter:tensors_stage", {"magnified": paths.MAGNIFIED}, {"h5": paths.TENSORS},
          ("magnified", "h5"), ("ds",), ("tensors", "mappings.{mapping}.classes")),
    Stage("folds", "pipeline.protocols:folds_stage", {"index": paths.INDEX}, {"folds": paths.FOLDS},
          ("index", "folds"), ("ds", "protocol"), ("folds",), keywords={"protocol": "protocol"}),
    Stage("train", "pipeline.train:train_fold_stage", {"tensors": paths.TENSORS, "folds": paths.FOLDS},
          _fold_outputs("{method}", TRAIN_FILES), ("tensors", *FOLD_ARGS), ("ds", "protocol", "method", "seed", "fold"),
          ("train",), audit="model"),
    *(Stage(method, f"pipeline.baselines.stage:{method}_fold_stage", {"aligned": paths.ALIGNED, "folds": paths.FOLDS},
            _fold_outputs(method, BASELINE_FILES), ("aligned", *FOLD_ARGS), ("ds", "protocol", "seed", "fold"),
            (method, "svm", "mappings.{mapping}.classes"), audit="metrics") for method in HANDCRAFTED),
    Stage("cnn", "pipeline.baselines.frame_cnns:cnn_fold_stage", {"aligned": paths.ALIGNED, "folds": paths.FOLDS},
          _fold_outputs("cnn", BASELINE_FILES), ("aligned", *FOLD_ARGS), ("ds", "protocol", "seed", "fold"),
          ("cnn", "mappings.{mapping}.classes"), audit="metrics"),
    Stage("pretrained_cnn", "pipeline.baselines.frame_cnns:pretrained_cnn_fold_stage",
          {"aligned": paths.ALIGNED, "folds": paths.FOLDS, "weights": ParamFile("pretrained_cnn.weights")},
          _fold_outputs("pretrained_cnn", BASELINE_FILES), ("aligned", *FOLD_ARGS), ("ds", "protocol", "seed", "fold"),
          ("pretrained_cnn", "mappings.{mapping}.classes"), audit="metrics"),
    Stage("flow", "pipeline.flow:flow_stage", {"aligned": paths.ALIGNED},
          {"h5": paths.FLOW, "qc": paths.FLOW_QC, "apex_spotting": paths.APEX_SPOTTING},
          ("aligned", "h5", "qc", "apex_spotting"), ("ds",), ("flow",), needed_by=FLOWNETS),
    *(Stage(method, f"pipeline.baselines.flownets:{method}_fold_stage", {"flow": paths.FLOW, "folds": paths.FOLDS},
            _fold_outputs(method, BASELINE_FILES), ("flow", *FOLD_ARGS), ("ds", "protocol", "seed", "fold"),
            (method, "mappings.{mapping}.classes"), audit="metrics") for method in FLOWNETS),
    Stage("aggregate", "pipeline.aggregate:aggregate_stage", {"metrics": FoldFiles("metrics.json")},
          {"table": paths.RUN_TABLE2, "metrics_json": paths.RUN_METRICS, "fold_metrics": paths.RUN_FOLD_METRICS},
          ("metrics", "table"), params=("datasets", "protocols", "methods", "dataset.{ds}", "pretrained_cnn.weights",
                                        "aggregate"),
          keywords={"metrics_json": "metrics_json", "folds_csv": "fold_metrics"}),
    Stage("report", "pipeline.report:report_stage",
          {"table": paths.RUN_TABLE2, "metrics": FoldFiles("metrics.json"),
           "predictions": FoldFiles("predictions.csv"),
           "align_qc": PerDataset(paths.ALIGN_QC), "magnify_qc": PerDataset(paths.MAGNIFY_QC),
           "tensors": PerDataset(paths.TENSORS), "index": PerDataset(paths.INDEX),
           "flow_qc": PerDataset(paths.FLOW_QC, FLOWNETS), "apex_spotting": PerDataset(paths.APEX_SPOTTING, FLOWNETS)},
          {"report": paths.RUN_REPORT, "figures": paths.RUN_FIGURES},
          ("table", "metrics", "predictions", "align_qc", "magnify_qc", "report"),
          keywords={"tensors_paths": "tensors", "index_paths": "index", "figures_dir": "figures",
                    "flow_qc_dirs": "flow_qc", "apex_paths": "apex_spotting"}),
    # The run of the current params (its folder named by run_key), copied to the paths users read.
    Stage("publish", "pipeline.runs:publish_stage",
          {"run_table": paths.RUN_TABLE2, "run_metrics_json": paths.RUN_METRICS,
           "run_fold_metrics": paths.RUN_FOLD_METRICS, "run_report": paths.RUN_REPORT,
           "run_figures": paths.RUN_FIGURES},
          {"table": paths.TABLE2, "metrics_json": paths.METRICS, "fold_metrics": paths.FOLD_METRICS,
           "report": paths.REPORT, "figures": paths.FIGURES},
          ("run_table", "run_metrics_json", "run_fold_metrics", "run_report", "run_figures",
           "table", "metrics_json", "fold_metrics", "report", "figures")),
]}
assert set(BASELINES) <= set(STAGES)
assert all(not set(s.inputs) & set(s.outputs) for s in STAGES.values()), "input and output names must differ"


# --- resolving a stage's files -------------------------------------------------------------------------

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
    """Every fold's `name` file (metrics.json, predictions.csv) of the datasets, protocols, methods and seeds
    of params that run (not the pre-trained CNN without weights)."""
    return [f"{paths.FOLD_DIR}/{name}".format(ds=ds, protocol=protocol, method=method, seed=seed, fold=fold)
            for ds in params["datasets"] for protocol in params["protocols"] for method in methods_to_run(params)
            for seed in seeds_of(params, method) for fold in fold_numbers_of(params, ds, protocol, folds_of)]


def param_value(params: Mapping, dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def template_values(params: Mapping, wildcards: Mapping[str, Any], stage: Stage) -> dict[str, Any]:
    """The values a stage's templates may name: the wildcards, a dataset's root and the run (unless given)."""
    values = dict(wildcards)
    if "ds" in values and "root" not in values and "root" in params["dataset"].get(values["ds"], {}):
        values["root"] = params["dataset"][values["ds"]]["root"]
    templates = [t if isinstance(t, str) else getattr(t, "template", "") for t in (*stage.inputs.values(),
                                                                                  *stage.outputs.values())]
    if "run" not in values and any("{run}" in t for t in templates):
        values["run"] = run_key(params)
    return values


def input_files(stage: Stage, params: Mapping, wildcards: Mapping[str, Any],
                folds_of: FoldsOf = saved_fold_numbers) -> dict[str, str | list[str] | None]:
    """name -> path (a list of paths for a gathering input; None for an unset ParamFile) of a stage's inputs."""
    values = template_values(params, wildcards, stage)
    files: dict[str, str | list[str] | None] = {}
    for name, value in stage.inputs.items():
        if isinstance(value, PerDataset):
            needed = not value.needed_by or any_method_runs(params, value.needed_by)
            files[name] = [value.template.format(ds=ds) for ds in params["datasets"]] if needed else []
        elif isinstance(value, PerSource):
            files[name] = [value.template.format(ds=source) for source in composite_sources(params, values["ds"])]
        elif isinstance(value, FoldFiles):
            files[name] = fold_files(params, value.name, folds_of)
        elif isinstance(value, ParamFile):
            files[name] = param_value(params, value.key) or None
        else:
            files[name] = value.format(**values)
    return files


def input_paths(stage: Stage, params: Mapping, wildcards: Mapping[str, Any],
                folds_of: FoldsOf = saved_fold_numbers) -> list[str]:
    """Every input path of a stage instance in one list (gathering inputs' paths in turn, an unset
    ParamFile left out): a DVC stage's deps, the files an artifact's record should list."""
    paths_: list[str] = []
    for value in input_files(stage, params, wildcards, folds_of).values():
        paths_.extend(value if isinstance(value, list) else [] if value is None else [value])
    return paths_


def output_files(stage: Stage, params: Mapping, wildcards: Mapping[str, Any]) -> dict[str, str]:
    values = template_values(params, wildcards, stage)
    return {name: template.format(**values) for name, template in stage.outputs.items()}


def stage_files(stage: Stage, params: Mapping, wildcards: Mapping[str, Any],
                folds_of: FoldsOf = saved_fold_numbers) -> dict[str, Any]:
    """name -> path (or list of paths) of a stage's inputs and outputs for one set of wildcard values."""
    return {**input_files(stage, params, wildcards, folds_of), **output_files(stage, params, wildcards)}


# --- running a stage -----------------------------------------------------------------------------------

def stage_function(stage: Stage) -> Callable[..., None]:
    module, name = stage.function.split(":")
    return getattr(importlib.import_module(module), name)


def call_stage(stage: Stage, files: Mapping[str, Any], wildcards: Mapping[str, Any], kwargs: Mapping[str, Any],
               runner: Callable[..., None] | None = None) -> None:
    """Call the stage's function with its files and wildcards as the table says (through `runner`, e.g.
    pipeline.runner.run_logged with its log file bound, when given)."""
    values: dict[str, Any] = {name: Path(value) if isinstance(value, str) else value for name, value in files.items()}
    values.update({name: int(value) if name in ("fold", "seed") else str(value) for name, value in wildcards.items()})
    if "metrics" in stage.outputs and "fold" in wildcards:
        values["fold_dir"] = Path(files["metrics"]).parent
    args = [values[name] for name in stage.args]
    keywords = {key: values[name] for key, name in stage.keywords.items()}
    function = stage_function(stage)
    if runner is None:
        function(*args, **keywords, **kwargs)
    else:
        runner(function, *args, **keywords, **kwargs)
    if not stage.records_params():          # a CSV, JSON, HTML or folder: its record beside it
        recorded = {**kwargs, **({"fold": values["fold"]} if "fold" in wildcards else {})}
        write_sidecar(files[stage.audited], stage.name, recorded,
                      {name: _paths(files[name]) for name in stage.inputs})


def _paths(value: Any) -> str | list[str] | None:
    """An input as call_stage got it (a path, a list of paths, Snakemake's named list, or None) as str or
    list of str."""
    if value is None or isinstance(value, str | os.PathLike):
        return None if value is None else os.fspath(value)
    return [os.fspath(v) for v in value]


def run_stage(params: Mapping, stage: str, *, ds: str | None = None, protocol: str | None = None,
              method: str | None = None, seed: int | None = None, fold: int | None = None) -> None:
    """Run one stage for one dataset (and protocol, method, seed, fold where they apply), as Snakemake would.
    A per-fold stage's seed defaults to the one its method runs with first (seeds_of)."""
    entry = STAGES[stage]
    if seed is None and "seed" in entry.wildcards:
        seed = seeds_of(params, method or stage)[0]
    given = {"layout": ds, "ds": ds, "protocol": protocol, "method": method, "seed": seed, "fold": fold}
    missing = [name for name in entry.wildcards if given[name] is None]
    if missing:
        from pipeline.errors import ParamsError
        flags = {"layout": "--dataset", "ds": "--dataset"}
        raise ParamsError(f"merflow stage {stage} needs {', '.join(flags.get(n, '--' + n) for n in missing)}")
    wildcards = {name: given[name] for name in entry.wildcards}
    call_stage(entry, stage_files(entry, params, wildcards), wildcards,
               stage_params(params, stage, ds=ds, method=method, seed=seed))


def base_stage(rule: str) -> Stage:
    """The table entry a Snakemake rule runs (an ablation_* rule runs its stage on the grid's paths)."""
    return STAGES[rule.removeprefix("ablation_")]


def run_snakemake_job(smk: Any) -> None:
    """What workflow/scripts/stage.py does: the rule's stage on the rule's named files, logged."""
    from pipeline.runner import run_logged
    stage = base_stage(smk.rule)
    files = {**dict(smk.input.items()), **dict(smk.output.items())}
    wildcards = {name: value for name, value in smk.wildcards.items() if name in stage.wildcards}
    call_stage(stage, files, wildcards, smk.params.p, runner=functools.partial(run_logged, smk.log[0]))


# --- code dependencies, from the imports ---------------------------------------------------------------

def _module_file(module: str) -> Path | None:
    path = PACKAGE_ROOT.joinpath(*module.split("."))
    for candidate in (path / "__init__.py", path.with_suffix(".py")):
        if candidate.is_file():
            return candidate
    return None


def _imported_modules(file: Path, module: str) -> set[str]:
    """The pipeline modules a source file imports anywhere (at the top or inside a function)."""
    package = module if file.name == "__init__.py" else module.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(file.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[:len(package.split(".")) - node.level + 1]
                base = ".".join([*parent, *([base] if base else [])])
            found |= {base, *(f"{base}.{alias.name}" for alias in node.names)}
    return {name for name in found if name.split(".")[0] == "pipeline"}


@functools.cache
def module_closure(module: str) -> tuple[str, ...]:
    """The source files of `module` and of every pipeline module it imports, transitively (subpackages'
    __init__ files included), relative to the repository root."""
    seen: dict[str, Path] = {}
    todo = [module]
    while todo:
        parts = todo.pop().split(".")
        for end in range(1, len(parts) + 1):
            name = ".".join(parts[:end])
            file = _module_file(name)
            if file is not None and name not in seen:
                seen[name] = file
                todo.extend(_imported_modules(file, name))
    # pipeline/__init__.py holds only the version, which every artifact records: a new version is no edit.
    return tuple(sorted(os.fspath(file.relative_to(PACKAGE_ROOT)) for name, file in seen.items() if name != "pipeline"))


def code_deps(stage: str | Stage) -> list[str]:
    """The source and data files a stage runs, relative to the repository root."""
    entry = STAGES[stage] if isinstance(stage, str) else stage
    return [*module_closure(entry.function.split(":")[0]),
            *(path for path in entry.data if (PACKAGE_ROOT / path).exists())]


# --- every instance of a stage -------------------------------------------------------------------------

def wildcard_values(stage: Stage, params: Mapping, folds_of: FoldsOf = saved_fold_numbers) -> list[dict[str, Any]]:
    """Every set of wildcard values the stage runs with under params, in order."""
    if stage.needed_by and not any_method_runs(params, stage.needed_by):
        return []
    names = stage_datasets(stage, params)
    if stage.wildcards == ("layout",):
        return [{"layout": layout} for layout in synthetic_layouts(params)]
    instances: list[dict[str, Any]] = [{}]
    for wildcard in stage.wildcards:
        if wildcard == "ds":
            instances = [{**i, "ds": ds} for i in instances for ds in names]
        elif wildcard == "protocol":
            instances = [{**i, "protocol": p} for i in instances for p in params["protocols"]]
        elif wildcard == "method":
            instances = [{**i, "method": m} for i in instances for m in methods_to_run(params) if m in TRAINED]
        elif wildcard == "seed":
            instances = [{**i, "seed": s} for i in instances for s in seeds_of(params, i.get("method", stage.name))]
        elif wildcard == "fold":
            instances = [{**i, "fold": f} for i in instances
                         for f in fold_numbers_of(params, i["ds"], i["protocol"], folds_of)]
    if "fold" in stage.wildcards and stage.name in BASELINES and stage.name not in methods_to_run(params):
        return []
    return instances


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
            "seeds": {method: seeds_of(params, method) for method in methods_to_run(params)},
            "deciding": deciding}


def run_key(params: Mapping) -> str:
    """The name of the run folder of params (results/runs/{run}): a hash of `run_plan`. Any change of plan
    gives a folder that does not exist yet, so its Table 2 and report are always made, never an older
    plan's left in place."""
    return params_sha256(run_plan(params))[:12]
