# The onset-apex flow networks: the flow stage (TV-L1 flow and strain of every aligned clip, with the apex
# spotting table) and one job per (dataset, protocol, fold) for each network (STSTNet, OFF-ApexNet), writing
# the same per-fold files as every other Table 2 row. The flow stage runs only when a flow network is listed
# (the report reads its QC only then).


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
