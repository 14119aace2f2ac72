# Data stage: the synthetic world (when used) and the index of the dissected images.

if SYNTHETIC:

    rule synthesize:
        output:
            world=directory(f"{RUN}/world"),
        params:
            **world_params(),
        threads: 1
        log:
            f"{RUN}/logs/synthesize.log",
        benchmark:
            f"{RUN}/benchmarks/synthesize.tsv"
        resources:
            mem_mb=2000,
            runtime=60,
        script:
            SCRIPT


rule data_index:
    input:
        source=get_source_input(),
    output:
        index=f"{RUN}/data/index.csv",
    params:
        source=SOURCE,
        size=DATASET["size"],
        skip_bad_images=DATASET["skip_bad_images"],
    threads: 1
    log:
        f"{RUN}/logs/data_index.log",
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        SCRIPT
