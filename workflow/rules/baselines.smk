# The other rows of Table 2: one job per (dataset, protocol, fold) for each baseline method, reading the
# aligned (not magnified) faces and the same folds file as training, writing the same per-fold files.
# One rule per method (named after it, with its own params section), made by the loop below; the flow
# networks, which read the flow stage's output instead, are in flow.smk. The pre-trained CNN runs only
# when pretrained_cnn.weights names a file, which is then an input: new weights rerun its folds.

FRAME_CNNS = ("cnn", "pretrained_cnn")  # VGG-16s on single frames: more threads, memory and time


for baseline in ON_ALIGNED:

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
        threads: config[baseline]["threads"] if baseline in FRAME_CNNS else 1
        resources:
            mem_mb=8000 if baseline in FRAME_CNNS else 2000,
            runtime=240 if baseline in FRAME_CNNS else 30,
        message:
            f"{baseline} on {{wildcards.ds}}, {{wildcards.protocol}} fold {{wildcards.fold}}, seed {{wildcards.seed}}"
        script:
            "../scripts/stage.py"
