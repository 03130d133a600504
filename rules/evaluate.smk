rule certify:
    """The certification settings of one table (bench.tables: 1, 2, 10, 11, 12) for one model."""
    input:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
    output:
        summary=f"{RUN}/certify/{{table}}.json",
        inputs=f"{RUN}/certify/{{table}}_inputs.csv",
    wildcard_constraints:
        table="|".join(CERTIFY_TABLES),
    params:
        settings=settings("certify"),
        code=code("certify"),
    log:
        f"{LOGS}/certify_{{table}}.log",
    benchmark:
        f"{BENCH}/certify_{{table}}.tsv"
    threads: config["resources"]["eval_threads"]
    resources:
        gpu=config["resources"]["gpus"],
        runtime=config["resources"]["eval_minutes"],
        mem_mb=config["resources"]["mem_mb"],
        activation_memory_mb=ACTIVATION_MEMORY,
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
    params:
        settings=settings("attack"),
        code=code("attack"),
    log:
        f"{LOGS}/attack_{{attack}}.log",
    benchmark:
        f"{BENCH}/attack_{{attack}}.tsv"
    threads: config["resources"]["eval_threads"]
    priority: 1  # the adaptive Vote* attacks are among the longest jobs on a GPU: not left for the tail
    resources:
        gpu=config["resources"]["gpus"],
        runtime=config["resources"]["eval_minutes"],
        mem_mb=config["resources"]["mem_mb"],
        activation_memory_mb=ACTIVATION_MEMORY,
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/attack.py"


use rule certify as certify_ablation with:
    input:
        model=f"{ABLATION}/model.json",
        weights=f"{ABLATION}/model.safetensors",
    output:
        summary=f"{ABLATION}/certify/{{table}}.json",
        inputs=f"{ABLATION}/certify/{{table}}_inputs.csv",
    log:
        f"{ABLATION_LOGS}/certify_{{table}}.log",
    benchmark:
        f"{ABLATION_BENCH}/certify_{{table}}.tsv"


use rule attack as attack_ablation with:
    input:
        model=f"{ABLATION}/model.json",
        weights=f"{ABLATION}/model.safetensors",
    output:
        result=f"{ABLATION}/attacks/{{attack}}.json",
    log:
        f"{ABLATION_LOGS}/attack_{{attack}}.log",
    benchmark:
        f"{ABLATION_BENCH}/attack_{{attack}}.tsv"


use rule attack as transfer with:
    input:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
        source=transfer_source,
    output:
        result=f"{RUN}/attacks/{TRANSFER_ATTACK}.json",
    params:
        settings=settings("attack", attack=TRANSFER_ATTACK),
        code=code("attack"),
    log:
        f"{LOGS}/attack_{TRANSFER_ATTACK}.log",
    benchmark:
        f"{BENCH}/attack_{TRANSFER_ATTACK}.tsv"


ruleorder: transfer > attack


if GROUPED_ATTACKS:

    rule attacks:
        """The attacks every model needs (Table 9's, AutoAttack, the masking checks) in one job per
        model (attacks.group: model): one Python start instead of one per attack; each attack's
        output is what its own job would write (bench.jobs.attacks)."""
        input:
            model=f"{RUN}/model.json",
            weights=f"{RUN}/model.safetensors",
        output:
            expand(f"{RUN}/attacks/{{attack}}.json", attack=GROUPED_ATTACKS, allow_missing=True),
        params:
            settings=lambda w: {a: plan.job_settings("attack", config, w, attack=a) for a in GROUPED_ATTACKS},
            code=code("attacks"),
        log:
            f"{LOGS}/attacks.log",
        benchmark:
            f"{BENCH}/attacks.tsv"
        threads: config["resources"]["eval_threads"]
        priority: 1  # long jobs: started before the short ones, not left for the tail
        resources:
            gpu=config["resources"]["gpus"],
            runtime=config["resources"]["eval_minutes"],
            mem_mb=config["resources"]["mem_mb"],
            activation_memory_mb=ACTIVATION_MEMORY,
        conda:
            "../envs/bench.yaml"
        script:
            "../scripts/attacks.py"

    ruleorder: attacks > attack


if GROUPED_TABLES:

    rule certifications:
        """The certification tables every model needs in one job per model (certify.group: model):
        one Python start instead of one per table; each table's outputs are what its own job
        would write (bench.jobs.certify.run_group), and so is the audit of its Table 1
        certificates where the audit is enabled (bench.plan.grouped_audit)."""
        input:
            model=f"{RUN}/model.json",
            weights=f"{RUN}/model.safetensors",
        output:
            expand(f"{RUN}/certify/{{table}}{{suffix}}", table=GROUPED_TABLES, suffix=[".json", "_inputs.csv"],
                   allow_missing=True) + ([f"{RUN}/audit.json"] if GROUPED_AUDIT else []),
        params:
            settings=lambda w: {t: plan.job_settings("certify", config, w, table=t) for t in GROUPED_TABLES},
            audit=lambda w: plan.job_settings("audit", config, w) if GROUPED_AUDIT else None,
            code=code("certifications"),
        log:
            f"{LOGS}/certifications.log",
        benchmark:
            f"{BENCH}/certifications.tsv"
        threads: config["resources"]["eval_threads"]
        priority: 1  # the longest evaluation jobs: started before the short ones, not left for the tail
        resources:
            gpu=config["resources"]["gpus"],
            runtime=config["resources"]["eval_minutes"],
            mem_mb=config["resources"]["mem_mb"],
            activation_memory_mb=ACTIVATION_MEMORY,
        conda:
            "../envs/bench.yaml"
        script:
            "../scripts/certifications.py"

    ruleorder: certifications > certify
    ruleorder: certifications > audit


rule audit:
    """Fresh-sample audit of one model's Table 1 certificates: which certificate can be trusted."""
    input:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
        certified=f"{RUN}/certify/table1_inputs.csv",
    output:
        result=f"{RUN}/audit.json",
    params:
        settings=settings("audit"),
        code=code("audit"),
    log:
        f"{LOGS}/audit.log",
    benchmark:
        f"{BENCH}/audit.tsv"
    threads: config["resources"]["eval_threads"]
    resources:
        gpu=config["resources"]["gpus"],
        runtime=config["resources"]["eval_minutes"],
        mem_mb=config["resources"]["mem_mb"],
        activation_memory_mb=ACTIVATION_MEMORY,
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/audit.py"


rule native:
    """The method's own certificate: Cohen et al.'s CERTIFY (RS) or sound bounds (IBP)."""
    input:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
    output:
        result=f"{RUN}/native.json",
    params:
        settings=settings("native"),
        code=code("native"),
    log:
        f"{LOGS}/native.log",
    benchmark:
        f"{BENCH}/native.tsv"
    threads: config["resources"]["eval_threads"]
    resources:
        gpu=config["resources"]["gpus"],
        runtime=config["resources"]["eval_minutes"],
        mem_mb=config["resources"]["mem_mb"],
        activation_memory_mb=ACTIVATION_MEMORY,
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/native.py"


rule validation:
    """arch: sweep — validation certified robust accuracy of one candidate architecture."""
    input:
        model=f"{RUN}/model.json",
        weights=f"{RUN}/model.safetensors",
    output:
        result=f"{RUN}/certify/validation.json",
    params:
        settings=settings("validation"),
        code=code("validation"),
    log:
        f"{LOGS}/validation.log",
    benchmark:
        f"{BENCH}/validation.tsv"
    threads: config["resources"]["eval_threads"]
    resources:
        gpu=config["resources"]["gpus"],
        runtime=config["resources"]["eval_minutes"],
        mem_mb=config["resources"]["mem_mb"],
        activation_memory_mb=ACTIVATION_MEMORY,
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/validation.py"


checkpoint select_arch:
    """arch: sweep — the best architecture of one method by validation certified robust accuracy."""
    input:
        lambda w: [f"results/{NAME}/{w.dataset}/{w.method}/{a}/seed{w.seed}/certify/validation.json"
                   for a in plan.get_method(w.method).architectures],
    output:
        f"results/{NAME}/{{dataset}}/{{method}}/seed{{seed}}/arch.json",
    params:
        paper_arch=lambda w: plan.best_arch(w.method, w.dataset),
    log:
        f"results/{NAME}/logs/{{dataset}}/{{method}}/seed{{seed}}/select_arch.log",
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/select_arch.py"
