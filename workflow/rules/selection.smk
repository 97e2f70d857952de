# selection test (audits only, pipeline/selection.py): a fold's predictions at the epoch that scores best on its
# own test labels, read from the last run's per-epoch predictions (epochs.h5); no training. The RCNN's rule has a
# {method} wildcard (rcnn, rcnn_feedforward); the other networks' rules are named after them.


rule train_test:
    input:
        **stage_inputs("train_test"),
    output:
        **stage_outputs("train_test"),
    params:
        p=stage_kwargs("train_test"),
    log:
        "logs/train_test/{ds}_{protocol}_{method}_seed{seed}_fold{fold}.log",
    wildcard_constraints:
        **stage_constraints("train_test"),
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=1000,
        runtime=10,
    message:
        "{wildcards.method}, epoch chosen on the test labels (audit), {wildcards.ds} {wildcards.protocol} fold {wildcards.fold}"
    script:
        "../scripts/stage.py"


for selectable in [*FRAME_CNNS, *ON_FLOW]:
    test_rule = f"{selectable}_test"

    rule:
        name:
            test_rule
        input:
            **stage_inputs(test_rule),
        output:
            **stage_outputs(test_rule),
        params:
            p=stage_kwargs(test_rule),
        log:
            f"logs/{test_rule}/{{ds}}_{{protocol}}_seed{{seed}}_fold{{fold}}.log",
        conda:
            "../../environment.yml"
        threads: 1
        resources:
            mem_mb=1000,
            runtime=10,
        message:
            f"{selectable}, epoch chosen on the test labels (audit), {{wildcards.ds}} {{wildcards.protocol}} fold {{wildcards.fold}}"
        script:
            "../scripts/stage.py"
