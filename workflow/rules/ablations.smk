# Ablations of the paper's claims (README, "Testing the paper's claims"): snakemake results/ablations.csv
# A setting's overrides rerun only the stage they name and those downstream; the rest is the main
# pipeline's artifacts (pipeline/ablations.py). Not part of `all`: `make demo` never runs the grid.


include: "ablations_inputs.smk"


rule ablation_magnify:
    input:
        aligned_h5=paths.ALIGNED,
        code=code("magnify"),
    output:
        out_h5=paths.ABLATION_MAGNIFIED,
        qc_dir=directory(paths.ABLATION_MAGNIFY_QC),
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
        magnified_h5=lambda wildcards: abl.magnified_path(ablation_overrides(wildcards), wildcards.ds),
        code=code("tensors"),
    output:
        out_h5=paths.ABLATION_TENSORS,
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
        tensors_h5=lambda wildcards: abl.tensors_path(ablation_overrides(wildcards), wildcards.ds),
        folds_csv=paths.FOLDS,
        code=code("train"),
    output:
        **fold_outputs(paths.ABLATION_FOLD_DIR, TRAIN_FILES),
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
        **TRAIN_RESOURCES,
    message:
        "Ablation {wildcards.key}: training on {wildcards.ds}, {wildcards.protocol} fold {wildcards.fold}"
    script:
        "../scripts/stage.py"


# A flow family: the flow stage with the setting's flow params, then each of abl.FLOW_NETWORKS on it, every fold
# together ({method}.folds_together) and one job per fold, as the main pipeline trains them.
rule ablation_flow:
    input:
        aligned_h5=paths.ALIGNED,
        code=code("flow"),
    output:
        out_h5=paths.ABLATION_FLOW,
        qc_dir=directory(paths.ABLATION_FLOW_QC),
        apex_csv=paths.ABLATION_APEX_SPOTTING,
    params:
        p=lambda wildcards: abl.ablation_stage_params(config, "flow", wildcards.key),
    log:
        "logs/ablations/flow/{ds}_{key}.log",
    benchmark:
        paths.ABLATION_BENCHMARKS["flow"]
    wildcard_constraints:
        key=r"k[0-9a-f]{9}",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    message:
        "Ablation {wildcards.key}: the onset-apex flow of {wildcards.ds} with {params.p[method]}"
    script:
        "../scripts/stage.py"


rule ablation_flownet_folds:
    input:
        flow_h5=paths.ABLATION_FLOW,
        folds_csv=paths.FOLDS,
        code=lambda wildcards: code(f"{wildcards.method}_folds"),
    output:
        out_h5=paths.ABLATION_FLOWNET_STORE,
    params:
        p=lambda wildcards: abl.ablation_stage_params(config, f"{wildcards.method}_folds", wildcards.key,
                                                      wildcards.ds),
    log:
        "logs/ablations/flownet_folds/{ds}_{protocol}_{key}_{method}.log",
    benchmark:
        paths.ABLATION_BENCHMARKS["flownet_folds"]
    wildcard_constraints:
        key=r"k[0-9a-f]{9}",
        method="|".join(abl.FLOW_NETWORKS),
    conda:
        "../../environment.yml"
    threads: lambda wildcards: config[wildcards.method]["threads"]
    resources:
        mem_mb=4000,
        runtime=240,
    message:
        "Ablation {wildcards.key}: {wildcards.method}, every {wildcards.protocol} fold of {wildcards.ds} together"
    script:
        "../scripts/stage.py"


rule ablation_flownet:
    input:
        unpack(ablation_flownet_store),
        flow_h5=paths.ABLATION_FLOW,
        folds_csv=paths.FOLDS,
        code=lambda wildcards: code(wildcards.method),
    output:
        **fold_outputs(paths.ABLATION_FLOWNET_FOLD_DIR, EPOCH_FILES),
    params:
        p=lambda wildcards: abl.ablation_stage_params(config, wildcards.method, wildcards.key, wildcards.ds),
    log:
        "logs/ablations/flownet/{ds}_{protocol}_{key}_{method}_fold{fold}.log",
    benchmark:
        paths.ABLATION_BENCHMARKS["flownet"]
    wildcard_constraints:
        key=r"k[0-9a-f]{9}",
        method="|".join(abl.FLOW_NETWORKS),
    conda:
        "../../environment.yml"
    threads: lambda wildcards: config[wildcards.method]["threads"]
    resources:
        mem_mb=2000,
        runtime=120,
    message:
        "Ablation {wildcards.key}: {wildcards.method} on {wildcards.ds}, {wildcards.protocol} fold {wildcards.fold}"
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
