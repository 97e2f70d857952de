# Training: one job per (dataset, protocol, method, seed, fold).


rule train:
    input:
        tensors=paths.TENSORS,
        folds=paths.FOLDS,
        code=code("train"),
    output:
        model=f"{paths.FOLD_DIR}/model.pt",
        predictions=f"{paths.FOLD_DIR}/predictions.csv",
        metrics=f"{paths.FOLD_DIR}/metrics.json",
        train_log=f"{paths.FOLD_DIR}/train_log.csv",
    params:
        p=lambda wildcards: stage_params(config, "train", method=wildcards.method, seed=int(wildcards.seed)),
    log:
        "logs/train/{ds}_{protocol}_{method}_seed{seed}_fold{fold}.log",
    wildcard_constraints:
        method="|".join(TRAINED),  # the baselines' rules (baselines.smk) write the other methods' folds
    conda:
        "../../environment.yml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime_min"],
        gpu=config["resources"]["train_gpus"],
    message:
        "Training {wildcards.method} on {wildcards.ds}, {wildcards.protocol} fold {wildcards.fold}, seed {wildcards.seed}"
    script:
        "../scripts/stage.py"
