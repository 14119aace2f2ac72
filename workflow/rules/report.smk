# Report stage: a figure per layer and a summary table across layers; each unit's top images (per-chunk top-k
# states, no second pass over the model); one HTML page per layer and the overview, results/<run>/report/.


rule layer_figure:
    localrule: True
    input:
        units=OUT.units("{layer}"),
    output:
        figure=report(
            OUT.detectors_figure("{layer}"),
            caption="../report/detectors.rst",
            category="Dissection",
            subcategory="{layer}",
        ),
    params:
        iou_threshold=config["iou_threshold"],
    threads: 1
    log:
        OUT.log("report", "{layer}"),
    benchmark:
        OUT.benchmark("report", "{layer}"),
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
        summary=report(OUT.summary(), caption="../report/summary.rst", category="Dissection"),
        provenance=OUT.provenance(),
    params:
        layers=LAYERS,
    threads: 1
    log:
        OUT.log("report", "summary"),
    benchmark:
        OUT.benchmark("report", "summary"),
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        SCRIPT


rule top_images_chunk:
    input:
        acts=OUT.activations("{layer}", "{chunk}"),
    output:
        top=OUT.top_images_state("{layer}", "{chunk}"),
    params:
        k=config["report"]["top_images"],
    threads: 1
    log:
        OUT.log("report", "{layer}", "top-{chunk}"),
    benchmark:
        OUT.benchmark("report", "{layer}", "top-{chunk}"),
    resources:
        mem_mb=mem_mb(500, 0.2),
        runtime=runtime(2, 0.01),
    script:
        SCRIPT


rule layer_report:
    localrule: True
    input:
        source=get_source_input(),
        top=get_layer_chunks(OUT.top_images_state),
        acts=get_layer_chunks(OUT.activations),
        tally=OUT.tally("{layer}"),
        units=OUT.units("{layer}"),
    output:
        folder=report(
            directory(OUT.report_layer("{layer}")),
            htmlindex="index.html",
            caption="../report/layer.rst",
            category="Report",
            labels={"layer": "{layer}"},
        ),
    params:
        run=config["run"],
        layers=LAYERS,
        k=config["report"]["top_images"],
        label_size=PLAN.label_size,
        source=SOURCE,
        resize=DATASET["resize"],
        iou_threshold=config["iou_threshold"],
        fdr_q=config["statistics"]["fdr_q"],
    threads: 1
    log:
        OUT.log("report", "{layer}", "page"),
    benchmark:
        OUT.benchmark("report", "{layer}", "page"),
    resources:
        mem_mb=3000,
        runtime=20,
    script:
        SCRIPT


rule report_index:
    localrule: True
    input:
        unpack(get_report_inputs),
        summary=OUT.summary(),
        provenance=OUT.provenance(),
        units=[OUT.units(layer) for layer in LAYERS],
        pages=[OUT.report_layer(layer) for layer in LAYERS],
    output:
        index=OUT.report_index(),
        layers_png=report(OUT.report_figure("layers"), caption="../report/layers.rst", category="Dissection"),
        layers_svg=OUT.report_figure("layers", "svg"),
    params:
        run=config["run"],
        layers=LAYERS,
        model=MODEL.as_params(),
        dataset=DATASET,
        segmenter=SEGMENTER,
        quantile=config["quantile"],
        iou_threshold=config["iou_threshold"],
        adversarial=config["adversarial"],
        ablation_layers=get_ablation_layers(),
        fdr_q=config["statistics"]["fdr_q"],
        ablation_value=config["ablation"]["value"],
        gan_layers=GAN_LAYERS,
        gan=config["gan"],
    threads: 1
    log:
        OUT.log("report", "index"),
    benchmark:
        OUT.benchmark("report", "index"),
    resources:
        mem_mb=1000,
        runtime=5,
    script:
        SCRIPT


rule report:
    localrule: True
    input:
        get_report_outputs(),
