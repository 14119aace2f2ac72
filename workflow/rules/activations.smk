# Activations stage: per-layer, per-chunk activation stores (N, C, h, w), and each store's round 1 of the
# thresholds (computed from the values as they are stored, so it costs no job and no second read of the store).
# Layers still to extract share one forward pass per chunk (rule activations); layers already extracted with
# the current model have a single-layer rule, so adding a layer to the config extracts that layer only.


def activation_params():
    return dict(
        start=chunk_start,
        stop=chunk_stop,
        digest=chunk_digest,
        source=SOURCE,
        model=MODEL.as_params(),
        image_size=PLAN.image_size,
        resize=DATASET["resize"],
        batch_size=config["batch_size"],
        dtype=config["activations"]["dtype"],
        autocast=config["activations"]["autocast"],
        device=config["device"],
        skip_bad_images=DATASET["skip_bad_images"],
        label_size=PLAN.label_size,
    )


if PENDING_LAYERS:

    rule activations:
        input:
            unpack(lambda wildcards: get_weights_input()),
            source=get_source_input(),
        output:
            stores=[directory(OUT.activations(layer, "{chunk}")) for layer in PENDING_LAYERS],
            coarse=[OUT.threshold_state(layer, "coarse", "{chunk}") for layer in PENDING_LAYERS],
        wildcard_constraints:
            chunk=ndplan.CHUNK_PATTERN,
        params:
            **activation_params(),
        threads: config["activations"]["threads"]
        log:
            OUT.log("activations", "{chunk}"),
        benchmark:
            OUT.benchmark("activations", "{chunk}"),
        resources:
            mem_mb=mem_mb(2000, 0.5),
            runtime=runtime(10, 0.1),
            **gpu_resources(),
        script:
            SCRIPT


if EXTRACTED_LAYERS:

    rule activations_layer:
        input:
            unpack(lambda wildcards: get_weights_input()),
            source=get_source_input(),
        output:
            stores=directory(OUT.activations("{layer}", "{chunk}")),
            coarse=OUT.threshold_state("{layer}", "coarse", "{chunk}"),
        wildcard_constraints:
            layer="|".join(re.escape(layer) for layer in EXTRACTED_LAYERS),
            chunk=ndplan.CHUNK_PATTERN,
        params:
            **activation_params(),
        threads: config["activations"]["threads"]
        log:
            OUT.log("activations", "{layer}", "{chunk}"),
        benchmark:
            OUT.benchmark("activations", "{layer}", "{chunk}"),
        resources:
            mem_mb=mem_mb(2000, 0.5),
            runtime=runtime(10, 0.1),
            **gpu_resources(),
        script:
            SCRIPT
