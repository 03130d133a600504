"""Snakemake job: see bench.jobs.certify.run_group."""
from bench.jobs.certify import run_group

run_group(snakemake)  # noqa: F821 (injected by Snakemake)
