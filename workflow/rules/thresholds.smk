# Threshold stage: rounds of per-chunk histograms and reduces narrow each unit's top-q level to one small
# interval; the tally's count pass pins it down (see src/netdissect/stages/thresholds.py and tally.py).
# Round-1 chunk states do not depend on the quantile.


rule threshold_coarse_chunk:
    input:
        acts=get_activations,
    output:
        state=f"{RUN}/thresholds/{{layer}}/coarse/{{chunk}}.npz",
    params:
        label_size=PLAN.label_size,
    threads: 1
    log:
        f"{RUN}/logs/thresholds/{{layer}}/coarse-{{chunk}}.log",
    resources:
        mem_mb=mem_mb(1000, 3),
        runtime=runtime(5, 0.02),
    script:
        SCRIPT


rule threshold_coarse:
    input:
        states=get_layer_chunks("{run}/thresholds/{layer}/coarse/{chunk}.npz"),
    output:
        bracket=f"{RUN}/thresholds/{{layer}}/coarse.npz",
    params:
        quantile=config["quantile"],
        label_size=PLAN.label_size,
    threads: 1
    log:
        f"{RUN}/logs/thresholds/{{layer}}/coarse.log",
    resources:
        mem_mb=2000,
        runtime=10,
    script:
        SCRIPT


from netdissect.stages.thresholds import ROUNDS as THRESHOLD_ROUNDS


for _round, _previous, _nbins, _stride, _function in THRESHOLD_ROUNDS:
    _bracket = f"{_previous}.npz"

    rule:
        name:
            f"threshold_{_round}_chunk"
        input:
            acts=get_activations,
            bracket=f"{RUN}/thresholds/{{layer}}/{_bracket}",
        output:
            state=f"{RUN}/thresholds/{{layer}}/{_round}/{{chunk}}.npz",
        params:
            label_size=PLAN.label_size,
            nbins=_nbins,
            stride=_stride,
        threads: 1
        log:
            f"{RUN}/logs/thresholds/{{layer}}/{_round}-{{chunk}}.log",
        resources:
            mem_mb=mem_mb(1000, 3),
            runtime=runtime(5, 0.05),
        script:
            SCRIPT

    rule:
        name:
            f"threshold_{_round}"
        input:
            states=get_layer_chunks(f"{{run}}/thresholds/{{layer}}/{_round}/{{chunk}}.npz"),
            bracket=f"{RUN}/thresholds/{{layer}}/{_bracket}",
            acts=get_layer_chunks("{run}/activations/{layer}/{chunk}.zarr") if _round == "refine" else [],
        output:
            bracket=f"{RUN}/thresholds/{{layer}}/{_round}.npz",
        params:
            label_size=PLAN.label_size,
        threads: 1
        log:
            f"{RUN}/logs/thresholds/{{layer}}/{_round}.log",
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            SCRIPT
