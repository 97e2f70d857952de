# The ablation rules' input functions (ablations.smk), and the check of params.yaml's `ablations:` section.

from pipeline import ablations as abl
from pipeline.stages import EPOCH_FILES, TRAIN_FILES, fold_outputs

abl.validate_ablations(config)


def ablation_overrides(wildcards):
    return abl.overrides_for_key(config, wildcards.key)


def ablation_flownet_store(wildcards):
    """A flow network's per-fold job reads the store of its folds trained together, when they are."""
    if not config[wildcards.method]["folds_together"]:
        return {}
    return {"trained_h5": abl.flownet_store(wildcards.key, wildcards.ds, wildcards.protocol, wildcards.method)}


def ablation_grid(wildcards):
    """Every setting's fold metrics and the benchmark files of the jobs they reran (folds from the checkpoint)."""
    section = config["ablations"]
    folds_csv = checkpoints.folds.get(ds=section["dataset"], protocol=section["protocol"]).output.folds_csv
    metrics, benchmarks = abl.grid_files(config, fold_numbers(folds_csv))
    return {"metrics": metrics, "benchmarks": benchmarks}
