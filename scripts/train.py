"""Snakemake job: see bench.jobs.train_job."""
from bench.jobs import train_job

train_job(snakemake)  # noqa: F821 (injected by Snakemake)
