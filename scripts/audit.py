"""Snakemake job: see bench.jobs.audit."""
from bench.jobs.audit import run

run(snakemake)  # noqa: F821 (injected by Snakemake)
