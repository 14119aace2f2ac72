# Tally stage: per-chunk integer counts against the last threshold intervals, with the values inside them kept
# pending (chunk stores are kept after the reduce); the reduce that fixes the thresholds and IoU; the unit labels.

THRESHOLD_INTERVALS = f"{RUN}/thresholds/{{layer}}/{THRESHOLD_ROUNDS[-1][0]}.npz"


rule tally_chunk:
    input:
        acts=get_activations,
        segment=f"{RUN}/segment/{{chunk}}.zarr",
        bracket=THRESHOLD_INTERVALS,
        concepts=f"{RUN}/concepts.csv",
    output:
        counts=directory(f"{RUN}/tally/{{layer}}/{{chunk}}.zarr"),
    threads: 1
    log:
        f"{RUN}/logs/tally/{{layer}}/{{chunk}}.log",
    benchmark:
        f"{RUN}/benchmarks/tally/{{layer}}/{{chunk}}.tsv"
    resources:
        mem_mb=mem_mb(1000, 4),
        runtime=runtime(5, 0.05),
    script:
        SCRIPT


rule tally:
    input:
        counts=get_layer_chunks("{run}/tally/{layer}/{chunk}.zarr"),
        bracket=THRESHOLD_INTERVALS,
        concepts=f"{RUN}/concepts.csv",
    output:
        tally=directory(f"{RUN}/dissect/{{layer}}/tally.zarr"),
        thresholds=f"{RUN}/dissect/{{layer}}/thresholds.csv",
    params:
        union=config["union"],
        quantile=config["quantile"],
    threads: 1
    log:
        f"{RUN}/logs/tally/{{layer}}/reduce.log",
    resources:
        mem_mb=3000,
        runtime=10,
    script:
        SCRIPT


rule label_units:
    input:
        tally=f"{RUN}/dissect/{{layer}}/tally.zarr",
        concepts=f"{RUN}/concepts.csv",
    output:
        units=f"{RUN}/dissect/{{layer}}/units.csv",
        provenance=f"{RUN}/dissect/{{layer}}/provenance.json",
    params:
        iou_threshold=config["iou_threshold"],
        config=provenance_config(),
        weights_digest=MODEL["digest"],
        dataset_digest=digest([c.digest for c in PLAN.chunks]),
    threads: 1
    log:
        f"{RUN}/logs/label_units/{{layer}}.log",
    resources:
        mem_mb=2000,
        runtime=5,
    script:
        SCRIPT
