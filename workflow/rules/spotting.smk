# Spotting (docs/spotting.md): snakemake results/spotting.csv spots every long-video dataset of
# spotting.datasets with every spotter of spotting.spotters and scores them with MEGC's metric (the table, and
# results/spotting.html with every video's curves). Not part of
# `all`. A synthetic dataset's tree is generated first (synth_long; the short-clip layouts are synth's).

from pipeline.datasets.long_layouts import LONG_LAYOUTS

SPOTTING = config["spotting"]


rule synth_long:
    output:
        out_dir=directory(paths.SYNTH_DIR),
    params:
        p={"synth": config["synth"], "long_videos": config["synth_long_videos"]},
    log:
        "logs/synth_long/{layout}.log",
    wildcard_constraints:
        layout="|".join(LONG_LAYOUTS),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    message:
        "Generating synthetic {wildcards.layout} long videos from real face photos"
    script:
        "../scripts/spotting.py"


rule spot:
    input:
        tree=lambda wildcards: SPOTTING["datasets"][wildcards.sds]["root"],
        code=[str(PACKAGE_ROOT / path) for path in module_closure("pipeline.spotting.run")],
    output:
        out_dir=directory(paths.SPOTTING_DIR),
    params:
        layout=lambda wildcards: SPOTTING["datasets"][wildcards.sds]["layout"],
        p=lambda wildcards: {"registration": SPOTTING["registration"], "params": SPOTTING[wildcards.spotter]},
    log:
        "logs/spotting/{sds}_{spotter}.log",
    wildcard_constraints:
        sds="|".join(SPOTTING["datasets"]) or "(?!)",
        spotter="|".join(SPOTTING["spotters"]) or "(?!)",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=240,
    message:
        "Spotting {wildcards.sds} with {wildcards.spotter}"
    script:
        "../scripts/spotting.py"


rule spotting:
    input:
        spotted=[paths.SPOTTING_DIR.format(sds=name, spotter=spotter)
                for name in SPOTTING["datasets"] for spotter in SPOTTING["spotters"]],
        code=[str(PACKAGE_ROOT / path) for path in module_closure("pipeline.spotting.table")],
    output:
        table=paths.SPOTTING_TABLE,
        page=paths.SPOTTING_REPORT,
    params:
        p={"datasets": SPOTTING["datasets"], "spotters": SPOTTING["spotters"]},
    log:
        "logs/spotting.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    message:
        "Spotting table {output.table} and page {output.page}: MEGC's spotting metric per dataset and spotter"
    script:
        "../scripts/spotting.py"
