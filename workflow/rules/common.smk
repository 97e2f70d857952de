# Config validation, wildcard constraints and the input functions shared by the rules.

from snakemake.utils import validate

from pipeline import paths
from pipeline.baselines import BASELINES, TRAINED, methods_not_run, methods_to_run
from pipeline.config import stage_params, validate_params
from pipeline.protocols import fold_numbers
from pipeline.stages import PACKAGE_ROOT, code_deps


validate(config, schema="../schemas/params.schema.yaml")
validate_params(config)


wildcard_constraints:
    ds=r"[A-Za-z0-9_]+",
    layout=r"[A-Za-z0-9_]+",
    protocol=r"[A-Za-z0-9_]+",
    method=r"[A-Za-z0-9_]+",
    fold=r"\d+",


def code(stage):
    """The pipeline modules a stage runs, as inputs: editing one reruns the stage (absolute paths, so a
    run with --directory elsewhere still finds them)."""
    return [str(PACKAGE_ROOT / path) for path in code_deps(stage)]


def dataset_root(wildcards):
    return config["dataset"][wildcards.ds]["root"]


def fold_dirs(wildcards):
    """Every fold's result folder; fold numbers come from the saved folds file (checkpoint)."""
    dirs = []
    for ds in config["datasets"]:
        for protocol in config["protocols"]:
            folds_csv = checkpoints.folds.get(ds=ds, protocol=protocol).output.folds
            for method in methods_to_run(config):  # not the pre-trained CNN without weights
                for fold in fold_numbers(folds_csv):
                    dirs.append(paths.FOLD_DIR.format(ds=ds, protocol=protocol, method=method, fold=fold))
    return dirs


def fold_metrics(wildcards):
    return [f"{d}/metrics.json" for d in fold_dirs(wildcards)]


def fold_predictions(wildcards):
    return [f"{d}/predictions.csv" for d in fold_dirs(wildcards)]
