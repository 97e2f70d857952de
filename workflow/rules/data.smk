# Data: the synthetic dataset generator and the index of a dataset's clips. Each rule's inputs, outputs and
# params come from its stage's entry in pipeline/stages.py (common.smk).


rule synth:
    input:
        **stage_inputs("synth"),
    output:
        **stage_outputs("synth"),
    params:
        p=stage_kwargs("synth"),
    log:
        "logs/synth/{layout}.log",
    wildcard_constraints:
        **stage_constraints("synth"),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    message:
        "Generating the synthetic {wildcards.layout} dataset from real face photos"
    script:
        "../scripts/stage.py"


rule index:
    input:
        **stage_inputs("index"),
    output:
        **stage_outputs("index"),
    params:
        p=stage_kwargs("index"),
    log:
        "logs/index/{ds}.log",
    wildcard_constraints:
        **stage_constraints("index"),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=30,
    message:
        "Indexing {wildcards.ds}: coding sheet, frames and labels"
    script:
        "../scripts/stage.py"
