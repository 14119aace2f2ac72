# Report stage: a figure per layer and a summary table across layers.


rule layer_figure:
    input:
        units=f"{RUN}/dissect/{{layer}}/units.csv",
    output:
        figure=f"{RUN}/dissect/{{layer}}/detectors.png",
    params:
        iou_threshold=config["iou_threshold"],
    threads: 1
    log:
        f"{RUN}/logs/report/{{layer}}.log",
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        SCRIPT


rule summary:
    input:
        units=expand(f"{RUN}/dissect/{{layer}}/units.csv", layer=LAYERS),
        provenance=expand(f"{RUN}/dissect/{{layer}}/provenance.json", layer=LAYERS),
        index=f"{RUN}/data/index.csv",
    output:
        summary=f"{RUN}/summary.csv",
        provenance=f"{RUN}/provenance.json",
    params:
        layers=LAYERS,
    threads: 1
    log:
        f"{RUN}/logs/report/summary.log",
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        SCRIPT
