"""A table defined outside the package: mean vicinity samples each certification needed.

Enable it with ``plugins: [examples/mean_samples.py]`` and ``tables: [1, mean_samples]``
(docs/extending.md, "Adding a table"); ``tests/test_trust.py`` builds it from a real run.
"""
import pandas as pd

from bench.paths import ModelRun
from bench.runs import runs
from bench.tables import Table, register_table
from bench.tables.base import read_rows


@register_table
class MeanSamples(Table):
    key = "mean_samples"                     # reports/<run>/mean_samples.csv, and its name in `tables:`
    title = "Mean vicinity samples per input (Table 1's settings)"
    columns = ["procedure"]                  # the report's layout: rows method × dataset, these columns
    rate, compare = False, False             # not a percentage of inputs: no interval, no best-of test

    def inputs(self, config, arch_of=None):  # the job outputs it reads (here: Table 1's certify jobs)
        return [ModelRun.of(config, r).output("certify", "table1") for r in runs(config, arch_of)]

    def build(self, paths, config):          # one tidy long-form frame
        return pd.DataFrame([{**{k: r[k] for k in ("method", "dataset", "arch", "seed", "procedure")},
                              "metric": "mean_samples", "value": r["mean_samples"]} for r in read_rows(paths)])
