# Composites (pipeline/composite.py), e.g. MEGC 2019's SMIC-HS + CASME II + SAMM: a composite's index and
# aligned store are made from its sources' (the sources' own index and align rules); from magnify on, the
# per-dataset rules run on data/{composite}/ as on any dataset, folds included (shared by every method).


rule composite_index:
    input:
        source_indexes=per_source(paths.INDEX),
        code=code("composite_index"),
    output:
        index=paths.INDEX,
        excluded=paths.EXCLUDED,
    params:
        p=lambda wildcards: stage_params(config, "composite_index", ds=wildcards.ds),
    log:
        "logs/composite_index/{ds}.log",
    wildcard_constraints:
        ds=COMPOSITE_DATASET,
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    message:
        "Pooling the clips of {wildcards.ds}'s sources under its mapping"
    script:
        "../scripts/stage.py"


rule composite_aligned:
    input:
        index=paths.INDEX,
        aligned=per_source(paths.ALIGNED),
        align_qc=per_source(paths.ALIGN_QC),
        code=code("composite_aligned"),
    output:
        h5=paths.ALIGNED,
        qc=directory(paths.ALIGN_QC),
    params:
        p=lambda wildcards: stage_params(config, "composite_aligned", ds=wildcards.ds),
    log:
        "logs/composite_aligned/{ds}.log",
    wildcard_constraints:
        ds=COMPOSITE_DATASET,
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=30,
    message:
        "Copying the aligned clips of {wildcards.ds} from its sources' stores"
    script:
        "../scripts/stage.py"
