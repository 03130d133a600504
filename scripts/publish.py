"""Snakemake job: reports/<file>, a copy of reports/<run>/<file>; the top level never mixes runs
(bench.report.publish)."""
from bench.report.publish import publish

smk = snakemake  # noqa: F821 (injected by Snakemake)
publish(smk.input[0], smk.output[0], smk.params.run)
