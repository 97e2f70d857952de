# Preprocessing: face alignment, Eulerian magnification, jittered tensors, and the saved folds. Each rule's
# inputs, outputs and params come from its stage's entry in pipeline/stages.py (common.smk).


rule align:
    input:
        **stage_inputs("align"),
    output:
        **stage_outputs("align"),
    params:
        p=stage_kwargs("align"),
    log:
        "logs/align/{ds}.log",
    wildcard_constraints:
        **stage_constraints("align"),
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
        **stage_inputs("magnify"),
    output:
        **stage_outputs("magnify"),
    params:
        p=stage_kwargs("magnify"),
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
        **stage_inputs("tensors"),
    output:
        **stage_outputs("tensors"),
    params:
        p=stage_kwargs("tensors"),
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
        **stage_inputs("folds"),
    output:
        **stage_outputs("folds"),
    params:
        p=stage_kwargs("folds"),
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
