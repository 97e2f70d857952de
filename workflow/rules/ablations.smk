# Ablations of the paper's claims (README, "Testing the paper's claims"): snakemake results/ablations.csv
# A setting's overrides rerun only the stage they name and those downstream; the rest is the main
# pipeline's artifacts (pipeline/ablations.py). Not part of `all`: `make demo` never runs the grid.


include: "ablations_inputs.smk"


rule ablation_magnify:
    input:
        aligned=paths.ALIGNED,
        code=code("magnify"),
    output:
        h5=paths.ABLATION_MAGNIFIED,
        qc=directory(paths.ABLATION_MAGNIFY_QC),
    params:
        p=lambda wildcards: abl.ablation_stage_params(config, "magnify", wildcards.key),
    log:
        "logs/ablations/magnify/{ds}_{key}.log",
    benchmark:
        paths.ABLATION_BENCHMARKS["magnify"]
    wildcard_constraints:
        key=r"k[0-9a-f]{9}",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    message:
        "Ablation {wildcards.key}: magnifying {wildcards.ds} with {params.p}"
    script:
        "../scripts/stage.py"


rule ablation_tensors:
    input:
        magnified=lambda wildcards: abl.magnified_path(ablation_overrides(wildcards), wildcards.ds),
        code=code("tensors"),
    output:
        h5=paths.ABLATION_TENSORS,
    params:
        p=lambda wildcards: abl.ablation_stage_params(config, "tensors", wildcards.key, wildcards.ds),
    log:
        "logs/ablations/tensors/{ds}_{key}.log",
    benchmark:
        paths.ABLATION_BENCHMARKS["tensors"]
    wildcard_constraints:
        key=r"k[0-9a-f]{9}",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    message:
        "Ablation {wildcards.key}: the jittered tensors of {wildcards.ds}"
    script:
        "../scripts/stage.py"


rule ablation_train:
    input:
        tensors=lambda wildcards: abl.tensors_path(ablation_overrides(wildcards), wildcards.ds),
        folds=paths.FOLDS,
        code=code("train"),
    output:
        model=f"{paths.ABLATION_FOLD_DIR}/model.pt",
        predictions=f"{paths.ABLATION_FOLD_DIR}/predictions.csv",
        metrics=f"{paths.ABLATION_FOLD_DIR}/metrics.json",
        train_log=f"{paths.ABLATION_FOLD_DIR}/train_log.csv",
    params:
        p=lambda wildcards: abl.ablation_stage_params(config, "train", wildcards.key),
    log:
        "logs/ablations/train/{ds}_{protocol}_{key}_fold{fold}.log",
    benchmark:
        paths.ABLATION_BENCHMARKS["train"]
    wildcard_constraints:
        key=r"k[0-9a-f]{9}",
    conda:
        "../../environment.yml"
    threads: config["train"]["threads"]
    resources:
        mem_mb=config["resources"]["train_mem_mb"],
        runtime=config["resources"]["train_runtime_min"],
        gpu=config["resources"]["train_gpus"],
    message:
        "Ablation {wildcards.key}: training on {wildcards.ds}, {wildcards.protocol} fold {wildcards.fold}"
    script:
        "../scripts/stage.py"


rule ablations:
    input:
        unpack(ablation_grid),
        folds=lambda wildcards: paths.FOLDS.format(ds=config["ablations"]["dataset"],
                                                   protocol=config["ablations"]["protocol"]),
        code=[str(PACKAGE_ROOT / path) for path in module_closure("pipeline.ablations")],
    output:
        table=report(paths.ABLATIONS, caption="../report/ablations.rst", category="Ablations"),
        page=paths.ABLATIONS_REPORT,
        figures=report(
            directory(paths.ABLATION_FIGURES),
            patterns=["{family}.png"],
            caption="../report/ablations.rst",
            category="Ablations",
            labels={"family": "{family}"},
        ),
    params:
        p={section: config[section] for section in abl.PARAM_SECTIONS},
    log:
        "logs/ablations.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    message:
        "Ablation table {output.table}: one row per setting, Wilcoxon p against each family's reference"
    script:
        "../scripts/ablations.py"
