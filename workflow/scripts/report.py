# Snakemake script for rule report: a thin call into pipeline.report.
from pipeline.report import report_stage
from pipeline.runner import run_logged

run_logged(snakemake.log[0], report_stage, snakemake.input.table, snakemake.input.metrics,
           snakemake.input.predictions, snakemake.input.align_qc, snakemake.input.magnify_qc, snakemake.output.report,
           tensors_paths=snakemake.input.tensors, index_paths=snakemake.input.index,
           figures_dir=snakemake.output.figures)
