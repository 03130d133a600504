"""Snakemake job: see bench.jobs.native."""
from bench.jobs.native import run

run(snakemake)  # noqa: F821 (injected by Snakemake)
