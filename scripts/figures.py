"""Snakemake job: Figure 3 (training curves of the methods with a mean/std loss) and the vicinity samples."""
import pandas as pd

from bench.data import load_split
from bench.jobs import vicinity_spec
from bench.report import figure3, vicinity_figure

smk = snakemake  # noqa: F821 (injected by Snakemake)
logs = {p.split("/")[2] + " / " + p.split("/")[1]: p for p in smk.input.logs if "mean" in pd.read_csv(p)}
figure3(logs or {p: p for p in smk.input.logs[:1]}, smk.output.figure3_png, smk.output.figure3_svg)
dataset = smk.config["datasets"][0]
test = load_split(dataset, "test", smk.config["data"]["root"], subset_per_class=1)
names = ["main", "small", *smk.config["certify"]["transforms"]]
vicinity_figure(test.images, {n: vicinity_spec(smk.config, dataset, n) for n in names}, smk.output.vicinities)
