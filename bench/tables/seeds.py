"""Table 1 across training seeds: each method's pooled rates, their spread over seeds, and each
comparison with the best method tested against both the test inputs and the training seeds.

A run with several ``seeds`` trains every model once per seed; Table 1 then has one row per
seed, and its McNemar tests compare models of one seed. This table is what a reviewer asks of
a comparison of *methods*: per (dataset, procedure, metric), each method's rate pooled over its
seeds (``value``, the mean of the per-seed rates, with an interval that counts the inputs' and
the seeds' sampling: :func:`bench.stats.rate_across_seeds`), the per-seed rates' minimum,
maximum and standard deviation, and, against the method with the highest pooled rate,
:func:`bench.stats.paired_across_seeds`: the exact sign test over inputs (``p_inputs``: these
models), the interval of the difference over inputs and seeds (``low``, ``high``, points: the
methods) and ``limited_by`` — ``seeds`` where these models differ but the seeds' spread does not
let the difference be said of the methods. Enabled when the config has two or more seeds.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.certification.metrics import METRICS
from bench.paths import file_kind
from bench.stats import paired_across_seeds, rate_across_seeds
from bench.tables.base import Table, certification_outcomes, get_table, register_table

__all__ = ["AcrossSeeds"]


@register_table
class AcrossSeeds(Table):
    key, order, beside = "table1_seeds", 1.5, "table1"
    title = "Table 1 across training seeds: pooled rate, per-seed spread, and the test of inputs and seeds"
    compare, rate, plain = False, False, True  # its comparison columns are its own

    def enabled(self, config: dict) -> bool:
        return len(config["seeds"]) > 1 and get_table("table1").enabled(config)

    def inputs(self, config, arch_of=None):
        return get_table("table1").inputs(config, arch_of)

    def build(self, paths, config):
        outcomes = certification_outcomes([p for p in paths if file_kind(p) == "certify_inputs"], list(METRICS), [])
        # key: (method, dataset, arch, seed, procedure, metric) -> per-input booleans
        groups: dict[tuple, dict[str, dict[int, np.ndarray]]] = {}
        for (method, dataset, _arch, seed, procedure, metric), hits in outcomes.items():
            groups.setdefault((dataset, procedure, metric), {}).setdefault(method, {})[int(seed)] = hits
        rows = []
        for (dataset, procedure, metric), by_method in groups.items():
            pooled = {m: rate_across_seeds(s) for m, s in by_method.items()}
            best = max(pooled, key=lambda m: pooled[m][0])
            for method, by_seed in sorted(by_method.items()):
                per_seed = [100.0 * h.sum() / len(h) for _, h in sorted(by_seed.items())]
                value, low, high = pooled[method]
                row = {"method": method, "dataset": dataset, "procedure": procedure, "metric": metric,
                       "seeds": len(by_seed), "inputs": len(next(iter(by_seed.values()))), "value": value,
                       "ci_low": low, "ci_high": high,
                       "seed_min": min(per_seed), "seed_max": max(per_seed),
                       "seed_sd": float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else np.nan,
                       "best": method == best}
                if method != best and set(by_seed) == set(by_method[best]):
                    test = paired_across_seeds(by_method[best], by_seed)
                    row.update(best_method=best, best_minus_this=test["difference"], p_inputs=test["p_inputs"],
                               low=test["low"], high=test["high"], limited_by=test["limited_by"])
                rows.append(row)
        return pd.DataFrame(rows)
