# The onset-apex flow networks: the flow stage (flow and strain of every aligned clip, with the apex spotting
# table); per network (STSTNet, OFF-ApexNet) one job that trains every fold of a (dataset, protocol, seed)
# together (folds_together, the default), and one job per fold writing the same per-fold files as every
# other Table 2 row (training the fold itself when folds_together is false). The flow stage runs only when
# a flow network is listed (the report reads its QC only then).


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


for flownet in FLOWNETS:
    flownet_folds = f"{flownet}_folds"

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
            f"{flownet}: every {{wildcards.protocol}} fold of {{wildcards.ds}} trained together, seed {{wildcards.seed}}"
        script:
            "../scripts/stage.py"

    rule:
        name:
            flownet
        input:
            **stage_inputs(flownet),
        output:
            **stage_outputs(flownet),
        params:
            p=stage_kwargs(flownet),
        log:
            f"logs/{flownet}/{{ds}}_{{protocol}}_seed{{seed}}_fold{{fold}}.log",
        conda:
            "../../environment.yml"
        threads: config[flownet]["threads"]
        resources:
            mem_mb=2000,
            runtime=120,
        message:
            f"{flownet} on {{wildcards.ds}}, {{wildcards.protocol}} fold {{wildcards.fold}}, seed {{wildcards.seed}}"
        script:
            "../scripts/stage.py"
