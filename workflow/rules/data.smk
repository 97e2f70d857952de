# Data: the synthetic dataset generator and the index of a dataset's clips.


rule synth:
    input:
        code=code("synth"),
    output:
        tree=directory(paths.SYNTH_DIR),
    params:
        p=stage_params(config, "synth"),
    log:
        "logs/synth/{layout}.log",
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
        root=dataset_root,
        code=code("index"),
    output:
        index=paths.INDEX,
        excluded=paths.EXCLUDED,
    params:
        p=lambda wildcards: stage_params(config, "index", ds=wildcards.ds),
    log:
        "logs/index/{ds}.log",
    wildcard_constraints:
        ds=TREE_DATASET,
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
