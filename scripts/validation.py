"""Snakemake job: see bench.jobs.validation_job."""
from bench.jobs import validation_job

validation_job(snakemake)  # noqa: F821 (injected by Snakemake)
