# Config validation, wildcard constraints, and the helpers that give each rule its stage's inputs, outputs,
# params and wildcard constraints from the stage table (pipeline/stages.py): a rule adds only what
# Snakemake alone needs (log, threads, resources, message).

from snakemake.utils import validate

from pipeline import paths
from pipeline.baselines import FLOWNETS, FRAME_CNNS, ON_ALIGNED, ON_FLOW, TRAINED
from pipeline.codedeps import PACKAGE_ROOT, code_deps, module_closure
from pipeline.config import composites, validate_params
from pipeline.datasets.layouts import LAYOUTS
from pipeline.plan import input_file, run_key
from pipeline.protocols import fold_numbers
from pipeline.stages import (
    STAGES,
    Dependency,
    Folder,
    IfParam,
    ParamFile,
    PerDataset,
    output_template,
    param_value,
    stage_params,
)


validate(config, schema="../schemas/params.schema.yaml")
validate_params(config)


wildcard_constraints:
    ds=r"[A-Za-z0-9_]+",
    layout=r"[A-Za-z0-9_]+",
    protocol=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_]+",
    seed=r"\d+",
    fold=r"\d+",


# A composite (kind: composite) gets its index and aligned store from its sources (composite.smk); the
# index and align rules read the datasets with a tree. \b ends a name: every {ds} character is a word character.
COMPOSITES = "|".join(composites(config)) or "(?!)"  # (?!) matches nothing: no composite
DATASETS_OF = {"tree": rf"(?!(?:{COMPOSITES})\b)[A-Za-z0-9_]+", "composite": rf"(?:{COMPOSITES})"}

# The run folder of this config (pipeline/runs.py): a new plan of datasets, protocols, methods, seeds and
# what decides the folds names a folder that does not exist yet, so its aggregate and report always run.
RUN = run_key(config)


def saved_folds(ds, protocol):
    """Leave-one-subject-out's fold numbers, one per subject, from the saved folds file (checkpoint); a
    k-fold protocol's are known from params (pipeline.plan.fold_numbers_of)."""
    return fold_numbers(checkpoints.folds.get(ds=ds, protocol=protocol).output.folds_csv)


def code(stage):
    """The source files a stage runs (pipeline/codedeps.py), as inputs: editing one reruns the stage
    (absolute paths, so a run with --directory elsewhere still finds them)."""
    return [str(PACKAGE_ROOT / path) for path in code_deps(stage)]


def rule_input(value):
    """One input of the table as Snakemake takes it: a template (wildcards filled by Snakemake), a list
    known from the config, or an input function (a dataset's root, a composite's sources, every fold's
    files once the folds checkpoint has run); None when a param that names a file is unset."""
    value = value.input if isinstance(value, Dependency) else value
    if isinstance(value, str) and "{root}" in value:
        return lambda wildcards: config["dataset"][wildcards.ds]["root"]
    if isinstance(value, str):
        return value.replace("{run}", RUN)
    if isinstance(value, IfParam):
        return value.template if param_value(config, value.key) else None
    if isinstance(value, PerDataset | ParamFile):
        return input_file(value, config, {})
    return lambda wildcards: input_file(value, config, dict(wildcards.items()), saved_folds)


def stage_inputs(name):
    """A rule's named inputs: its stage's, and its code."""
    inputs = {key: rule_input(value) for key, value in STAGES[name].inputs.items()}
    return {**{key: value for key, value in inputs.items() if value is not None}, "code": code(name)}


def stage_outputs(name, **marked):
    """A rule's named outputs: its stage's (a Folder as directory()), each passed through `marked`'s
    function of the same name if given (report() for `snakemake --report`)."""
    outputs = {}
    for key, output in STAGES[name].outputs.items():
        path = output_template(output).replace("{run}", RUN)
        path = directory(path) if isinstance(output, Folder) else path
        outputs[key] = marked[key](path) if key in marked else path
    return outputs


def stage_kwargs(name):
    """A rule's params: the keyword arguments its stage's function takes from the config."""
    return lambda wildcards: stage_params(config, name, ds=wildcards.get("ds"), method=wildcards.get("method"),
                                          seed=wildcards.get("seed"))


def stage_constraints(name):
    """A rule's wildcard constraints: the datasets its stage applies to, the methods it trains, the short-clip
    layouts of the synthetic writer."""
    stage = STAGES[name]
    constraints = {"ds": DATASETS_OF[stage.applies_to]} if stage.applies_to else {}
    if "layout" in stage.wildcards:
        constraints["layout"] = "|".join(LAYOUTS)  # the long-video layouts' trees are synth_long's (spotting.smk)
    if "method" in stage.wildcards:
        constraints["method"] = "|".join(TRAINED)  # the other methods' rules are named after them
    return constraints
