"""Snakemake job: one table from its jobs' outputs (bench.tables)."""
from bench.io import write_csv
from bench.tables import get_table
from bench.tables.base import MODEL_KEYS
from bench.workflow.extensions import load_extensions

smk = snakemake  # noqa: F821 (injected by Snakemake)
load_extensions(smk.config)  # a plugin may register tables as well as methods
table = get_table(smk.wildcards.table)
frame = table.build(list(smk.input), {"paper_reference": dict(smk.params.paper_reference)})
if frame.columns.empty:  # no model has rows for it (no RS or IBP for native certificates, say): a header
    frame = frame.reindex(columns=MODEL_KEYS)
write_csv(frame, smk.output[0])
