# Adversarial stage: targeted PGD from correctly classified images of a source class to a target class; every
# dissected layer's units' mean activation, clean against attacked, by group (the source class's most important
# units, the target class's, the others). Switched by adversarial.activate.

if is_activated("adversarial"):

    def adversarial_params():
        """What the attack and its tables depend on."""
        return dict(
            source=SOURCE,
            model=MODEL.as_params(),
            resize=DATASET["resize"],
            device=config["device"],
            seed=config["seed"],
            layers=LAYERS,
            image_size=PLAN.image_size,
            batch_size=config["batch_size"],
            class_names=CLASS_NAMES,
            ablation_layers=get_ablation_layers(),
            **{k: v for k, v in config["adversarial"].items() if k != "activate"},
        )

    rule adversarial_attack:
        input:
            unpack(lambda wildcards: get_weights_input()),
            unpack(get_adversarial_ranking_input),
            source=get_source_input(),
            labels=OUT.ablation_labels(),
        output:
            units=[OUT.adversarial_units(layer) for layer in LAYERS],
            summary=report(OUT.adversarial_summary(), caption="../report/adversarial.rst", category="Adversarial"),
            figure=report(OUT.adversarial_figure(), caption="../report/adversarial.rst", category="Adversarial"),
        params:
            **adversarial_params(),
        threads: 1
        log:
            OUT.log("adversarial"),
        benchmark:
            OUT.benchmark("adversarial"),
        resources:
            mem_mb=3000,
            runtime=30,
            **gpu_resources(),
        script:
            SCRIPT

    rule adversarial:
        localrule: True
        input:
            get_adversarial_outputs(),
