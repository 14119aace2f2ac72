# Segment stage: concepts.csv, the trained segmenter (synthetic world), per-chunk label stores, their quality.


rule concepts:
    localrule: True
    input:
        source=get_source_input(),
    output:
        concepts=OUT.concepts(),
    params:
        segmenter=SEGMENTER,
        source=SOURCE,
    threads: 1
    log:
        OUT.log("concepts"),
    benchmark:
        OUT.benchmark("concepts"),
    resources:
        mem_mb=1000,
        runtime=10,
    script:
        SCRIPT


if is_trained_segmenter():

    rule train_segmenter:
        input:
            source=get_source_input(),
        output:
            segmenter=CACHE.segmenter(SEGMENTER_KEY),
            metrics=CACHE.segmenter_metrics(SEGMENTER_KEY),
        params:
            **TRAINED_SEGMENTER,
        threads: 1
        priority: 1  # the longest job, and labelling waits for it: start it first
        log:
            CACHE.entry("segmenter", SEGMENTER_KEY, "train_segmenter.log"),
        benchmark:
            CACHE.entry("segmenter", SEGMENTER_KEY, "train_segmenter.tsv")
        resources:
            mem_mb=4000,
            runtime=120,
            **gpu_resources(),
        script:
            SCRIPT

    rule segmenter_quality:
        localrule: True
        input:
            stores=[OUT.segmentation(c) for c in CHUNKS],
            concepts=OUT.concepts(),
        output:
            quality=OUT.segmenter_quality(),
        params:
            pixel_categories=list(ndplan.synthetic_vocabulary()[0]),
        threads: 1
        log:
            OUT.log("segmenter_quality"),
        benchmark:
            OUT.benchmark("segmenter_quality"),
        resources:
            mem_mb=1000,
            runtime=10,
        script:
            SCRIPT


rule segment_chunk:
    input:
        unpack(get_segmenter_input),
        source=get_source_input(),
        concepts=OUT.concepts(),
    output:
        store=directory(OUT.segmentation("{chunk}")),
    wildcard_constraints:
        chunk=ndplan.CHUNK_PATTERN,  # generated images are labelled by generate_chunk
    params:
        start=chunk_start,
        stop=chunk_stop,
        digest=chunk_digest,
        source=SOURCE,
        segmenter=SEGMENTER,
        segmenter_digest=ndplan.segmenter_digest(config),
        label_size=PLAN.label_size,
        image_size=PLAN.image_size,
        resize=DATASET["resize"],
        skip_bad_images=DATASET["skip_bad_images"],
        allow_pickle=config["model"]["allow_pickle"],
        pixel_categories=list(ndplan.synthetic_vocabulary()[0]) if is_trained_segmenter() else [],
    threads: 1
    log:
        OUT.log("segment", "{chunk}"),
    benchmark:
        OUT.benchmark("segment", "{chunk}"),
    resources:
        mem_mb=mem_mb(1000, 0.5),
        runtime=runtime(10, 0.05),
        **gpu_resources(SEGMENTER["kind"] != "dataset"),
    script:
        SCRIPT
