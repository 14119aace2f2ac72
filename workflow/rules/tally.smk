# Tally stage: per-chunk integer counts against the last threshold intervals, with the values inside them kept
# pending (chunk stores are kept after the reduce); the reduce that fixes the thresholds and IoU; the unit labels.

THRESHOLD_INTERVALS = OUT.threshold_bracket("{layer}", THRESHOLD_ROUNDS[-1][0])


rule tally_chunk:
    input:
        acts=OUT.activations("{layer}", "{chunk}"),
        segment=OUT.segmentation("{chunk}"),
        bracket=THRESHOLD_INTERVALS,
        concepts=OUT.concepts(),
    output:
        counts=directory(OUT.tally_chunk("{layer}", "{chunk}")),
    threads: 1
    log:
        OUT.log("tally", "{layer}", "{chunk}"),
    benchmark:
        OUT.benchmark("tally", "{layer}", "{chunk}"),
    resources:
        mem_mb=mem_mb(1000, 0.5),
        runtime=runtime(5, 0.05),
    script:
        SCRIPT


rule tally:
    localrule: True
    input:
        counts=get_layer_chunks(OUT.tally_chunk),
        bracket=THRESHOLD_INTERVALS,
        concepts=OUT.concepts(),
    output:
        tally=directory(OUT.tally("{layer}")),
        thresholds=OUT.thresholds("{layer}"),
    params:
        union=config["union"],
        quantile=config["quantile"],
    threads: 1
    log:
        OUT.log("tally", "{layer}", "reduce"),
    benchmark:
        OUT.benchmark("tally", "{layer}", "reduce"),
    resources:
        mem_mb=3000,
        runtime=10,
    script:
        SCRIPT


rule label_units:
    localrule: True
    input:
        unpack(get_statistics_input),
        tally=OUT.tally("{layer}"),
        concepts=OUT.concepts(),
    output:
        units=OUT.units("{layer}"),
        provenance=OUT.layer_provenance("{layer}"),
    params:
        iou_threshold=config["iou_threshold"],
        config=ndplan.provenance_config(config),
        weights_digest=get_network_digest,
        dataset_digest=get_images_digest,
    threads: 1
    log:
        OUT.log("label_units", "{layer}"),
    benchmark:
        OUT.benchmark("label_units", "{layer}"),
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        SCRIPT
