# Snakemake script of the spotting rules (workflow/rules/spotting.smk): the rule's function on its files, logged.
from pipeline.spotting.run import run_spotting_job

run_spotting_job(snakemake)
