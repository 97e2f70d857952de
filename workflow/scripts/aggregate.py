# Snakemake script for rule aggregate: a thin call into pipeline.report.
from pipeline.report import aggregate_stage
from pipeline.runner import run_logged

run_logged(snakemake.log[0], aggregate_stage, snakemake.input.metrics, snakemake.output.table,
           datasets=snakemake.params.datasets, protocols=snakemake.params.protocols,
           not_run=snakemake.params.not_run, metrics_json=snakemake.output.metrics,
           folds_csv=snakemake.output.folds)
