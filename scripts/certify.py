"""Snakemake job: see bench.jobs.certify."""
from bench.jobs.certify import run

run(snakemake)  # noqa: F821 (injected by Snakemake)
