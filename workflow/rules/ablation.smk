# Ablation stage: what each unit causes, per class. The class labels; the layer's output on the ranking and the
# evaluation images; the single-unit sweep on the ranking images, chunked over units; rankings; set sweeps on the
# evaluation images, chunked over the list of sets; the paper's table and the figures. Switched by ablation.activate.

if is_activated("ablation") or is_activated("adversarial"):

    def get_ablation_labels_input():
        labels = config["ablation"]["labels"]
        return {"source": get_source_input(), **({"labels": labels} if labels else {})}

    rule ablation_labels:  # the class labels of the ablation and the adversarial analysis
        localrule: True
        input:
            **get_ablation_labels_input(),
        output:
            labels=OUT.ablation_labels(),
            classes=OUT.ablation_classes(),
        params:
            source=SOURCE,
            classes=CLASS_NAMES,
            labels=config["ablation"]["labels"],
            splits=ABLATION_ROLES,
        log:
            OUT.log("ablation", "labels"),
        benchmark:
            OUT.benchmark("ablation", "labels"),
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            SCRIPT


if is_activated("ablation"):

    def ablation_model_params():
        """What the model jobs of the ablation depend on (besides the layer, a wildcard)."""
        return dict(
            source=SOURCE,
            model=MODEL.as_params(),
            image_size=PLAN.image_size,
            resize=DATASET["resize"],
            batch_size=config["batch_size"],
            device=config["device"],
            classes=CLASS_NAMES,
            value=config["ablation"]["value"],
            per_pass=config["ablation"]["per_pass"],
        )

    rule ablation_features:
        input:
            unpack(lambda wildcards: get_weights_input()),
            labels=OUT.ablation_labels(),
        output:
            features=directory(OUT.ablation_features("{layer}", "{role}")),
        wildcard_constraints:
            role="ranking|eval",
        params:
            **ablation_model_params(),
            split=lambda wildcards: ABLATION_ROLES[wildcards.role],
        threads: 1
        log:
            OUT.log("ablation", "{layer}", "features-{role}"),
        benchmark:
            OUT.benchmark("ablation", "{layer}", "features-{role}"),
        resources:
            mem_mb=3000,
            runtime=60,
            **gpu_resources(),
        script:
            SCRIPT

    rule ablation_units:
        input:
            unpack(lambda wildcards: get_weights_input()),
            features=OUT.ablation_features("{layer}", "ranking"),
        output:
            units=OUT.single_unit_chunk("{layer}", "{part}"),
        wildcard_constraints:
            part=ndablationplan.CHUNK_PATTERN,
        params:
            **ablation_model_params(),
            split=ABLATION_ROLES["ranking"],
        threads: 1
        log:
            OUT.log("ablation", "{layer}", "units-{part}"),
        benchmark:
            OUT.benchmark("ablation", "{layer}", "units-{part}"),
        resources:
            mem_mb=3000,
            runtime=120,
            **gpu_resources(),
        script:
            SCRIPT

    rule ablation_single:
        localrule: True
        input:
            units=lambda wildcards: [OUT.single_unit_chunk(wildcards.layer, p) for p in ABLATION.unit_chunks],
        output:
            single_unit=OUT.single_unit("{layer}"),
            ranking=OUT.ranking("{layer}"),
        log:
            OUT.log("ablation", "{layer}", "single_unit"),
        benchmark:
            OUT.benchmark("ablation", "{layer}", "single_unit"),
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            SCRIPT

    def get_concept_input(wildcards):
        """The layer's tally and the concepts, when units are also ranked by IoU with a concept."""
        if config["ablation"]["concept"] is None:
            return {}
        return {"tally": OUT.tally(wildcards.layer), "concepts": OUT.concepts()}

    rule ablation_sweep:
        input:
            unpack(lambda wildcards: get_weights_input()),
            unpack(get_concept_input),
            single_unit=OUT.single_unit("{layer}"),
            classes=OUT.ablation_classes(),
            ranking=OUT.ablation_features("{layer}", "ranking"),
            features=OUT.ablation_features("{layer}", "eval"),
        output:
            sweeps=OUT.sweep_chunk("{layer}", "{part}"),
        wildcard_constraints:
            part=ndablationplan.CHUNK_PATTERN,
        params:
            **ablation_model_params(),
            split=ABLATION_ROLES["eval"],
            swept=list(ABLATION.swept) if ABLATION.swept else None,
            ks=config["ablation"]["ks"],
            random_seeds=config["ablation"]["random_seeds"],
            seed=config["seed"],
            concept=config["ablation"]["concept"],
        threads: 1
        log:
            OUT.log("ablation", "{layer}", "sweep-{part}"),
        benchmark:
            OUT.benchmark("ablation", "{layer}", "sweep-{part}"),
        resources:
            mem_mb=3000,
            runtime=120,
            **gpu_resources(),
        script:
            SCRIPT

    rule ablation_sweeps:
        localrule: True
        input:
            sweeps=lambda wildcards: [OUT.sweep_chunk(wildcards.layer, p) for p in ABLATION.sweep_chunks],
        output:
            sweeps=OUT.sweeps("{layer}"),
            table=OUT.ablation_table("{layer}"),
        log:
            OUT.log("ablation", "{layer}", "sweeps"),
        benchmark:
            OUT.benchmark("ablation", "{layer}", "sweeps"),
        resources:
            mem_mb=2000,
            runtime=10,
        script:
            SCRIPT

    rule ablation_report:
        localrule: True
        input:
            sweeps=OUT.sweeps("{layer}"),
            single_unit=OUT.single_unit("{layer}"),
            units=OUT.units("{layer}"),
            labels=OUT.ablation_labels(),
        output:
            importance=OUT.importance("{layer}"),
            sweeps_figure=OUT.sweeps_figure("{layer}"),
            importance_figure=OUT.importance_figure("{layer}"),
            provenance=OUT.ablation_provenance("{layer}"),
        params:
            config=config["ablation"],
            classes=CLASS_NAMES,
            weights_digest=MODEL.digest,
        log:
            OUT.log("ablation", "{layer}", "report"),
        benchmark:
            OUT.benchmark("ablation", "{layer}", "report"),
        resources:
            mem_mb=1000,
            runtime=5,
        script:
            SCRIPT

    rule ablation:
        localrule: True
        input:
            get_ablation_outputs(),
