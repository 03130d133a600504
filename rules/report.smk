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
