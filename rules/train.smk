rule train:
    """One model per (dataset, method, architecture, seed); resumes from its last checkpoint."""
    output:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
        log=MODEL.output("log"),
    params:
        settings=settings("train"),
        code=code("train"),
    log:
        MODEL.log("train"),
    benchmark:
        MODEL.benchmark("train")
    wildcard_constraints:
        method=TRAINED_PATTERN,
    threads: kind_threads("train")
    # first among ready jobs: every evaluation waits for a model, so trainings early keep the
    # cores busy to the end (a long job started last becomes the run's tail)
    priority: 2
    resources:
        **kind_resources("train"),
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/train.py"


rule import_model:
    """An external checkpoint (config `models:`, bench.training.external) enters the DAG where training would."""
    input:
        weights=lambda w: plan.external_models(config)[w.method]["weights"],
    output:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
        log=MODEL.output("log"),
    params:
        settings=settings("train"),
        code=code("import"),
    log:
        MODEL.log("import"),
    wildcard_constraints:
        method=EXTERNAL_PATTERN,
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/import_model.py"


rule vote_model:
    """A method scored by the vote rule (config `vote:`, bench.training.voting): its method's trained
    model, unchanged, under the name <method>_vote; nothing is trained (bench.jobs.vote)."""
    input:
        model=lambda w: plan.voted_model(config, w, "model"),
        weights=lambda w: plan.voted_model(config, w, "weights"),
    output:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
        log=MODEL.output("log"),
    params:
        settings=settings("vote"),
        code=code("vote"),
    log:
        MODEL.log("vote"),
    wildcard_constraints:
        method=VOTE_PATTERN,
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/vote_model.py"


use rule train as train_ablation with:
    output:
        model=ABLATION.output("model"),
        weights=ABLATION.output("weights"),
        log=ABLATION.output("log"),
    log:
        ABLATION.log("train"),
    benchmark:
        ABLATION.benchmark("train")
