# Snakemake script for rule ablations: a thin call into pipeline.ablations.
from pipeline.ablations import ablations_stage
from pipeline.runner import run_logged

run_logged(snakemake.log[0], ablations_stage, snakemake.params.p, snakemake.input.folds, snakemake.output.table,
           snakemake.output.page, snakemake.output.figures)
