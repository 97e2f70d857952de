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
from pipeline.baselines import BASELINES, FLOWNETS, FRAME_CNNS, HANDCRAFTED, ON_FLOW, row_name
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
    row: str | None = None                   # the Table 2 row whose files it makes: it runs only when that row runs
                                             # (default: a method's stage, its name)

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


TRAIN_FILES = ("model.pt", "predictions.csv", "metrics.json", "train_log.csv", "epochs.h5")
BASELINE_FILES = ("predictions.csv", "metrics.json")
EPOCH_FILES = (*BASELINE_FILES, "epochs.h5")    # a network with epoch selection (pipeline/selection.py)
FOLD_WILDCARDS = ("ds", "protocol", "seed", "fold")
TRAIN_WILDCARDS = ("ds", "protocol", "method", "seed", "fold")
CLASSES = Key("classes", "mappings.{mapping}.classes")
SEED = FromWildcard("seed")
INNER = Key("inner", "epoch_selection")         # the validation split and rule of selection inner
SELECTIONS = Key("selections", "selection")     # a network that scores every epoch only for the test row


def trained_store(row: str) -> str:
    return paths.FOLDS_TRAINED.replace("{method}", row)


def selection_names(method: str, selection: str) -> tuple[str, str]:
    """A network's stage name for a training selection (ststnet, ststnet_inner) and its Table 2 row."""
    return (method if selection == "last" else f"{method}_{selection}"), row_name(method, selection)


def flownet_stages(method: str, selection: str) -> list[Stage]:
    """A flow network's stages for one selection (last or inner): every fold trained together, and the
    per-fold files (from that store, or the fold trained alone)."""
    name, row = selection_names(method, selection)
    params = (Section(method), SEED, CLASSES, *((INNER,) if selection == "inner" else ()))
    return [Stage(name=f"{name}_folds", function=f"pipeline.baselines.stacked:{name}_folds_stage",
                  inputs={"flow_h5": paths.FLOW, "folds_csv": paths.FOLDS}, outputs={"out_h5": trained_store(row)},
                  wildcards=("ds", "protocol", "seed"), params=params, needed_by=(method,),
                  when=f"{method}.folds_together", method=method, row=row),
            Stage(name=name, function=f"pipeline.baselines.flownet_folds:{name}_fold_stage",
                  inputs={"flow_h5": paths.FLOW, "folds_csv": paths.FOLDS,
                          "trained_h5": IfParam(f"{method}.folds_together", trained_store(row))},
                  outputs=fold_outputs(method_fold_dir(row), EPOCH_FILES), wildcards=FOLD_WILDCARDS, params=params,
                  audit="metrics", method=method, row=row)]


def frame_cnn_stage(method: str, selection: str) -> Stage:
    """A single-frame CNN's per-fold stage for one selection (last or inner)."""
    name, row = selection_names(method, selection)
    weights = {"weights_file": Dependency(ParamFile("pretrained_cnn.weights"))} if method == "pretrained_cnn" else {}
    return Stage(name=name, function=f"pipeline.baselines.frame_cnns:{name}_fold_stage",
                 inputs={"aligned_h5": paths.ALIGNED, "folds_csv": paths.FOLDS, **weights},
                 outputs=fold_outputs(method_fold_dir(row), EPOCH_FILES), wildcards=FOLD_WILDCARDS,
                 params=(Section(method), SEED, CLASSES, INNER if selection == "inner" else SELECTIONS),
                 audit="metrics", method=method, row=row)


def htnet_stage(selection: str) -> Stage:
    name, row = selection_names("htnet", selection)
    return Stage(name=name, function=f"pipeline.baselines.htnet:{name}_fold_stage",
                 inputs={"flow_h5": paths.FLOW, "aligned_h5": paths.ALIGNED, "folds_csv": paths.FOLDS},
                 outputs=fold_outputs(method_fold_dir(row), EPOCH_FILES), wildcards=FOLD_WILDCARDS,
                 params=(Section("htnet"), SEED, CLASSES, *((INNER,) if selection == "inner" else ())),
                 audit="metrics", method="htnet", row=row)


def test_row_stage(name: str, method: str, wildcards: tuple[str, ...] = FOLD_WILDCARDS) -> Stage:
    """selection test (audits only), stage `name`_test: a fold's predictions at the epoch best on its own test
    labels, from the epochs.h5 of `method`'s last run ("{method}": the RCNN's, a wildcard)."""
    row = row_name(method, "test")
    return Stage(name=f"{name}_test", function="pipeline.selection:select_on_test_stage",
                 inputs={"epochs_h5": f"{method_fold_dir(method)}/epochs.h5"},
                 outputs=fold_outputs(method_fold_dir(row), BASELINE_FILES), wildcards=wildcards,
                 params=(CLASSES, Key("metric", "epoch_selection.metric"), Key("ties", "epoch_selection.ties")),
                 audit="metrics", method=None if "{" in method else method, row=row)


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
    # The RCNN: `selections` says whether to score the test clips after every epoch (for the test row).
    Stage(name="train", function="pipeline.train:train_fold_stage",
          inputs={"tensors_h5": paths.TENSORS, "folds_csv": paths.FOLDS},
          outputs=fold_outputs(paths.FOLD_DIR, TRAIN_FILES), wildcards=TRAIN_WILDCARDS,
          params=(Section("train"), SEED, FromWildcard("method"), SELECTIONS), audit="model"),
    Stage(name="train_inner", function="pipeline.train:train_inner_fold_stage",
          inputs={"tensors_h5": paths.TENSORS, "folds_csv": paths.FOLDS},
          outputs=fold_outputs(method_fold_dir(row_name("{method}", "inner")), TRAIN_FILES),
          wildcards=TRAIN_WILDCARDS, params=(Section("train"), SEED, FromWildcard("method"), INNER), audit="model",
          row=row_name("{method}", "inner")),
    test_row_stage("train", "{method}", TRAIN_WILDCARDS),
    *(Stage(name=method, function=f"pipeline.baselines.handcrafted:{method}_fold_stage",
            inputs={"aligned_h5": paths.ALIGNED, "folds_csv": paths.FOLDS},
            outputs=fold_outputs(method_fold_dir(method), BASELINE_FILES), wildcards=FOLD_WILDCARDS,
            params=(Section(method), CLASSES, Key("svm_c", "svm.c"), Key("svm_seed", "svm.seed")), audit="metrics")
      for method in HANDCRAFTED),
    # The single-frame CNNs (selections: whether to score the test clips after every epoch, for the test row).
    *(frame_cnn_stage(method, selection) for method in FRAME_CNNS for selection in ("last", "inner")),
    *(test_row_stage(method, method) for method in FRAME_CNNS),
    Stage(name="flow", function="pipeline.flow:flow_stage",
          inputs={"aligned_h5": paths.ALIGNED},
          outputs={"out_h5": paths.FLOW, "qc_dir": Folder(paths.FLOW_QC), "apex_csv": paths.APEX_SPOTTING},
          wildcards=("ds",), params=(Section("flow"),), needed_by=ON_FLOW),
    # A flow network trains every fold of a dataset, protocol and seed in one job (folds_together, the
    # default: pipeline/baselines/stacked.py), whose per-fold jobs then write each fold's files; or each
    # fold in its own job. HTNet trains each fold in its own job. With params' `selection`, a network has a
    # row per selection: inner trains again (its own folder, method-inner), test reads the last run's epochs.
    *(stage for method in FLOWNETS for selection in ("last", "inner") for stage in flownet_stages(method, selection)),
    htnet_stage("last"), htnet_stage("inner"),
    *(test_row_stage(method, method) for method in ON_FLOW),
    Stage(name="aggregate", function="pipeline.aggregate:aggregate_stage",
          inputs={"metrics_paths": FoldFiles("metrics.json")},
          outputs={"out_csv": paths.RUN_TABLE2, "metrics_json": paths.RUN_METRICS, "folds_csv": paths.RUN_FOLD_METRICS},
          params=(Computed(aggregate_params, ("datasets", "protocols", "methods", "selection", "dataset.{ds}",
                                              "pretrained_cnn.weights", "aggregate")),)),
    Stage(name="report", function="pipeline.report:report_stage",
          inputs={"table_csv": paths.RUN_TABLE2, "metrics_paths": FoldFiles("metrics.json"),
                  "prediction_paths": FoldFiles("predictions.csv"),
                  "align_qc_dirs": PerDataset(paths.ALIGN_QC), "magnify_qc_dirs": PerDataset(paths.MAGNIFY_QC),
                  "tensors_paths": PerDataset(paths.TENSORS), "index_paths": PerDataset(paths.INDEX),
                  "flow_qc_dirs": PerDataset(paths.FLOW_QC, ON_FLOW),
                  "apex_paths": PerDataset(paths.APEX_SPOTTING, ON_FLOW)},
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
