# Snakemake script of every rule: the rule's stage (pipeline/stages.py) on the rule's named files, logged.
from pipeline.runner import run_snakemake_job

run_snakemake_job(snakemake)
