"""Snakemake job: see bench.jobs.external."""
from bench.jobs.external import run

run(snakemake)  # noqa: F821 (injected by Snakemake)
