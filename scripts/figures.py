"""Snakemake job: Figure 3 (training curves of the methods with a mean/std loss) and the vicinity samples."""
import pandas as pd

from bench.data import load_split
from bench.paths import ModelRun
from bench.report.figures import figure3, vicinity_figure

smk = snakemake  # noqa: F821 (injected by Snakemake)


def label(path: str) -> str:
    """A training log's curve label: "method / dataset"."""
    model, _ = ModelRun.parse(path)
    return f"{model.method} / {model.dataset}"


logs = {label(p): p for p in smk.input.logs if "mean" in pd.read_csv(p)}
figure3(logs or {p: p for p in smk.input.logs[:1]}, smk.output.figure3_png, smk.output.figure3_svg)
test = load_split(smk.params.dataset, "test", smk.params.data_root, subset_per_class=1)
vicinity_figure(test.images, dict(smk.params.vicinities), smk.output.vicinities)
