"""Snakemake job: the recipe table of the config's trained methods (bench.report.recipes)."""
from bench.io import write_csv
from bench.report.recipes import recipe_table
from bench.workflow.extensions import load_extensions

smk = snakemake  # noqa: F821 (injected by Snakemake)
load_extensions(smk.config)  # a plugin method has a recipe too
write_csv(recipe_table(list(smk.params.methods), dict(smk.params.epochs)), smk.output[0])
