"""Snakemake job: one output beyond the paper from the job outputs (bench.aggregate.build_extra)."""
from bench.aggregate import build_extra
from bench.io import write_csv

smk = snakemake  # noqa: F821 (injected by Snakemake)
write_csv(build_extra(smk.wildcards.name, list(smk.input), float(smk.params.tolerance)), smk.output[0])
