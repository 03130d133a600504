"""Snakemake job: see bench.jobs.audit_job."""
from bench.jobs import audit_job

audit_job(snakemake)  # noqa: F821 (injected by Snakemake)
