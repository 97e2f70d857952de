# Aggregation: Table 2 (ours beside the paper's) and the HTML report.


rule aggregate:
    input:
        metrics=fold_metrics,
        code=code("aggregate"),
    output:
        table=paths.TABLE2,
    params:
        datasets={ds: config["dataset"][ds] for ds in config["datasets"]},
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
        "../scripts/aggregate.py"


rule report:
    input:
        table=paths.TABLE2,
        metrics=fold_metrics,
        predictions=fold_predictions,
        align_qc=expand(paths.ALIGN_QC, ds=config["datasets"]),
        magnify_qc=expand(paths.MAGNIFY_QC, ds=config["datasets"]),
        code=code("report"),
    output:
        report=paths.REPORT,
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
        "../scripts/report.py"
