# Snakemake script for rule magnify: a thin call into pipeline.evm.
from pipeline.evm import magnify_stage
from pipeline.runner import run_logged

run_logged(snakemake.log[0], magnify_stage, snakemake.input.aligned, snakemake.output.h5, snakemake.output.qc,
           **snakemake.params.p)
