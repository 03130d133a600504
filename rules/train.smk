rule train:
    """One model per (dataset, method, architecture, seed); resumes from its last checkpoint."""
    output:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
        log=f"{RUN}/log.csv",
    params:
        settings=settings("train"),
        code=code("train"),
    log:
        f"{LOGS}/train.log",
    benchmark:
        f"{BENCH}/train.tsv"
    wildcard_constraints:
        method=TRAINED_PATTERN,
    threads: config["resources"]["train_threads"]
    # first among ready jobs: every evaluation waits for a model, so trainings early keep the
    # cores busy to the end (a long job started last becomes the run's tail)
    priority: 2
    resources:
        gpu=config["resources"]["gpus"],
        runtime=config["resources"]["train_minutes"],
        mem_mb=config["resources"]["mem_mb"],
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/train.py"


rule import_model:
    """An external checkpoint (config `models:`, bench.external) enters the DAG where training would."""
    input:
        weights=lambda w: plan.external_models(config)[w.method]["weights"],
    output:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
        log=f"{RUN}/log.csv",
    params:
        settings=settings("train"),
        code=code("import"),
    log:
        f"{LOGS}/import.log",
    wildcard_constraints:
        method=EXTERNAL_PATTERN,
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/import_model.py"


use rule train as train_ablation with:
    output:
        model=f"{ABLATION}/model.json",
        weights=f"{ABLATION}/model.safetensors",
        log=f"{ABLATION}/log.csv",
    log:
        f"{ABLATION_LOGS}/train.log",
    benchmark:
        f"{ABLATION_BENCH}/train.tsv"
