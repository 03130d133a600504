"""Snakemake job: see bench.jobs.train."""
from bench.jobs.train import run

run(snakemake)  # noqa: F821 (injected by Snakemake)
