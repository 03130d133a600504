"""Snakemake job: see bench.jobs.attack."""
from bench.jobs.attack import run

run(snakemake)  # noqa: F821 (injected by Snakemake)
