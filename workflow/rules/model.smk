# The scene classifier that the default run dissects (model.weights: train).

if MODEL.trained_here:

    rule train_classifier:
        input:
            source=get_source_input(),
        output:
            weights=CACHE.classifier(CLASSIFIER_KEY),
            metrics=CACHE.classifier_metrics(CLASSIFIER_KEY),
        params:
            **CLASSIFIER,
        threads: 1
        log:
            CACHE.entry("classifier", CLASSIFIER_KEY, "train_classifier.log"),
        benchmark:
            CACHE.entry("classifier", CLASSIFIER_KEY, "train_classifier.tsv")
        resources:
            mem_mb=4000,
            runtime=120,
            **gpu_resources(),
        script:
            SCRIPT
