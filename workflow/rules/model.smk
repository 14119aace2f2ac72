# The scene classifier that the default run dissects (model.weights: train).

if MODEL.trained_here:

    rule train_classifier:
        input:
            source=get_source_input(),
        output:
            weights=OUT.classifier(),
            metrics=OUT.classifier_metrics(),
        params:
            **ndplan.classifier_params(config),
        threads: 2
        log:
            OUT.log("train_classifier"),
        benchmark:
            OUT.benchmark("train_classifier")
        resources:
            mem_mb=4000,
            runtime=120,
            **gpu_resources(),
        script:
            SCRIPT
