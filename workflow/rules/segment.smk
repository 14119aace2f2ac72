# Segment stage: concepts.csv, the trained segmenter (synthetic world), per-chunk label stores, their quality.


rule concepts:
    input:
        source=get_source_input(),
    output:
        concepts=f"{RUN}/concepts.csv",
    params:
        segmenter=SEGMENTER,
        source=SOURCE,
    threads: 1
    log:
        f"{RUN}/logs/concepts.log",
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
            segmenter=f"{RUN}/segmenter/segnet.pt",
            metrics=f"{RUN}/segmenter/training.json",
        params:
            source=SOURCE,
            resize=DATASET["resize"],
            image_size=PLAN.image_size,
            pixel_vocabulary=pixel_vocabulary()[0],
            image_vocabulary=pixel_vocabulary()[1],
            seed=config["seed"],
            epochs=SEGMENTER["epochs"],
            batch_size=SEGMENTER["batch_size"],
            lr=SEGMENTER["lr"],
        threads: 2
        log:
            f"{RUN}/logs/train_segmenter.log",
        benchmark:
            f"{RUN}/benchmarks/train_segmenter.tsv"
        resources:
            mem_mb=4000,
            runtime=120,
            **gpu_resources(),
        script:
            SCRIPT

    rule segmenter_quality:
        input:
            stores=expand(f"{RUN}/segment/{{chunk}}.zarr", chunk=CHUNKS),
            concepts=f"{RUN}/concepts.csv",
        output:
            quality=f"{RUN}/segmenter/quality.json",
        params:
            pixel_categories=list(pixel_vocabulary()[0]),
        threads: 1
        log:
            f"{RUN}/logs/segmenter_quality.log",
        resources:
            mem_mb=1000,
            runtime=10,
        script:
            SCRIPT


rule segment_chunk:
    input:
        unpack(lambda wildcards: {"segmenter": f"{RUN}/segmenter/segnet.pt"} if is_trained_segmenter() else {}),
        source=get_source_input(),
        concepts=f"{RUN}/concepts.csv",
    output:
        store=directory(f"{RUN}/segment/{{chunk}}.zarr"),
    params:
        start=chunk_start,
        stop=chunk_stop,
        digest=chunk_digest,
        source=SOURCE,
        segmenter=SEGMENTER,
        segmenter_digest=segmenter_digest(),
        label_size=PLAN.label_size,
        image_size=PLAN.image_size,
        resize=DATASET["resize"],
        skip_bad_images=DATASET["skip_bad_images"],
        allow_pickle=config["model"]["allow_pickle"],
        pixel_categories=list(pixel_vocabulary()[0]) if is_trained_segmenter() else [],
    threads: 1
    log:
        f"{RUN}/logs/segment/{{chunk}}.log",
    benchmark:
        f"{RUN}/benchmarks/segment/{{chunk}}.tsv"
    resources:
        mem_mb=mem_mb(1000, 2),
        runtime=runtime(10, 0.05),
        **gpu_resources(SEGMENTER["kind"] != "dataset"),
    script:
        SCRIPT
