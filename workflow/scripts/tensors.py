# Snakemake script for rule tensors: a thin call into pipeline.jitter.
from pipeline.jitter import tensors_stage
from pipeline.runner import run_logged

run_logged(snakemake.log[0], tensors_stage, snakemake.input.magnified, snakemake.output.h5, **snakemake.params.p)
