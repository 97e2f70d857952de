# Aggregation: Table 2 (ours beside the paper's) and the HTML report.


rule aggregate:
    input:
        metrics=fold_metrics,
        code=code("aggregate"),
    output:
        table=report(paths.TABLE2, caption="../report/table2.rst", category="Table 2"),
        metrics_json=paths.METRICS,  # DVC's metrics file (dvc metrics show)
        fold_metrics=paths.FOLD_METRICS,  # DVC's plots file (dvc plots show: accuracy per fold)
    params:
        p=stage_params(config, "aggregate"),
    log:
        "logs/aggregate.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    message:
        "Aggregating the per-fold metrics into {output.table}"
    script:
        "../scripts/stage.py"


rule report:
    input:
        table=paths.TABLE2,
        metrics=fold_metrics,
        predictions=fold_predictions,
        align_qc=expand(paths.ALIGN_QC, ds=config["datasets"]),
        magnify_qc=expand(paths.MAGNIFY_QC, ds=config["datasets"]),
        tensors=expand(paths.TENSORS, ds=config["datasets"]),
        index=expand(paths.INDEX, ds=config["datasets"]),
        flow_qc=flow_outputs(paths.FLOW_QC),
        apex_spotting=flow_outputs(paths.APEX_SPOTTING),
        code=code("report"),
    output:
        # The same figures twice: embedded in the page, and as PNGs for `snakemake --report report.zip`.
        report=report(paths.REPORT, caption="../report/report.rst", category="HTML report"),
        figures=report(
            directory(paths.FIGURES),
            patterns=["{kind}/{name}.png"],
            caption="../report/figures.rst",
            category="{kind}",
            labels={"figure": "{name}"},
        ),
    params:
        p=stage_params(config, "report"),
    log:
        "logs/report.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    message:
        "Writing the HTML report {output.report}"
    script:
        "../scripts/stage.py"
