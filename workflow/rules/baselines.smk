# The other rows of Table 2: one job per (dataset, protocol, fold) for each baseline method, reading the
# aligned (not magnified) faces and the same folds file as training, writing the same per-fold files.
# One rule per method (named after it, with its own params section), made by the loop below; the flow
# networks, which read the flow stage's output instead, are in flow.smk. The pre-trained CNN runs only
# when pretrained_cnn.weights names a file, which is then an input: new weights rerun its folds.


# The frame CNNs also have a rule each for selection inner (their epoch chosen on validation subjects).
BASELINE_RULES = [*ON_ALIGNED, *(f"{cnn}_inner" for cnn in FRAME_CNNS)]

for baseline in BASELINE_RULES:
    base = baseline.removesuffix("_inner")

    rule:
        name:
            baseline
        input:
            **stage_inputs(baseline),
        output:
            **stage_outputs(baseline),
        params:
            p=stage_kwargs(baseline),
        log:
            f"logs/{baseline}/{{ds}}_{{protocol}}_seed{{seed}}_fold{{fold}}.log",
        conda:
            "../../environment.yml"
        threads: config[base]["threads"] if base in FRAME_CNNS else 1
        resources:
            mem_mb=8000 if base in FRAME_CNNS else 2000,
            runtime=240 if base in FRAME_CNNS else 30,
        message:
            f"{baseline} on {{wildcards.ds}}, {{wildcards.protocol}} fold {{wildcards.fold}}, seed {{wildcards.seed}}"
        script:
            "../scripts/stage.py"
