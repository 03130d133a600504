"""The attack tables: AutoAttack (Table 3), the 25 torchattacks attacks (Table 9), and their
adaptive versions crafted on the vote itself (beyond the paper, config block ``adaptive``).

Each attack job writes the defence success rate (percent of test inputs the method's own
prediction still gets right) and the per-input outcome (``correct``), from which the tables
draw each rate's interval and the paired comparison of methods.
"""
from __future__ import annotations

import json

import numpy as np
import pandas as pd

from bench.paper import paper_table
from bench.paths import ModelRun
from bench.runs import attack_names, runs
from bench.tables.base import MODEL_KEYS, SOURCE_KEYS, Table, get_table, read_rows, register_table
from bench.training import get_method

__all__ = ["COMPARED", "AdaptiveAutoAttack", "AdaptiveAttacks", "AttackTable", "Table3", "Table9", "attack_outcomes"]


def attack_outcomes(rows: list[dict]) -> dict[tuple, np.ndarray]:
    """Per-input correctness keyed by (method, dataset, arch, seed, attack label)."""
    return {(*[r[k] for k in MODEL_KEYS], r["label"]): np.asarray(r["correct"], dtype=bool)
            for r in rows if "correct" in r}


#: what two rows of an attack table share to be compared (best of a column, McNemar against it):
#: the model's data and seed, the attack, its target (``protocol``: crafted on the network, on the
#: vote, transferred) and the inference rule that scores it (``inference``: argmax or vote)
COMPARED = ["dataset", "seed", "attack", "protocol", "inference", "metric"]


class AttackTable(Table):
    """Rows from ``attacks/<name>.json`` of every reported model."""

    attacks_of_table: str = "paper"  # which attack results: the paper's protocol or the adaptive one
    # the inference rule is a column of the layout: a method scored by its vote and one scored by
    # the argmax of its network sit in different columns and are never compared (build())
    columns = ["attack", "inference", "metric"]

    def attack_names(self, config: dict) -> list[str]:
        raise NotImplementedError

    def models(self, config, arch_of):
        return runs(config, arch_of)

    def inputs(self, config, arch_of=None):
        return [ModelRun.of(config, r).output("attack", a) for r in self.models(config, arch_of)
                for a in self.attack_names(config)]

    def build(self, paths, config):
        rows = read_rows(paths)
        if not rows:  # no model has this attack (the adaptive tables of a run without a voting method)
            return pd.DataFrame()
        outcomes = attack_outcomes(rows)
        df = pd.DataFrame(rows)
        df["metric"], df["value"] = "defence_success_rate", df["defence_success_rate"]
        df["settings"] = df["settings"].map(lambda s: json.dumps(s, sort_keys=True))
        df = df.drop(columns="attack").rename(columns={"label": "attack"})
        df["key"] = [(*[r[k] for k in MODEL_KEYS], r["attack"]) for r in df.to_dict("records")]
        cols = ["attack", *MODEL_KEYS, *SOURCE_KEYS, "protocol", "inference", "precision", "inputs", "settings", "metric", "value", "key",
                "job", "code", "model_code", "git_commit"]
        df = df[[c for c in cols if c in df]]
        # methods are compared only under one inference rule and one attack target (protocol): a
        # vote and an argmax under the same attack are different defences, not a difference of methods
        return self.with_intervals(df, outcomes, COMPARED)


@register_table
class Table3(AttackTable):
    key, number, order = "table3", 3, 3
    title = "Table 3: defence success rate against AutoAttack"

    def attack_names(self, config):
        return ["AutoAttack"]

    def build(self, paths, config):
        df = super().build(paths, config)
        return self.attach_paper(df, 3, ["method", "dataset"], config.get("paper_reference", {}))


@register_table
class Table9(AttackTable):
    key, number, order = "table9", 9, 9
    title = "Table 9: defence success rate against 25 torchattacks attacks"
    rows, columns = ["attack", "inference"], ["method"]

    def attack_names(self, config):
        return attack_names(config)

    def build(self, paths, config):
        df = super().build(paths, config)
        lookup = {(r["attack"], r["method"]): r["defence_success_rate"] for r in paper_table(9).to_dict("records")}
        df["paper_dataset"] = "cifar10"  # the paper reports Table 9 on CIFAR-10 only
        df["paper"] = [lookup.get((a, m), np.nan) for a, m in zip(df["attack"], df["method"])]
        return df


class _Adaptive(AttackTable):
    config_key = "adaptive"

    def enabled(self, config: dict) -> bool:
        """With the adaptive block and the table it stands beside: a run without Table 9 runs no
        adaptive Table 9 attacks (each the longest job of its model)."""
        return super().enabled(config) and get_table(self.beside).enabled(config)

    def models(self, config, arch_of):
        return [r for r in runs(config, arch_of) if get_method(r["method"]).vote]


@register_table
class AdaptiveAutoAttack(_Adaptive):
    key, order, beside = "table3_adaptive", 3.5, "table3"
    title = "Table 3, adaptive: AutoAttack (rand version, EOT) on the vote itself"

    def attack_names(self, config):
        return ["VoteAutoAttack"]


@register_table
class AdaptiveAttacks(_Adaptive):
    key, order, beside = "table9_adaptive", 9.5, "table9"
    title = "Table 9, adaptive: attacks with expectation over the vote's sampling"
    rows, columns = ["attack", "inference"], ["method"]

    def attack_names(self, config):
        return [f"Vote{a}" for a in config["adaptive"]["attacks"]]
