# Training: one job per (dataset, protocol, method, seed, fold) of the RCNN and its feed-forward ablation;
# with params' selection, the inner runs (the test rows: selection.smk).

# A training job's resources (the train rule and the ablation grid's): a cluster's memory, time and GPU.
TRAIN_RESOURCES = dict(
    mem_mb=config["resources"]["train_mem_mb"],
    runtime=config["resources"]["train_runtime_min"],
    gpu=config["resources"]["train_gpus"],
)


rule train:
    input:
        **stage_inputs("train"),
    output:
        **stage_outputs("train"),
    params:
        p=stage_kwargs("train"),
    log:
        "logs/train/{ds}_{protocol}_{method}_seed{seed}_fold{fold}.log",
    wildcard_constraints:
        **stage_constraints("train"),
    conda:
        "../../environment.yml"
    threads: config["train"]["threads"]
    resources:
        **TRAIN_RESOURCES,
    message:
        "Training {wildcards.method} on {wildcards.ds}, {wildcards.protocol} fold {wildcards.fold}, seed {wildcards.seed}"
    script:
        "../scripts/stage.py"


# selection inner: the RCNN trained without each fold's validation subjects, scored at the epoch best on them.
rule train_inner:
    input:
        **stage_inputs("train_inner"),
    output:
        **stage_outputs("train_inner"),
    params:
        p=stage_kwargs("train_inner"),
    log:
        "logs/train_inner/{ds}_{protocol}_{method}_seed{seed}_fold{fold}.log",
    wildcard_constraints:
        **stage_constraints("train_inner"),
    conda:
        "../../environment.yml"
    threads: config["train"]["threads"]
    resources:
        **TRAIN_RESOURCES,
    message:
        "Training {wildcards.method} (epoch chosen on inner validation subjects) on {wildcards.ds}, {wildcards.protocol} fold {wildcards.fold}, seed {wildcards.seed}"
    script:
        "../scripts/stage.py"
