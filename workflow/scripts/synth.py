# Snakemake script for rule synth: a thin call into pipeline.datasets.synth_layouts.
from pathlib import Path

from pipeline.datasets.synth_layouts import generate_synthetic
from pipeline.runner import run_logged

run_logged(snakemake.log[0], generate_synthetic, snakemake.wildcards.layout, Path(snakemake.output.tree),
           **snakemake.params.p)
