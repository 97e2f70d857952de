# Snakemake script for rule train: one fold, a thin call into pipeline.train.
from pathlib import Path

from pipeline.runner import run_logged
from pipeline.train import train_fold_stage

run_logged(snakemake.log[0], train_fold_stage, snakemake.input.tensors, snakemake.input.folds,
           int(snakemake.wildcards.fold), Path(snakemake.output.metrics).parent, **snakemake.params.p)
