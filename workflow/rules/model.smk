# The scene classifier that the default run dissects (model.weights: train).

if config["model"]["weights"] == "train":

    rule train_classifier:
        input:
            source=get_source_input(),
        output:
            weights=f"{RUN}/model/classifier.pt",
            metrics=f"{RUN}/model/training.json",
        params:
            **classifier_params(),
        threads: 2
        log:
            f"{RUN}/logs/train_classifier.log",
        benchmark:
            f"{RUN}/benchmarks/train_classifier.tsv"
        resources:
            mem_mb=4000,
            runtime=120,
            **gpu_resources(),
        script:
            SCRIPT
