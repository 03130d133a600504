"""Snakemake checkpoint: the sweep's architecture for one method (bench.aggregate.select_arch)."""
from bench.aggregate import select_arch
from bench.io import write_json
from bench.plan import best_arch

smk = snakemake  # noqa: F821 (injected by Snakemake)
write_json(select_arch(list(smk.input), best_arch(smk.wildcards.method, smk.wildcards.dataset)), smk.output[0])
