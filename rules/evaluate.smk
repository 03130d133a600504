rule certify:
    """The certification settings of one paper table (1, 2, 10, 11, 12) for one model."""
    input:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
    output:
        summary=f"{RUN}/certify/table{{table}}.json",
        inputs=f"{RUN}/certify/table{{table}}_inputs.csv",
    log:
        f"{LOGS}/certify{{table}}.log",
    benchmark:
        f"{BENCH}/certify{{table}}.tsv"
    threads: config["resources"]["eval_threads"]
    resources:
        gpu=config["resources"]["gpus"],
        runtime=config["resources"]["eval_minutes"],
        mem_mb=config["resources"]["mem_mb"],
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/certify.py"


rule attack:
    """One attack of Table 9, or AutoAttack (Table 3), on one model, under the method's own prediction."""
    input:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
    output:
        result=f"{RUN}/attacks/{{attack}}.json",
    log:
        f"{LOGS}/attack_{{attack}}.log",
    benchmark:
        f"{BENCH}/attack_{{attack}}.tsv"
    threads: config["resources"]["eval_threads"]
    resources:
        gpu=config["resources"]["gpus"],
        runtime=config["resources"]["eval_minutes"],
        mem_mb=config["resources"]["mem_mb"],
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/attack.py"
