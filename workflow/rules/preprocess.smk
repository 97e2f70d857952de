# Preprocessing: face alignment, Eulerian magnification, jittered tensors, and the saved folds.


rule align:
    input:
        index=paths.INDEX,
        code=code("align"),
    output:
        h5=paths.ALIGNED,
        qc=directory(paths.ALIGN_QC),
    params:
        p=stage_params(config, "align"),
    log:
        "logs/align/{ds}.log",
    wildcard_constraints:
        ds=TREE_DATASET,
    conda:
        "../../environment.yml"
    threads: 2  # frames are read by a small thread pool
    resources:
        mem_mb=2000,
        runtime=60,
    message:
        "Aligning the faces of {wildcards.ds} (dlib, 68 landmarks)"
    script:
        "../scripts/stage.py"


rule magnify:
    input:
        aligned=paths.ALIGNED,
        code=code("magnify"),
    output:
        h5=paths.MAGNIFIED,
        qc=directory(paths.MAGNIFY_QC),
    params:
        p=stage_params(config, "magnify"),
    log:
        "logs/magnify/{ds}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    message:
        "Magnifying the motion of {wildcards.ds} (Eulerian video magnification)"
    script:
        "../scripts/stage.py"


rule tensors:
    input:
        magnified=paths.MAGNIFIED,
        code=code("tensors"),
    output:
        h5=paths.TENSORS,
    params:
        p=lambda wildcards: stage_params(config, "tensors", ds=wildcards.ds),
    log:
        "logs/tensors/{ds}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    message:
        "Building the temporally jittered tensors of {wildcards.ds}"
    script:
        "../scripts/stage.py"


checkpoint folds:
    input:
        index=paths.INDEX,
        code=code("folds"),
    output:
        folds=paths.FOLDS,
    params:
        p=stage_params(config, "folds"),
    log:
        "logs/folds/{ds}_{protocol}.log",
    # Seconds of work that every fold job waits on: run it as soon as the index is there, not beside a
    # long stage that may be interrupted.
    priority: 1
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=500,
        runtime=10,
    message:
        "Computing the {wildcards.protocol} folds of {wildcards.ds} (once, shared by every method)"
    script:
        "../scripts/stage.py"
