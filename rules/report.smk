rule aggregate:
    """One table (bench.tables) in long form from its jobs' outputs, beside the paper's numbers."""
    input:
        table_inputs,
    output:
        report(f"{REPORTS}/{{table}}.csv", category="Tables"),
    wildcard_constraints:
        table="|".join(TABLES),
    params:
        paper_reference=config.get("paper_reference", {}),
        code=plan.code_version("aggregate"),
    log:
        run_log(NAME, "aggregate_{table}"),
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/aggregate.py"


rule figure2:
    """Figure 2: standard accuracy, certified robust accuracy and AutoAttack defence against λ."""
    input:
        f"{REPORTS}/ablation.csv",
    output:
        png=report(f"{REPORTS}/figure2.png", category="Figures"),
        svg=f"{REPORTS}/figure2.svg",
    log:
        run_log(NAME, "figure2"),
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/figure2.py"


rule figures:
    """Figure 3 (training curves) and a panel of samples of every vicinity used."""
    input:
        logs=run_logs,
    output:
        figure3_png=report(f"{REPORTS}/figure3.png", category="Figures"),
        figure3_svg=f"{REPORTS}/figure3.svg",
        vicinities=report(f"{REPORTS}/vicinities.png", category="Figures"),
    params:
        dataset=config["datasets"][0],
        data_root=config["data"]["root"],
        vicinities=lambda w: {n: plan.vicinities(config, config["datasets"][0])[n]
                              for n in ["main", "small", *config["certify"]["transforms"]]},
    log:
        run_log(NAME, "figures"),
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/figures.py"


rule recipes:
    """The training recipe of each trained method, every value with its source (bench.report.recipes)."""
    output:
        f"{REPORTS}/recipes.csv",
    params:
        methods=[m for m in plan.methods(config) if m not in plan.external_models(config) and m not in plan.voted(config)],
        epochs=lambda w: {m: plan.train_epochs(config, m) for m in plan.methods(config)},
        code=lambda w: {m: plan.code_version("train", m) for m in plan.methods(config)
                        if m not in plan.external_models(config)},
    log:
        run_log(NAME, "recipes"),
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/recipes.py"


rule report:
    """One self-contained HTML page: every table beside the paper's, the figures, provenance."""
    input:
        tables=expand(f"{REPORTS}/{{table}}.csv", table=ENABLED),
        recipes=f"{REPORTS}/recipes.csv",
        figure2=[f"{REPORTS}/figure2.png"] if config.get("ablation") else [],
        figure3=f"{REPORTS}/figure3.png",
        vicinities=f"{REPORTS}/vicinities.png",
        benchmarks=job_benchmarks,
    output:
        html=report(f"{REPORTS}/report.html", category="Report"),
        times=f"{REPORTS}/job_times.csv",
    params:
        config=config,
    log:
        run_log(NAME, "report"),
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/report.py"


rule publish:
    """reports/<file>: the current config's copy of reports/<run>/<file>, the paths users open.
    The top level holds one run's files only, named by reports/RUN.json (bench.report.publish)."""
    input:
        f"{REPORTS}/{{file}}",
    output:
        "reports/{file}",
    wildcard_constraints:
        file=r"[^/]+\.(csv|html|png|svg)",
    params:
        run=NAME,
    log:
        run_log(NAME, "publish_{file}"),
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/publish.py"
