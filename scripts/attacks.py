"""Snakemake job: see bench.jobs.attacks."""
from bench.jobs.attacks import run_group

run_group(snakemake)  # noqa: F821 (injected by Snakemake)
