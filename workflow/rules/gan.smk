# GAN dissection: a generator's layers dissected on the images it generates, through the spine's own threshold
# and tally rules (layers gan.<module>, chunks gan-<start>-<stop>). Switched by gan.activate.

if GAN is not None:
    GAN_GENERATOR = ndganplan.generator_section(config)

    if GAN.trained_here:

        rule train_generator:
            input:
                source=get_source_input(),
            output:
                generator=CACHE.generator(GENERATOR_KEY),
                metrics=CACHE.generator_metrics(GENERATOR_KEY),
                samples=CACHE.generator_samples(GENERATOR_KEY),
            params:
                **GAN.training,
            threads: 1
            priority: 1  # the GAN path's first job and its longest
            log:
                CACHE.entry("generator", GENERATOR_KEY, "train_generator.log"),
            benchmark:
                CACHE.entry("generator", GENERATOR_KEY, "train_generator.tsv")
            resources:
                mem_mb=3000,
                runtime=120,
            script:
                SCRIPT

    def get_generator_input(wildcards=None):
        return {"generator": CACHE.generator(GENERATOR_KEY)} if GAN.trained_here else {}

    def gan_chunk_params():
        return dict(
            start=lambda wildcards: GAN.chunk(wildcards.chunk).start,
            stop=lambda wildcards: GAN.chunk(wildcards.chunk).stop,
            digest=lambda wildcards: GAN.chunk(wildcards.chunk).digest,
            gan=GAN_GENERATOR,
            generator_digest=GAN.digest,
        )

    rule generate_chunk:
        input:
            unpack(get_generator_input),
            unpack(get_segmenter_input),
            concepts=OUT.concepts(),
        output:
            images=directory(OUT.generated_images("{chunk}")),
            store=directory(OUT.segmentation("{chunk}")),
        wildcard_constraints:
            chunk=ndganplan.CHUNK_PATTERN,
        params:
            **gan_chunk_params(),
            segmenter=SEGMENTER,
            segmenter_digest=ndplan.segmenter_digest(config),
            label_size=PLAN.label_size,
            allow_pickle=config["model"]["allow_pickle"],
        threads: 1
        log:
            OUT.log("gan", "generate", "{chunk}"),
        benchmark:
            OUT.benchmark("gan", "generate", "{chunk}"),
        resources:
            mem_mb=mem_mb(1000, 0.5),
            runtime=runtime(10, 0.05),
            **gpu_resources(),
        script:
            SCRIPT

    rule gan_activations:
        input:
            unpack(get_generator_input),
        output:
            stores=[directory(OUT.activations(layer, "{chunk}")) for layer in GAN_LAYERS],
            coarse=[OUT.threshold_state(layer, "coarse", "{chunk}") for layer in GAN_LAYERS],
        wildcard_constraints:
            chunk=ndganplan.CHUNK_PATTERN,
        params:
            **gan_chunk_params(),
            dtype=config["activations"]["dtype"],
            label_size=PLAN.label_size,
        threads: 1
        log:
            OUT.log("gan", "activations", "{chunk}"),
        benchmark:
            OUT.benchmark("gan", "activations", "{chunk}"),
        resources:
            mem_mb=mem_mb(1000, 0.5),
            runtime=runtime(10, 0.05),
            **gpu_resources(),
        script:
            SCRIPT

    rule gan:
        localrule: True
        input:
            get_gan_outputs(),

    rule gan_interventions:
        input:
            unpack(get_generator_input),
            unpack(get_segmenter_input),
            concepts=OUT.concepts(),
            units=[OUT.units(layer) for layer in GAN_LAYERS],
            tally=[OUT.tally(layer) for layer in GAN_LAYERS],
            thresholds=[OUT.thresholds(layer) for layer in GAN_LAYERS],
        output:
            removal=OUT.gan_removal(),
            insertion=OUT.gan_insertion(),
            painting=OUT.gan_painting(),
            removal_figure=report(OUT.gan_figure("removal"), caption="../report/gan_removal.rst", category="GAN"),
            insertion_figure=report(OUT.gan_figure("insertion"), caption="../report/gan_insertion.rst", category="GAN"),
            paintings=report(OUT.gan_figure("paintings"), caption="../report/gan_paintings.rst", category="GAN"),
        params:
            modules=list(GAN.modules),
            gan=GAN_GENERATOR,
            images=config["gan"]["intervention_images"],
            **{k: config["gan"][k] for k in ("concepts", "ks", "insertion_k", "insertion_grid")},
            segmenter=SEGMENTER,
            label_size=PLAN.label_size,
            allow_pickle=config["model"]["allow_pickle"],
            pixel_categories=list(ndplan.synthetic_vocabulary()[0]) if is_trained_segmenter() else [],
        threads: 1
        log:
            OUT.log("gan", "interventions"),
        benchmark:
            OUT.benchmark("gan", "interventions"),
        resources:
            mem_mb=3000,
            runtime=30,
            **gpu_resources(),
        script:
            SCRIPT
