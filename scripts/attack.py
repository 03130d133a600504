"""Snakemake job: see bench.jobs.attack_job."""
from bench.jobs import attack_job

attack_job(snakemake)  # noqa: F821 (injected by Snakemake)
