"""Tables across training seeds: each method's pooled rates, their spread over seeds, and each
comparison with the best method tested against both the test inputs and the training seeds.

A run with several ``seeds`` trains every model once per seed; each table then has one row per
seed, and its McNemar tests compare models of one seed. A table across seeds is what a reviewer
asks of a comparison of *methods*: per group of the table it is beside (Table 1: dataset,
procedure, metric; Table 2: and the transform; Table 3: the attack, its target and the inference
rule, so that only like is compared with like), each method's rate pooled over its seeds
(``value``, the mean of the per-seed rates, with an interval that counts the inputs' and the
seeds' sampling: :func:`bench.stats.rate_across_seeds`), the per-seed rates' minimum, maximum and
standard deviation, and, against the method with the highest pooled rate,
:func:`bench.stats.paired_across_seeds`: the exact sign test over inputs (``p_inputs``: these
models), the interval of the difference over inputs and seeds (``low``, ``high``, points: the
methods) and ``limited_by`` — ``seeds`` where these models differ but the seeds' spread does not
let the difference be said of the methods. Enabled when the config has two or more seeds and
the table it is beside is enabled.
"""
from __future__ import annotations

from typing import ClassVar

import numpy as np
import pandas as pd

from bench.certification.metrics import METRICS
from bench.paths import file_kind
from bench.stats import paired_across_seeds, rate_across_seeds
from bench.tables.attacks import attack_outcomes
from bench.tables.base import Table, certification_outcomes, get_table, read_rows, register_table

__all__ = ["AcrossSeeds", "AttacksAcrossSeeds", "CertificationAcrossSeeds"]

#: by group (a tuple of the table's ``group_keys``) -> method -> seed -> per-input outcomes
Outcomes = dict[tuple, dict[str, dict[int, np.ndarray]]]


class AcrossSeeds(Table):
    """The table ``beside`` across training seeds; a subclass says how its outcomes group."""

    compare, rate, plain = False, False, True  # its comparison columns are its own
    group_keys: ClassVar[list[str]] = ["dataset", "procedure", "metric"]

    def enabled(self, config: dict) -> bool:
        return len(config["seeds"]) > 1 and get_table(self.beside).enabled(config)

    def inputs(self, config, arch_of=None):
        return get_table(self.beside).inputs(config, arch_of)

    def outcomes(self, paths: list[str]) -> Outcomes:
        raise NotImplementedError

    def build(self, paths, config):
        rows = []
        for group, by_method in self.outcomes(paths).items():
            pooled = {m: rate_across_seeds(s) for m, s in by_method.items()}
            best = max(pooled, key=lambda m: pooled[m][0])
            for method, by_seed in sorted(by_method.items()):
                per_seed = [100.0 * h.sum() / len(h) for _, h in sorted(by_seed.items())]
                value, low, high = pooled[method]
                row = {"method": method, **dict(zip(self.group_keys, group)),
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


class CertificationAcrossSeeds(AcrossSeeds):
    """A certification table across seeds: grouped by dataset, the table's settings (its
    ``setting_keys``: a transform, κ, a confidence), procedure and metric."""

    @property
    def group_keys(self) -> list[str]:
        return ["dataset", *get_table(self.beside).setting_keys, "procedure", "metric"]

    def outcomes(self, paths):
        setting_keys = list(get_table(self.beside).setting_keys)
        found = certification_outcomes([p for p in paths if file_kind(p) == "certify_inputs"], list(METRICS),
                                       setting_keys)
        # key: (method, dataset, arch, seed, *settings, procedure, metric) -> per-input booleans
        groups: Outcomes = {}
        for (method, dataset, _arch, seed, *rest), hits in found.items():
            groups.setdefault((dataset, *rest), {}).setdefault(method, {})[int(seed)] = hits
        return groups


class AttacksAcrossSeeds(AcrossSeeds):
    """An attack table across seeds: grouped by dataset, attack, its target (``protocol``) and the
    inference rule, the attack tables' own like-with-like rule (:data:`bench.tables.attacks.COMPARED`)."""

    group_keys = ["dataset", "attack", "protocol", "inference", "metric"]

    def outcomes(self, paths):
        rows = read_rows(paths)
        rules = {(r["method"], r["dataset"], r["label"]): (r["protocol"], r["inference"]) for r in rows}
        groups: Outcomes = {}
        for (method, dataset, _arch, seed, attack), correct in attack_outcomes(rows).items():
            protocol, inference = rules[(method, dataset, attack)]
            groups.setdefault((dataset, attack, protocol, inference, "defence_success_rate"), {}).setdefault(
                method, {})[int(seed)] = correct
        return groups


@register_table
class Table1AcrossSeeds(CertificationAcrossSeeds):
    key, order, beside = "table1_seeds", 1.5, "table1"
    title = "Table 1 across training seeds: pooled rate, per-seed spread, and the test of inputs and seeds"


@register_table
class Table2AcrossSeeds(CertificationAcrossSeeds):
    key, order, beside = "table2_seeds", 2.5, "table2"
    title = "Table 2 across training seeds: functional perturbations, pooled over seeds"


@register_table
class Table3AcrossSeeds(AttacksAcrossSeeds):
    key, order, beside = "table3_seeds", 3.25, "table3"  # before table3_adaptive (3.5)
    title = "Table 3 across training seeds: AutoAttack, pooled over seeds, within one inference rule and target"


@register_table
class Table10AcrossSeeds(CertificationAcrossSeeds):
    key, order, beside = "table10_seeds", 10.5, "table10"
    title = "Table 10 across training seeds: the smaller vicinity, pooled over seeds"
