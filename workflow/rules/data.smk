# Data stage: the synthetic world (when used) and the index of the dissected images.

if SYNTHETIC:
    WORLD_KEY = ndplan.world_key(config)

    rule synthesize:
        output:
            world=directory(CACHE.world(WORLD_KEY)),
        params:
            **ndplan.world_params(config),
        threads: 2
        log:
            CACHE.entry("world", WORLD_KEY, "synthesize.log"),
        benchmark:
            CACHE.entry("world", WORLD_KEY, "synthesize.tsv")
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
    benchmark:
        OUT.benchmark("data_index"),
    resources:
        mem_mb=2000,
        runtime=30,
    script:
        SCRIPT
