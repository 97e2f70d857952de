# The onset-apex flow networks: the flow stage (flow and strain of every aligned clip, with the apex spotting
# table); per network (STSTNet, OFF-ApexNet) and selection (last, inner) one job that trains every fold of a
# (dataset, protocol, seed) together (folds_together, the default), and one job per fold writing the same
# per-fold files as every other Table 2 row (training the fold itself when folds_together is false); HTNet
# per fold. The flow stage runs only when a flow network is listed.


rule flow:
    input:
        **stage_inputs("flow"),
    output:
        **stage_outputs("flow"),
    params:
        p=stage_kwargs("flow"),
    log:
        "logs/flow/{ds}.log",
    conda:
        "../../environment.yml"
    threads: 1
    resources:
        mem_mb=2000,
        runtime=60,
    message:
        "Onset-apex TV-L1 flow and optical strain of {wildcards.ds}"
    script:
        "../scripts/stage.py"


# One pair of rules per network and training selection (last; inner: the epoch chosen on validation subjects).
FLOWNET_RULES = [*FLOWNETS, *(f"{flownet}_inner" for flownet in FLOWNETS)]

for flownet_rule in FLOWNET_RULES:
    flownet = flownet_rule.removesuffix("_inner")
    flownet_folds = f"{flownet_rule}_folds"

    rule:
        name:
            flownet_folds
        input:
            **stage_inputs(flownet_folds),
        output:
            **stage_outputs(flownet_folds),
        params:
            p=stage_kwargs(flownet_folds),
        log:
            f"logs/{flownet_folds}/{{ds}}_{{protocol}}_seed{{seed}}.log",
        conda:
            "../../environment.yml"
        threads: config[flownet]["threads"]
        resources:
            mem_mb=4000,
            runtime=240,
        message:
            f"{flownet_rule}: every {{wildcards.protocol}} fold of {{wildcards.ds}} trained together, seed {{wildcards.seed}}"
        script:
            "../scripts/stage.py"

    rule:
        name:
            flownet_rule
        input:
            **stage_inputs(flownet_rule),
        output:
            **stage_outputs(flownet_rule),
        params:
            p=stage_kwargs(flownet_rule),
        log:
            f"logs/{flownet_rule}/{{ds}}_{{protocol}}_seed{{seed}}_fold{{fold}}.log",
        conda:
            "../../environment.yml"
        threads: config[flownet]["threads"]
        resources:
            mem_mb=2000,
            runtime=120,
        message:
            f"{flownet_rule} on {{wildcards.ds}}, {{wildcards.protocol}} fold {{wildcards.fold}}, seed {{wildcards.seed}}"
        script:
            "../scripts/stage.py"


# HTNet: one job per fold (139.6 M weights at the authors' size), on a GPU with resources.train_gpus.
for htnet_rule in ("htnet", "htnet_inner"):

    rule:
        name:
            htnet_rule
        input:
            **stage_inputs(htnet_rule),
        output:
            **stage_outputs(htnet_rule),
        params:
            p=stage_kwargs(htnet_rule),
        log:
            f"logs/{htnet_rule}/{{ds}}_{{protocol}}_seed{{seed}}_fold{{fold}}.log",
        conda:
            "../../environment.yml"
        threads: config["htnet"]["threads"]
        resources:
            **TRAIN_RESOURCES,
        message:
            f"{htnet_rule} on {{wildcards.ds}}, {{wildcards.protocol}} fold {{wildcards.fold}}, seed {{wildcards.seed}}"
        script:
            "../scripts/stage.py"
