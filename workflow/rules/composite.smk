# Composites (pipeline/composite.py), e.g. MEGC 2019's SMIC-HS + CASME II + SAMM: a composite's index and
# aligned store are made from its sources' (the sources' own index and align rules); from magnify on, the
# per-dataset rules run on data/{composite}/ as on any dataset, folds included (shared by every method).


rule composite_index:
    input:
        **stage_inputs("composite_index"),
    output:
        **stage_outputs("composite_index"),
    params:
        p=stage_kwargs("composite_index"),
    log:
        "logs/composite_index/{ds}.log",
    wildcard_constraints:
        **stage_constraints("composite_index"),
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
        **stage_inputs("composite_aligned"),
    output:
        **stage_outputs("composite_aligned"),
    params:
        p=stage_kwargs("composite_aligned"),
    log:
        "logs/composite_aligned/{ds}.log",
    wildcard_constraints:
        **stage_constraints("composite_aligned"),
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
