"""Snakemake job: see bench.jobs.vote."""
from bench.jobs.vote import run

run(snakemake)  # noqa: F821 (injected by Snakemake)
