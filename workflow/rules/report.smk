# Report stage: a figure per layer and a summary table across layers.


rule layer_figure:
    localrule: True
    input:
        units=OUT.units("{layer}"),
    output:
        figure=OUT.detectors_figure("{layer}"),
    params:
        iou_threshold=config["iou_threshold"],
    threads: 1
    log:
        OUT.log("report", "{layer}"),
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        SCRIPT


rule summary:
    localrule: True
    input:
        units=[OUT.units(layer) for layer in LAYERS],
        provenance=[OUT.layer_provenance(layer) for layer in LAYERS],
        index=OUT.index(),
    output:
        summary=OUT.summary(),
        provenance=OUT.provenance(),
    params:
        layers=LAYERS,
    threads: 1
    log:
        OUT.log("report", "summary"),
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        SCRIPT
