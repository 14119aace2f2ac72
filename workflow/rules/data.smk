# Data stage: the synthetic world (when used) and the index of the dissected images.

if SYNTHETIC:

    rule synthesize:
        output:
            world=directory(OUT.world()),
        params:
            **world_params(),
        threads: 1
        log:
            OUT.log("synthesize"),
        benchmark:
            OUT.benchmark("synthesize")
        resources:
            mem_mb=2000,
            runtime=60,
        script:
            SCRIPT


rule data_index:
    localrule: True
    input:
        source=get_source_input(),
    output:
        index=OUT.index(),
    params:
        source=SOURCE,
        size=DATASET["size"],
        skip_bad_images=DATASET["skip_bad_images"],
    threads: 1
    log:
        OUT.log("data_index"),
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        SCRIPT
