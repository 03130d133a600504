"""Snakemake job: the recipe table of the config's trained methods (bench.recipes)."""
from bench.io import write_csv
from bench.method import load_plugin
from bench.recipes import recipe_table

smk = snakemake  # noqa: F821 (injected by Snakemake)
for plugin in smk.config.get("plugins", []):  # a plugin method has a recipe too
    load_plugin(plugin)
write_csv(recipe_table(list(smk.params.methods), dict(smk.params.epochs)), smk.output[0])
