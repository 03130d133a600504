"""Snakemake job: see bench.jobs.validation."""
from bench.jobs.validation import run

run(snakemake)  # noqa: F821 (injected by Snakemake)
