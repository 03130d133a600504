"""Snakemake checkpoint: the sweep's architecture for one method (bench.tables.selection.select_arch)."""
from bench.io import write_json
from bench.tables.selection import select_arch

smk = snakemake  # noqa: F821 (injected by Snakemake)
write_json(select_arch(list(smk.input), smk.params.paper_arch), smk.output[0])
