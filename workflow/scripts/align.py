# Snakemake script for rule align: a thin call into pipeline.faces.
from pipeline.faces import align_stage
from pipeline.runner import run_logged

run_logged(snakemake.log[0], align_stage, snakemake.input.index, snakemake.output.h5, snakemake.output.qc,
           **snakemake.params.p)
