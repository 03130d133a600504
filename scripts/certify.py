"""Snakemake job: see bench.jobs.certify_job."""
from bench.jobs import certify_job

certify_job(snakemake)  # noqa: F821 (injected by Snakemake)
