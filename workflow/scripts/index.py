# Snakemake script for rule index: a thin call into pipeline.index.
from pipeline.index import index_stage
from pipeline.runner import run_logged

run_logged(snakemake.log[0], index_stage, snakemake.output.index, snakemake.output.excluded, **snakemake.params.p)
