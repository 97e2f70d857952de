# Aggregation: Table 2 (ours beside the paper's) and the HTML report, made in the run folder of the
# current params (results/runs/{run}, pipeline/runs.py), then published to results/. Table 2's JSON is
# DVC's metrics file once published (dvc metrics show), its per-fold CSV DVC's plots file (dvc plots show).


rule aggregate:
    input:
        **stage_inputs("aggregate"),
    output:
        **stage_outputs("aggregate"),
    params:
        p=stage_kwargs("aggregate"),
    log:
        "logs/aggregate.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    message:
        "Aggregating the per-fold metrics into {output.out_csv}"
    script:
        "../scripts/stage.py"


rule report:
    input:
        **stage_inputs("report"),
    output:
        # The same figures twice: embedded in the page, and as PNGs for `snakemake --report report.zip`.
        **stage_outputs("report"),
    params:
        p=stage_kwargs("report"),
    log:
        "logs/report.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    message:
        "Writing the HTML report {output.out_html}"
    script:
        "../scripts/stage.py"


rule publish:
    input:
        **stage_inputs("publish"),
    output:
        # What `snakemake --report report.zip` shows, and how.
        **stage_outputs(
            "publish",
            table=lambda path: report(path, caption="../report/table2.rst", category="Table 2"),
            report=lambda path: report(path, caption="../report/report.rst", category="HTML report"),
            figures=lambda path: report(
                path,
                patterns=["{kind}/{name}.png"],
                caption="../report/figures.rst",
                category="{kind}",
                labels={"figure": "{name}"},
            ),
        ),
    params:
        p=stage_kwargs("publish"),
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
