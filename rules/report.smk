rule table:
    """One of the paper's tables in long form, beside the paper's numbers."""
    input:
        table_inputs,
    output:
        report("reports/table{table}.csv", category="Tables"),
    wildcard_constraints:
        table=r"\d+",
    log:
        "results/logs/table{table}.log",
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/table.py"


rule extra_table:
    """An output beyond the paper (adaptive attacks, certificate audit, native certificates,
    gradient-masking flags), the λ ablation, or the sweep's architecture choices."""
    input:
        extra_inputs,
    output:
        report("reports/{name}.csv", category="Beyond the paper"),
    wildcard_constraints:
        name="|".join(n for names in plan.EXTRA_TABLES.values() for n in names) + "|ablation|arch_selection",
    params:
        tolerance=config.get("masking", {}).get("tolerance", 5.0),
    log:
        "results/logs/{name}.log",
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/extra_table.py"


rule figure2:
    """Figure 2: standard accuracy, certified robust accuracy and AutoAttack defence against λ."""
    input:
        "reports/ablation.csv",
    output:
        png=report("reports/figure2.png", category="Figures"),
        svg="reports/figure2.svg",
    log:
        "results/logs/figure2.log",
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
        figure3_png=report("reports/figure3.png", category="Figures"),
        figure3_svg="reports/figure3.svg",
        vicinities=report("reports/vicinities.png", category="Figures"),
    log:
        "results/logs/figures.log",
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/figures.py"


rule report:
    """One self-contained HTML page: every table beside the paper's, the figures, provenance."""
    input:
        tables=expand("reports/table{table}.csv", table=TABLES),
        extras=expand("reports/{name}.csv", name=EXTRAS),
        figure2=["reports/figure2.png"] if config.get("ablation") else [],
        figure3="reports/figure3.png",
        vicinities="reports/vicinities.png",
        benchmarks=job_benchmarks,
    output:
        html=report("reports/report.html", category="Report"),
        times="reports/job_times.csv",
    log:
        "results/logs/report.log",
    localrule: True
    conda:
        "../envs/bench.yaml"
    script:
        "../scripts/report.py"
