rule certify:
    """The certification settings of one table (bench.tables: 1, 2, 10, 11, 12) for one model."""
    input:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
    output:
        summary=MODEL.output("certify", "{table}"),
        inputs=MODEL.output("certify_inputs", "{table}"),
    wildcard_constraints:
        table="|".join(CERTIFY_TABLES),
    params:
        settings=settings("certify"),
        code=code("certify"),
    log:
        MODEL.log("certify_{table}"),
    benchmark:
        MODEL.benchmark("certify_{table}")
    threads: kind_threads("certify")
    resources:
        **kind_resources("certify"),
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/certify.py"


rule attack:
    """One attack of Table 9, or AutoAttack (Table 3), on one model, under the method's own prediction."""
    input:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
    output:
        result=MODEL.output("attack", "{attack}"),
    params:
        settings=settings("attack"),
        code=code("attack"),
    log:
        MODEL.log("attack_{attack}"),
    benchmark:
        MODEL.benchmark("attack_{attack}")
    threads: kind_threads("attack")
    priority: 1  # the adaptive Vote* attacks are among the longest jobs on a GPU: not left for the tail
    resources:
        **kind_resources("attack"),
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/attack.py"


use rule certify as certify_ablation with:
    input:
        model=ABLATION.output("model"),
        weights=ABLATION.output("weights"),
    output:
        summary=ABLATION.output("certify", "{table}"),
        inputs=ABLATION.output("certify_inputs", "{table}"),
    log:
        ABLATION.log("certify_{table}"),
    benchmark:
        ABLATION.benchmark("certify_{table}")


use rule attack as attack_ablation with:
    input:
        model=ABLATION.output("model"),
        weights=ABLATION.output("weights"),
    output:
        result=ABLATION.output("attack", "{attack}"),
    log:
        ABLATION.log("attack_{attack}"),
    benchmark:
        ABLATION.benchmark("attack_{attack}")


use rule attack as transfer with:
    input:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
        source=transfer_source,
    output:
        result=MODEL.output("attack", TRANSFER_ATTACK),
    params:
        settings=settings("attack", attack=TRANSFER_ATTACK),
        code=code("attack"),
    log:
        MODEL.log(f"attack_{TRANSFER_ATTACK}"),
    benchmark:
        MODEL.benchmark(f"attack_{TRANSFER_ATTACK}")


ruleorder: transfer > attack


if GROUPED_ATTACKS:

    rule attacks:
        """The attacks every model needs (Table 9's, AutoAttack, the masking checks) in one job per
        model (attacks.group: model): one Python start instead of one per attack; each attack's
        output is what its own job would write (bench.jobs.attacks)."""
        input:
            model=MODEL.output("model"),
            weights=MODEL.output("weights"),
        output:
            [MODEL.output("attack", a) for a in GROUPED_ATTACKS],
        params:
            settings=lambda w: {a: plan.job_settings("attack", config, w, attack=a) for a in GROUPED_ATTACKS},
            code=code("attacks"),
        log:
            MODEL.log("attacks"),
        benchmark:
            MODEL.benchmark("attacks")
        threads: kind_threads("attacks")
        priority: 1  # long jobs: started before the short ones, not left for the tail
        resources:
            **kind_resources("attacks"),
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
        certificates where the audit is enabled (bench.workflow.plan.grouped_audit)."""
        input:
            model=MODEL.output("model"),
            weights=MODEL.output("weights"),
        output:
            [MODEL.output(kind, t) for t in GROUPED_TABLES for kind in ("certify", "certify_inputs")]
            + ([MODEL.output("audit")] if GROUPED_AUDIT else []),
        params:
            settings=lambda w: {t: plan.job_settings("certify", config, w, table=t) for t in GROUPED_TABLES},
            audit=lambda w: plan.job_settings("audit", config, w) if GROUPED_AUDIT else None,
            code=code("certifications"),
        log:
            MODEL.log("certifications"),
        benchmark:
            MODEL.benchmark("certifications")
        threads: kind_threads("certifications")
        priority: 1  # the longest evaluation jobs: started before the short ones, not left for the tail
        resources:
            **kind_resources("certifications"),
        conda:
            "../envs/bench.yaml"
        script:
            "../scripts/certifications.py"

    ruleorder: certifications > certify
    ruleorder: certifications > audit


rule audit:
    """Fresh-sample audit of one model's Table 1 certificates: which certificate can be trusted."""
    input:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
        certified=MODEL.output("certify_inputs", "table1"),
    output:
        result=MODEL.output("audit"),
    params:
        settings=settings("audit"),
        code=code("audit"),
    log:
        MODEL.log("audit"),
    benchmark:
        MODEL.benchmark("audit")
    threads: kind_threads("audit")
    resources:
        **kind_resources("audit"),
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/audit.py"


rule native:
    """The method's own certificate: Cohen et al.'s CERTIFY (RS) or sound bounds (IBP)."""
    input:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
    output:
        result=MODEL.output("native"),
    params:
        settings=settings("native"),
        code=code("native"),
    log:
        MODEL.log("native"),
    benchmark:
        MODEL.benchmark("native")
    threads: kind_threads("native")
    resources:
        **kind_resources("native"),
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/native.py"


rule validation:
    """arch: sweep — validation certified robust accuracy of one candidate architecture."""
    input:
        model=MODEL.output("model"),
        weights=MODEL.output("weights"),
    output:
        result=MODEL.output("validation"),
    params:
        settings=settings("validation"),
        code=code("validation"),
    log:
        MODEL.log("validation"),
    benchmark:
        MODEL.benchmark("validation")
    threads: kind_threads("validation")
    resources:
        **kind_resources("validation"),
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/validation.py"


checkpoint select_arch:
    """arch: sweep — the best architecture of one method by validation certified robust accuracy."""
    input:
        lambda w: [ModelRun(NAME, w.dataset, w.method, a, w.seed).output("validation")
                   for a in plan.get_method(w.method).architectures],
    output:
        selection_file(NAME, "{dataset}", "{method}", "{seed}"),
    params:
        paper_arch=lambda w: plan.best_arch(w.method, w.dataset),
    log:
        selection_log(NAME, "{dataset}", "{method}", "{seed}"),
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/select_arch.py"
