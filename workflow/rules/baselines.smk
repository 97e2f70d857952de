# The other rows of Table 2: one job per (dataset, protocol, fold) for each baseline method, reading the
# aligned (not magnified) faces and the same folds file as training, writing the same per-fold files.
# One rule per method (named after it, with its own params section), made by the loop below; the flow
# networks, which read the flow stage's output instead, are in flow.smk.
# The pre-trained CNN's rule runs only when pretrained_cnn.weights names a file (common.smk, fold_dirs).


def baseline_inputs(method):
    inputs = {"aligned": paths.ALIGNED, "folds": paths.FOLDS, "code": code(method)}
    if method == "pretrained_cnn" and config["pretrained_cnn"]["weights"]:
        inputs["weights"] = config["pretrained_cnn"]["weights"]  # new weights rerun the folds
    return inputs


FRAME_CNNS = ("cnn", "pretrained_cnn")  # VGG-16s on single frames: more threads, memory and time


for baseline in ON_ALIGNED:

    rule:
        name:
            baseline
        input:
            **baseline_inputs(baseline),
        output:
            predictions=f"{paths.FOLD_DIR.replace('{method}', baseline)}/predictions.csv",
            metrics=f"{paths.FOLD_DIR.replace('{method}', baseline)}/metrics.json",
        params:
            p=lambda wildcards, method=baseline: stage_params(config, method, ds=wildcards.ds, seed=int(wildcards.seed)),
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
