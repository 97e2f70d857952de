"""The stages of the pipeline in one table: what each reads and writes, which function it runs, and which
params it reads.

Everything that runs or describes a stage reads `STAGES`:

- the Snakemake rules (workflow/rules/*.smk) take their inputs, outputs, params and wildcard constraints
  from the entry of the same name (`stage_inputs("align")`, workflow/rules/common.smk) and add only what
  Snakemake alone needs: log, threads, resources, message;
- `merflow stage NAME` (the command every DVC stage runs) and the rules' script run it with
  pipeline.runner.call_stage;
- `merflow dvc-yaml` (pipeline/dvcgen.py) writes each stage's deps, outs and params keys from its entry;
- `merflow audit` (pipeline/audit.py) checks each stage's audited output against `stage_params`;
- pipeline/plan.py enumerates every instance of a stage and resolves its paths; pipeline/codedeps.py
  finds the source files a stage runs (its code dependencies) from the imports of its function's module.

An entry names its inputs and outputs after its function's parameters: the function is called with every
input and output by name (a `Dependency` input only as a dependency), the wildcards it takes (`fold`,
`protocol`, `layout`), `out_dir` (the folder of a per-fold stage's files) and `stage_params`: the params
it declares, once, in `params`, which also give DVC's params keys.

Adding a stage is its function, one entry here and one short rule in workflow/rules/ (docs/architecture.md).
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from pipeline import paths
from pipeline.baselines import BASELINES, FLOWNETS, HANDCRAFTED
from pipeline.config import aggregate_params, composite_index_params, index_params

# --- inputs and outputs ------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class IfParam:
    """An input present only when a param (dotted key, {method}: the stage's method) is true: a flow
    network's per-fold job reads the folds trained together when `folds_together` says so."""
    key: str
    template: str


@dataclass(frozen=True)
class Dependency:
    """An input the function does not take as an argument (it reads the path through its params): a
    dependency only, so that a new file reruns the stage (a dataset's tree, the CNN's weights)."""
    input: str | ParamFile


Input = str | PerDataset | PerSource | FoldFiles | ParamFile | IfParam | Dependency


@dataclass(frozen=True)
class Folder:
    """An output that is a folder (Snakemake's directory())."""
    template: str


Output = str | Folder


def output_template(output: Output) -> str:
    return output.template if isinstance(output, Folder) else output


# --- the params a stage reads ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Section:
    """A params section passed whole: each of its keys is a keyword argument."""
    key: str


@dataclass(frozen=True)
class Key:
    """One keyword argument read from one params key ({ds} and {mapping}: the dataset's, e.g.
    mappings.{mapping}.classes)."""
    argument: str
    key: str


@dataclass(frozen=True)
class FromWildcard:
    """A keyword argument that is a wildcard's value, recorded with the params (a network's seed, the method
    a training job runs; the seed defaults to the first of `seeds`)."""
    name: str


@dataclass(frozen=True)
class Computed:
    """Keyword arguments a stage computes from several params (pipeline.config: a dataset's index
    params, a composite's, Table 2's), and the keys they read, for DVC."""
    function: Callable[[Mapping, str | None], dict[str, Any]]
    keys: tuple[str, ...]


ParamSpec = Section | Key | FromWildcard | Computed


@dataclass(frozen=True)
class Stage:
    name: str
    function: str                            # "module:function", imported only when the stage runs
    inputs: Mapping[str, Input] = field(default_factory=dict)   # argument -> path template ({ds}, {layout},
    outputs: Mapping[str, Output] = field(default_factory=dict)  # {protocol}, {method}, {seed}, {fold}, {run}, {root})
    wildcards: tuple[str, ...] = ()
    params: tuple[ParamSpec, ...] = ()
    audit: str | None = None                 # the output `merflow audit` checks (default: the first)
    data: tuple[str, ...] = ()               # data files the code reads (a code dependency too)
    needed_by: tuple[str, ...] = ()          # methods that need it: it runs only when one of them runs (none: always)
    when: str | None = None                  # a params key that must be true for it to run (none: always)
    method: str | None = None                # the method whose seeds it runs with (default: its name)
    applies_to: str | None = None            # of a per-dataset stage: "tree" (datasets read from a tree, composites'
                                             # sources included) or "composite" (composites only); None: every dataset

    @property
    def audited(self) -> str:
        return self.audit or next(iter(self.outputs))

    def records_params(self) -> bool:
        """Whether the audited artifact records its provenance itself (HDF5 stores and model.pt); every
        other stage's is written beside it (pipeline.artifacts.write_sidecar)."""
        return output_template(self.outputs[self.audited]).endswith((".h5", ".pt"))

    def params_keys(self) -> list[str]:
        """The params keys the stage reads ({ds}, {mapping} unfilled): DVC's `params:`."""
        keys: list[str] = []
        for spec in self.params:
            keys.extend(spec.keys if isinstance(spec, Computed) else [] if isinstance(spec, FromWildcard)
                        else [spec.key])
        return keys


def fold_outputs(fold_dir: str, names: tuple[str, ...]) -> dict[str, str]:
    """A per-fold stage's files in its fold folder, named by their stem (metrics.json -> metrics)."""
    return {name.split(".")[0]: f"{fold_dir}/{name}" for name in names}


def method_fold_dir(method: str) -> str:
    return paths.FOLD_DIR.replace("{method}", method)


TRAIN_FILES = ("model.pt", "predictions.csv", "metrics.json", "train_log.csv")
BASELINE_FILES = ("predictions.csv", "metrics.json")
FOLD_WILDCARDS = ("ds", "protocol", "seed", "fold")
CLASSES = Key("classes", "mappings.{mapping}.classes")
SEED = FromWildcard("seed")

STAGES: dict[str, Stage] = {stage.name: stage for stage in [
    Stage(name="synth", function="pipeline.datasets.synth_writers:generate_synthetic",
          outputs={"out_dir": Folder(paths.SYNTH_DIR)}, wildcards=("layout",), params=(Section("synth"),)),
    Stage(name="index", function="pipeline.index:index_stage",
          inputs={"tree": Dependency("{root}")},
          outputs={"out_csv": paths.INDEX, "excluded_csv": paths.EXCLUDED}, wildcards=("ds",),
          params=(Computed(index_params, ("dataset.{ds}", "mappings.{mapping}", "index")),),
          data=("pipeline/datasets/corrections.csv",), applies_to="tree"),
    Stage(name="align", function="pipeline.faces:align_stage",
          inputs={"index_csv": paths.INDEX},
          outputs={"out_h5": paths.ALIGNED, "qc_dir": Folder(paths.ALIGN_QC)}, wildcards=("ds",),
          params=(Section("align"),), applies_to="tree"),
    # A composite (pipeline/composite.py) has its own index and aligned store, made from its sources'; the
    # stages from magnify on run on it as on any dataset.
    Stage(name="composite_index", function="pipeline.composite:composite_index_stage",
          inputs={"source_indexes": PerSource(paths.INDEX)},
          outputs={"out_csv": paths.INDEX, "excluded_csv": paths.EXCLUDED}, wildcards=("ds",),
          params=(Computed(composite_index_params, ("dataset.{ds}", "mappings.{mapping}", "dataset")),),
          data=("pipeline/datasets/megc2019.csv",), applies_to="composite"),
    Stage(name="composite_aligned", function="pipeline.composite:composite_aligned_stage",
          inputs={"index_csv": paths.INDEX, "source_aligned": PerSource(paths.ALIGNED),
                  "source_qc": PerSource(paths.ALIGN_QC)},
          outputs={"out_h5": paths.ALIGNED, "qc_dir": Folder(paths.ALIGN_QC)}, wildcards=("ds",),
          params=(Key("sources", "dataset.{ds}.sources"),), applies_to="composite"),
    Stage(name="magnify", function="pipeline.evm:magnify_stage",
          inputs={"aligned_h5": paths.ALIGNED},
          outputs={"out_h5": paths.MAGNIFIED, "qc_dir": Folder(paths.MAGNIFY_QC)}, wildcards=("ds",),
          params=(Section("magnify"), Key("eye_y", "align.eye_y"))),
    Stage(name="tensors", function="pipeline.jitter:tensors_stage",
          inputs={"magnified_h5": paths.MAGNIFIED}, outputs={"out_h5": paths.TENSORS}, wildcards=("ds",),
          params=(Section("tensors"), CLASSES)),
    Stage(name="folds", function="pipeline.protocols:folds_stage",
          inputs={"index_csv": paths.INDEX}, outputs={"folds_csv": paths.FOLDS}, wildcards=("ds", "protocol"),
          params=(Section("folds"),)),
    Stage(name="train", function="pipeline.train:train_fold_stage",
          inputs={"tensors_h5": paths.TENSORS, "folds_csv": paths.FOLDS},
          outputs=fold_outputs(paths.FOLD_DIR, TRAIN_FILES), wildcards=("ds", "protocol", "method", "seed", "fold"),
          params=(Section("train"), SEED, FromWildcard("method")), audit="model"),
    *(Stage(name=method, function=f"pipeline.baselines.handcrafted:{method}_fold_stage",
            inputs={"aligned_h5": paths.ALIGNED, "folds_csv": paths.FOLDS},
            outputs=fold_outputs(method_fold_dir(method), BASELINE_FILES), wildcards=FOLD_WILDCARDS,
            params=(Section(method), CLASSES, Key("svm_c", "svm.c"), Key("svm_seed", "svm.seed")), audit="metrics")
      for method in HANDCRAFTED),
    *(Stage(name=method, function=f"pipeline.baselines.frame_cnns:{method}_fold_stage",
            inputs={"aligned_h5": paths.ALIGNED, "folds_csv": paths.FOLDS,
                    **({"weights_file": Dependency(ParamFile("pretrained_cnn.weights"))}
                       if method == "pretrained_cnn" else {})},
            outputs=fold_outputs(method_fold_dir(method), BASELINE_FILES), wildcards=FOLD_WILDCARDS,
            params=(Section(method), SEED, CLASSES), audit="metrics")
      for method in ("cnn", "pretrained_cnn")),
    Stage(name="flow", function="pipeline.flow:flow_stage",
          inputs={"aligned_h5": paths.ALIGNED},
          outputs={"out_h5": paths.FLOW, "qc_dir": Folder(paths.FLOW_QC), "apex_csv": paths.APEX_SPOTTING},
          wildcards=("ds",), params=(Section("flow"),), needed_by=FLOWNETS),
    # A flow network trains every fold of a dataset, protocol and seed in one job (folds_together, the
    # default: pipeline/baselines/stacked.py), whose per-fold jobs then write each fold's files; or each
    # fold in its own job.
    *(Stage(name=f"{method}_folds", function=f"pipeline.baselines.stacked:{method}_folds_stage",
            inputs={"flow_h5": paths.FLOW, "folds_csv": paths.FOLDS},
            outputs={"out_h5": paths.FOLDS_TRAINED.replace("{method}", method)}, wildcards=("ds", "protocol", "seed"),
            params=(Section(method), SEED, CLASSES), needed_by=(method,), when=f"{method}.folds_together",
            method=method)
      for method in FLOWNETS),
    *(Stage(name=method, function=f"pipeline.baselines.flownet_folds:{method}_fold_stage",
            inputs={"flow_h5": paths.FLOW, "folds_csv": paths.FOLDS,
                    "trained_h5": IfParam(f"{method}.folds_together", paths.FOLDS_TRAINED.replace("{method}", method))},
            outputs=fold_outputs(method_fold_dir(method), BASELINE_FILES), wildcards=FOLD_WILDCARDS,
            params=(Section(method), SEED, CLASSES), audit="metrics")
      for method in FLOWNETS),
    Stage(name="aggregate", function="pipeline.aggregate:aggregate_stage",
          inputs={"metrics_paths": FoldFiles("metrics.json")},
          outputs={"out_csv": paths.RUN_TABLE2, "metrics_json": paths.RUN_METRICS, "folds_csv": paths.RUN_FOLD_METRICS},
          params=(Computed(aggregate_params, ("datasets", "protocols", "methods", "dataset.{ds}",
                                              "pretrained_cnn.weights", "aggregate")),)),
    Stage(name="report", function="pipeline.report:report_stage",
          inputs={"table_csv": paths.RUN_TABLE2, "metrics_paths": FoldFiles("metrics.json"),
                  "prediction_paths": FoldFiles("predictions.csv"),
                  "align_qc_dirs": PerDataset(paths.ALIGN_QC), "magnify_qc_dirs": PerDataset(paths.MAGNIFY_QC),
                  "tensors_paths": PerDataset(paths.TENSORS), "index_paths": PerDataset(paths.INDEX),
                  "flow_qc_dirs": PerDataset(paths.FLOW_QC, FLOWNETS),
                  "apex_paths": PerDataset(paths.APEX_SPOTTING, FLOWNETS)},
          outputs={"out_html": paths.RUN_REPORT, "figures_dir": Folder(paths.RUN_FIGURES)}),
    # The run of the current params (its folder named by pipeline.plan.run_key), copied to the paths users read.
    Stage(name="publish", function="pipeline.runs:publish_stage",
          inputs={"run_table": paths.RUN_TABLE2, "run_metrics_json": paths.RUN_METRICS,
                  "run_fold_metrics": paths.RUN_FOLD_METRICS, "run_report": paths.RUN_REPORT,
                  "run_figures": paths.RUN_FIGURES},
          outputs={"table": paths.TABLE2, "metrics_json": paths.METRICS, "fold_metrics": paths.FOLD_METRICS,
                   "report": paths.REPORT, "figures": Folder(paths.FIGURES)}),
]}
assert set(BASELINES) <= set(STAGES)
assert all(not set(s.inputs) & set(s.outputs) for s in STAGES.values()), "input and output names must differ"


# --- the params of a stage ---------------------------------------------------------------------------------

def param_value(params: Mapping, dotted: str) -> Any:
    value: Any = params
    for key in dotted.split("."):
        value = value.get(key) if isinstance(value, Mapping) else None
    return value


def stage_params(params: Mapping, stage: str, ds: str | None = None, method: str | None = None,
                 seed: int | None = None) -> dict[str, Any]:
    """The keyword arguments a stage function is called with: exactly the params its entry declares. A
    network's `seed` is one of params' `seeds` (its job's; default the first)."""
    wildcards = {"ds": ds, "method": method,
                 "seed": int(params.get("seeds", [0])[0] if seed is None else seed)}
    mapping = params["dataset"][ds]["mapping"] if ds in params.get("dataset", {}) else None
    kwargs: dict[str, Any] = {}
    for spec in STAGES[stage].params:
        if isinstance(spec, Section):
            kwargs.update(params[spec.key])
        elif isinstance(spec, Key):
            kwargs[spec.argument] = copy.deepcopy(param_value(params, spec.key.format(ds=ds, mapping=mapping)))
        elif isinstance(spec, FromWildcard):
            kwargs[spec.name] = wildcards[spec.name]
        else:
            kwargs.update(spec.function(params, ds))
    return kwargs
