# Aggregation: Table 2 (ours beside the paper's) and the HTML report, made in the run folder of the
# current params (results/runs/{run}, pipeline/runs.py), then published to results/.


rule aggregate:
    input:
        metrics=fold_metrics,
        code=code("aggregate"),
    output:
        table=run_path(paths.RUN_TABLE2),
        metrics_json=run_path(paths.RUN_METRICS),  # DVC's metrics file once published (dvc metrics show)
        fold_metrics=run_path(paths.RUN_FOLD_METRICS),  # DVC's plots file once published (dvc plots show)
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
        table=run_path(paths.RUN_TABLE2),
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
        report=run_path(paths.RUN_REPORT),
        figures=directory(run_path(paths.RUN_FIGURES)),
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


rule publish:
    input:
        run_table=run_path(paths.RUN_TABLE2),
        run_metrics_json=run_path(paths.RUN_METRICS),
        run_fold_metrics=run_path(paths.RUN_FOLD_METRICS),
        run_report=run_path(paths.RUN_REPORT),
        run_figures=run_path(paths.RUN_FIGURES),
        code=code("publish"),
    output:
        table=report(paths.TABLE2, caption="../report/table2.rst", category="Table 2"),
        metrics_json=paths.METRICS,  # DVC's metrics file (dvc metrics show)
        fold_metrics=paths.FOLD_METRICS,  # DVC's plots file (dvc plots show: accuracy per fold)
        report=report(paths.REPORT, caption="../report/report.rst", category="HTML report"),
        figures=report(
            directory(paths.FIGURES),
            patterns=["{kind}/{name}.png"],
            caption="../report/figures.rst",
            category="{kind}",
            labels={"figure": "{name}"},
        ),
    params:
        p=stage_params(config, "publish"),
    log:
        "logs/publish.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=200,
        runtime=5,
    message:
        "Publishing the run {input.run_table} to results/"
    script:
        "../scripts/stage.py"
