# Threshold stage: rounds of per-chunk histograms and reduces narrow each unit's top-q level to one small
# interval; the tally's count pass pins it down (see src/netdissect/stages/thresholds.py and tally.py).
# Round-1 chunk states come from the activation jobs (activations.smk, gan.smk); they do not depend on the quantile.


rule threshold_coarse:
    localrule: True
    input:
        states=get_layer_chunks(lambda layer, chunk: OUT.threshold_state(layer, "coarse", chunk)),
    output:
        bracket=OUT.threshold_bracket("{layer}", "coarse"),
    params:
        quantile=config["quantile"],
        label_size=PLAN.label_size,
    threads: 1
    log:
        OUT.log("thresholds", "{layer}", "coarse"),
    benchmark:
        OUT.benchmark("thresholds", "{layer}", "coarse"),
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        SCRIPT


from netdissect.stages.thresholds import ROUNDS as THRESHOLD_ROUNDS


for _round, _previous, _nbins, _stride, _function in THRESHOLD_ROUNDS:

    rule:
        name:
            f"threshold_{_round}_chunk"
        input:
            acts=OUT.activations("{layer}", "{chunk}"),
            bracket=OUT.threshold_bracket("{layer}", _previous),
        output:
            state=OUT.threshold_state("{layer}", _round, "{chunk}"),
        params:
            label_size=PLAN.label_size,
            nbins=_nbins,
            stride=_stride,
        threads: 1
        log:
            OUT.log("thresholds", "{layer}", f"{_round}-{{chunk}}"),
        benchmark:
            OUT.benchmark("thresholds", "{layer}", f"{_round}-{{chunk}}"),
        resources:
            mem_mb=mem_mb(1000, 0.5),
            runtime=runtime(5, 0.05),
        script:
            SCRIPT

    rule:
        name:
            f"threshold_{_round}"
        localrule: True
        input:
            states=get_layer_chunks(lambda layer, chunk, _round=_round: OUT.threshold_state(layer, _round, chunk)),
            bracket=OUT.threshold_bracket("{layer}", _previous),
            acts=get_layer_chunks(OUT.activations) if _round == "refine" else [],
        output:
            bracket=OUT.threshold_bracket("{layer}", _round),
        params:
            label_size=PLAN.label_size,
        threads: 1
        log:
            OUT.log("thresholds", "{layer}", _round),
        benchmark:
            OUT.benchmark("thresholds", "{layer}", _round),
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            SCRIPT
