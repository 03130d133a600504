"""Snakemake job: job wall times, then the self-contained HTML report (bench.report)."""
from pathlib import Path

from bench.method import load_plugin
from bench.report import html_report, job_times

smk = snakemake  # noqa: F821 (injected by Snakemake)
for plugin in smk.config.get("plugins", []):  # tables registered by plugins
    load_plugin(plugin)
job_times(list(smk.input.benchmarks), smk.output.times)
tables = {Path(p).stem: p for p in smk.input.tables}
figures = {"Figure 2: λ ablation": smk.input.figure2[0]} if smk.input.figure2 else {}
figures |= {"Figure 3: training curves": smk.input.figure3, "Vicinity samples": smk.input.vicinities}
html_report(tables, figures, smk.output.times, dict(smk.params.config), smk.output.html, smk.input.recipes)
