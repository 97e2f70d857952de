# Snakemake script for the baseline rules (lbptop, lbpsip, tics, mdmo, pretrained_cnn): one fold, a thin
# call into pipeline.baselines; the rule's name is the method.
from pathlib import Path

from pipeline.baselines.stage import fold_stage_function
from pipeline.runner import run_logged

run_logged(snakemake.log[0], fold_stage_function(snakemake.rule), snakemake.input.aligned, snakemake.input.folds,
           int(snakemake.wildcards.fold), Path(snakemake.output.metrics).parent, **snakemake.params.p)
