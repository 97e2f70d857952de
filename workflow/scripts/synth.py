# Snakemake script for rule synth: a thin call into pipeline.datasets.synth.
from pathlib import Path

from pipeline.datasets.synth import generate_casme2
from pipeline.runner import run_logged

run_logged(snakemake.log[0], generate_casme2, Path(snakemake.output.tree), **snakemake.params.p)
