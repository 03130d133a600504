"""Snakemake job: Figure 2 from reports/ablation.csv (bench.report.figures.figure2)."""
from bench.report.figures import figure2

smk = snakemake  # noqa: F821 (injected by Snakemake)
figure2(smk.input[0], smk.output.png, smk.output.svg)
