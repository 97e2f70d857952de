# Config validation, wildcard constraints and the input functions shared by the rules.

from snakemake.utils import validate

from pipeline import paths
from pipeline.baselines import BASELINES, FLOWNETS, ON_ALIGNED, TRAINED, any_method_runs
from pipeline.config import composite_sources, composites, stage_params, validate_params
from pipeline.protocols import fold_numbers
from pipeline.stages import PACKAGE_ROOT, code_deps, fold_files, module_closure, run_key


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
TREE_DATASET = rf"(?!(?:{COMPOSITES})\b)[A-Za-z0-9_]+"
COMPOSITE_DATASET = rf"(?:{COMPOSITES})"


def per_source(template):
    """An input function: the template for each source dataset of the composite {ds}."""
    return lambda wildcards: [template.format(ds=source) for source in composite_sources(config, wildcards.ds)]


def code(stage):
    """The source files a stage runs (pipeline/stages.py), as inputs: editing one reruns the stage (absolute
    paths, so a run with --directory elsewhere still finds them)."""
    return [str(PACKAGE_ROOT / path) for path in code_deps(stage)]


def dataset_root(wildcards):
    return config["dataset"][wildcards.ds]["root"]


# The run folder of this config (pipeline/runs.py): a new plan of datasets, protocols, methods, seeds and
# what decides the folds names a folder that does not exist yet, so its aggregate and report always run.
RUN = run_key(config)


def run_path(template):
    return template.format(run=RUN)


def saved_folds(ds, protocol):
    """Leave-one-subject-out's fold numbers, one per subject, from the saved folds file (checkpoint); a
    k-fold protocol's are known from params (pipeline.stages.fold_numbers_of)."""
    return fold_numbers(checkpoints.folds.get(ds=ds, protocol=protocol).output.folds)


def fold_metrics(wildcards):
    return fold_files(config, "metrics.json", saved_folds)


def flow_outputs(template):
    """Every dataset's flow stage output (a QC folder, the apex table) when a flow network runs, else none."""
    return expand(template, ds=config["datasets"]) if any_method_runs(config, FLOWNETS) else []


def fold_predictions(wildcards):
    return fold_files(config, "predictions.csv", saved_folds)
