# Snakemake script for checkpoint folds: a thin call into pipeline.protocols.
from pipeline.protocols import folds_stage
from pipeline.runner import run_logged

run_logged(snakemake.log[0], folds_stage, snakemake.input.index, snakemake.output.folds,
           protocol=snakemake.wildcards.protocol, **snakemake.params.p)
