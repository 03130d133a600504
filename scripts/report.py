"""Snakemake job: job wall times, then the self-contained HTML report (bench.report.html)."""
from pathlib import Path

from bench.report.html import html_report, job_times
from bench.workflow.extensions import load_extensions

smk = snakemake  # noqa: F821 (injected by Snakemake)
load_extensions(smk.config)  # tables registered by plugins
job_times(list(smk.input.benchmarks), smk.output.times)
tables = {Path(p).stem: p for p in smk.input.tables}
figures = {"Figure 2: λ ablation": smk.input.figure2[0]} if smk.input.figure2 else {}
figures |= {"Figure 3: training curves": smk.input.figure3, "Vicinity samples": smk.input.vicinities}
html_report(tables, figures, smk.output.times, dict(smk.params.config), smk.output.html, smk.input.recipes)
