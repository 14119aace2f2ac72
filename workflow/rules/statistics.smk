# Label statistics: per chunk, the bootstrap resamples' counts and the permutation null's moments of its images at
# the final thresholds; per layer, each unit's IoU interval, label stability, p- and q-values, which units.csv
# joins. Switched by statistics.activate.

if is_activated("statistics"):

    rule statistics_chunk:
        input:
            acts=OUT.activations("{layer}", "{chunk}"),
            segment=OUT.segmentation("{chunk}"),
            tally=OUT.tally("{layer}"),
            concepts=OUT.concepts(),
            index=OUT.index(),
        output:
            sums=OUT.statistics_chunk("{layer}", "{chunk}"),
        params:
            seed=config["seed"],
            **{k: config["statistics"][k] for k in ("resamples", "candidates", "grid")},
        threads: 1
        log:
            OUT.log("statistics", "{layer}", "{chunk}"),
        benchmark:
            OUT.benchmark("statistics", "{layer}", "{chunk}"),
        resources:
            mem_mb=mem_mb(2000, 0.5),
            runtime=runtime(5, 0.05),
        script:
            SCRIPT

    rule statistics_layer:
        localrule: True
        input:
            sums=get_layer_chunks(OUT.statistics_chunk),
            tally=OUT.tally("{layer}"),
            concepts=OUT.concepts(),
        output:
            table=OUT.statistics("{layer}"),
            discoveries=OUT.discoveries("{layer}"),
            figure=report(OUT.statistics_figure("{layer}"), caption="../report/statistics.rst", category="Statistics"),
        params:
            union=config["union"],
            label_size=PLAN.label_size,
            iou_threshold=config["iou_threshold"],
            **{k: config["statistics"][k] for k in ("level", "grid", "fdr_q")},
        threads: 1
        log:
            OUT.log("statistics", "{layer}", "layer"),
        benchmark:
            OUT.benchmark("statistics", "{layer}", "layer"),
        resources:
            mem_mb=3000,
            runtime=10,
        script:
            SCRIPT

    rule statistics:
        localrule: True
        input:
            get_statistics_outputs(),
