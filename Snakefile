# merflow: the MER-RCNN paper (Xia et al.) as a staged, cached pipeline.
#   snakemake --cores 8 results/table2.csv
# Every stage is a thin rule in workflow/rules/ that calls a function of the `pipeline` package.
# Parameters: params.yaml (validated against workflow/schemas/params.schema.yaml); overlay others with
# --configfile (e.g. workflow/configs/demo.yaml).

import os

from snakemake.utils import min_version

min_version("9.0")


configfile: os.path.join(workflow.basedir, "params.yaml")


include: "workflow/rules/common.smk"
include: "workflow/rules/data.smk"
include: "workflow/rules/preprocess.smk"
include: "workflow/rules/composite.smk"
include: "workflow/rules/train.smk"
include: "workflow/rules/baselines.smk"
include: "workflow/rules/flow.smk"
include: "workflow/rules/selection.smk"
include: "workflow/rules/report.smk"
include: "workflow/rules/ablations.smk"
include: "workflow/rules/spotting.smk"


rule all:
    input:
        table=paths.TABLE2,
        report=paths.REPORT,
    default_target: True
