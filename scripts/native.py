"""Snakemake job: see bench.jobs.native_job."""
from bench.jobs import native_job

native_job(snakemake)  # noqa: F821 (injected by Snakemake)
