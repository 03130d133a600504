"""Snakemake job: one table from its jobs' outputs (bench.tables)."""
from bench.io import write_csv
from bench.method import load_plugin
from bench.tables import get_table

smk = snakemake  # noqa: F821 (injected by Snakemake)
for plugin in smk.config.get("plugins", []):  # a plugin may register tables as well as methods
    load_plugin(plugin)
table = get_table(smk.wildcards.table)
write_csv(table.build(list(smk.input), {"paper_reference": dict(smk.params.paper_reference)}), smk.output[0])
