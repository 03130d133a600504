"""Snakemake job: one paper table from the job outputs (bench.aggregate.build_table)."""
from bench.aggregate import build_table
from bench.io import write_csv

smk = snakemake  # noqa: F821 (injected by Snakemake)
table = build_table(int(smk.wildcards.table), list(smk.input), smk.config.get("paper_reference", {}))
write_csv(table, smk.output[0])
