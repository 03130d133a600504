"""The paper's claims, judged on a run: one row per claim, dataset and procedure (bench.paper.claims).

Reads the per-input outcomes of the jobs behind the tables the claims name (Table 1's, 2's and
10's certifications, Table 3's AutoAttack on the network and its adaptive version on the vote), pairs the two methods of each claim on the same inputs
and seeds, and gives :func:`bench.paper.claims.verdict`; Table 4's claims read each trained
model's wall time (``model.json``) and give :func:`bench.paper.claims.timing_verdict`. A claim the run cannot speak to (a method or
a table it does not have) has no row; a claim on an attack whose two methods are scored by
different inference rules or attack targets gets ``not comparable``, never a number.
Written as ``reports/<run>/claims.csv``; the report shows it right under its summary.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from bench.paper import paper_table
from bench.paper.claims import CLAIMS, Claim, timing_verdict, verdict
from bench.paths import ModelRun, Output, file_kind
from bench.runs import ablation_runs
from bench.tables.base import Table, certification_outcomes, enabled_tables, get_table, read_rows, register_table

__all__ = ["Claims"]

#: the certification tables' setting keys, as their per-input outcomes are keyed
SETTING_KEYS = {"table1": [], "table2": ["vicinity"], "table10": []}
#: the attack tables' claims read, by the attack output that holds their outcomes: AutoAttack on
#: the network (Table 3, the paper's protocol) and its rand version on the vote (adaptive, EOT)
ATTACK_TABLES = {"AutoAttack": "table3", "VoteAutoAttack": "table3_adaptive"}


@register_table
class Claims(Table):
    key, order = "claims", 0.5
    title = ("The paper's claims on this run: verdict, effect [95 % CI] in points (× for training times), test, "
             "and the smallest detectable effect")
    compare, rate, plain = False, False, True

    def enabled(self, config: dict) -> bool:
        return get_table("table1").enabled(config)

    def _tables(self, config: dict) -> list[str]:
        enabled = {t.key for t in enabled_tables(config)}
        return sorted({c.table for c in CLAIMS.values()} & enabled)

    def inputs(self, config, arch_of=None):
        found = {p for t in self._tables(config) if t != "ablation" for p in get_table(t).inputs(config, arch_of)
                 if file_kind(p) != "certify"}  # per-input files and attack results
        if "ablation" in self._tables(config):  # Figure 2's models: their Table 1 inputs and AutoAttack
            found |= {ModelRun.of(config, r).output(*o) for r in ablation_runs(config)
                      for o in (("certify_inputs", "table1"), ("attack", "AutoAttack"))}
        return sorted(found)

    def build(self, paths, config):
        reference = config.get("paper_reference", {})
        by_table: dict[str, list[str]] = {}
        for p in paths:
            out = Output.parse(p)
            table = ("table4" if out.kind == "model" else "ablation" if out.model.ablation
                     else out.name if out.kind == "certify_inputs" else ATTACK_TABLES.get(out.name))
            if table is not None:  # an attack no claim reads (a plugin's claim on Table 9, say)
                by_table.setdefault(table, []).append(p)
        outcomes = {t: self._certified(t, ps) for t, ps in by_table.items() if t in SETTING_KEYS}
        attacks = {t: self._attacked(by_table.get(t, [])) for t in ATTACK_TABLES.values()}
        rows = []
        for claim in CLAIMS.values():
            if claim.table in attacks:
                rows += self._judge_attack(claim, attacks[claim.table], reference)
            elif claim.table == "ablation":
                rows += self._judge_ablation(claim, self._ablated(by_table.get("ablation", [])), reference)
            elif claim.table == "table4":
                rows += self._judge_timing(claim, self._timed(by_table.get("table4", []), config), reference)
            elif claim.table in outcomes:
                rows += self._judge(claim, outcomes[claim.table], reference)
        return pd.DataFrame(rows)

    @staticmethod
    def _certified(table: str, paths: list[str]) -> dict[tuple, dict[int, np.ndarray]]:
        """(dataset, procedure, settings..., metric, method) -> {seed: per-input outcomes}."""
        keys = SETTING_KEYS[table]
        found: dict[tuple, dict[int, np.ndarray]] = {}
        for key, hits in certification_outcomes(paths, ["standard_accuracy", "certified_robust_accuracy"],
                                                keys).items():
            method, dataset, _arch, seed, *settings, procedure, metric = key
            found.setdefault((dataset, procedure, *settings, metric, method), {})[int(seed)] = hits
        return found

    @staticmethod
    def _attacked(paths: list[str]) -> dict[tuple, dict]:
        """(dataset, attack, method) -> {"rule": (inference, protocol), "seeds": {seed: outcomes}}."""
        found: dict[tuple, dict] = {}
        for r in read_rows(paths):
            if r.get("label") != "AutoAttack" or "correct" not in r:
                continue
            entry = found.setdefault((r["dataset"], r["method"]), {"rules": set(), "seeds": {}})
            entry["rules"].add((r.get("inference"), r.get("protocol")))
            entry["seeds"][int(r["seed"])] = np.asarray(r["correct"], dtype=bool)
        return found

    @staticmethod
    def _paper_effect(claim: Claim, dataset: str, reference: dict) -> float | None:
        """The paper's effect on ``dataset`` in the claim's own terms: method − other, the drop
        other − method for "within", the ratio other / method for "faster" (used as a yardstick
        only where the paper reports this dataset itself)."""
        if claim.paper_table is None:
            return None
        table = paper_table(claim.paper_table)
        values = table[table["dataset"] == dataset].set_index("method")
        if claim.metric not in values or claim.method not in values.index or claim.other not in values.index:
            return None
        if claim.kind == "faster":  # a ratio of times: other / method
            return float(values.at[claim.other, claim.metric] / values.at[claim.method, claim.metric])
        if claim.kind == "within":  # the drop other − method, as the claim's effect is
            return float(values.at[claim.other, claim.metric] - values.at[claim.method, claim.metric])
        return float(values.at[claim.method, claim.metric] - values.at[claim.other, claim.metric])

    def _row(self, claim: Claim, dataset: str, procedure: str | None, reference: dict) -> dict:
        paper_dataset = reference.get(dataset, dataset)
        return {"claim": claim.key, "statement": claim.statement, "dataset": dataset, "procedure": procedure,
                "metric": claim.metric, "method": claim.method, "other": claim.other,
                "paper_effect": self._paper_effect(claim, paper_dataset, reference),
                "paper_dataset": paper_dataset, "source": claim.source}

    def _judge(self, claim: Claim, outcomes: dict, reference: dict) -> list[dict]:
        rows = []
        settings = [str(claim.settings[k]) for k in sorted(claim.settings)]
        for key, ours in outcomes.items():
            dataset, procedure, *rest = key
            *setting, metric, method = rest
            if method != claim.method or metric != claim.metric or setting != settings:
                continue
            other = outcomes.get((dataset, procedure, *setting, metric, claim.other))
            if other is None:
                continue
            row = self._row(claim, dataset, procedure, reference)
            same = row["paper_dataset"] == dataset  # the paper's effect size is a yardstick on its own dataset only
            rows.append({**row, **verdict(claim, ours, other, row["paper_effect"] if same else None)})
        return rows

    @staticmethod
    def _ablated(paths: list[str]) -> dict[tuple, dict[int, np.ndarray]]:
        """(dataset, procedure, metric, method, hparam, value) -> {seed: per-input outcomes} of the
        ablation's models (procedure None for AutoAttack, whose rule is one: the method's own)."""
        found: dict[tuple, dict[int, np.ndarray]] = {}
        for p in paths:
            model = Output.parse(p).model
            ident = (model.method, model.hparam, float(model.value))
            if file_kind(p) == "certify_inputs":
                for (_m, dataset, _a, seed, procedure, metric), hits in certification_outcomes(
                        [p], ["standard_accuracy", "certified_robust_accuracy"], []).items():
                    found.setdefault((dataset, procedure, metric, *ident), {})[int(seed)] = hits
            else:
                for r in read_rows([p]):
                    if "correct" in r:
                        found.setdefault((r["dataset"], None, "defence_success_rate", *ident), {})[int(r["seed"])] = \
                            np.asarray(r["correct"], dtype=bool)
        return found

    def _judge_ablation(self, claim: Claim, ablated: dict, reference: dict) -> list[dict]:
        """The method's model at the claim's first value against its model at the second, on the
        same inputs and seeds (no paper effect: Figure 2 gives no numbers to read)."""
        hparam, first, second = claim.ablated
        rows = []
        for (dataset, procedure, metric, method, h, value), ours in ablated.items():
            if (method, h, metric, value) != (claim.method, hparam, claim.metric, first):
                continue
            other = ablated.get((dataset, procedure, metric, method, h, second))
            if other is None:
                continue
            row = {**self._row(claim, dataset, procedure, reference), "method": f"{method} {h}={first:g}",
                   "other": f"{method} {h}={second:g}", "paper_effect": None}
            rows.append({**row, **verdict(claim, ours, other, None)})
        return rows

    @staticmethod
    def _timed(paths: list[str], config: dict) -> dict[tuple, dict[int, float]]:
        """(dataset, method) -> {seed: training wall time per epoch, seconds} of the trained
        models, as Table 4 reads them (an external checkpoint or a vote method has no training of
        its own); per epoch, as a method may train longer than the run (``train.method_epochs``);
        a time that is not positive is no measurement (skipped, not a failure of every claim)."""
        frame = get_table("table4").build(paths, config) if paths else pd.DataFrame()
        found: dict[tuple, dict[int, float]] = {}
        for r in frame.to_dict("records"):
            seconds, epochs = r["value"], r.get("epochs")
            if r["metric"] != "train_seconds" or not epochs or not (np.isfinite(seconds) and seconds > 0):
                continue
            found.setdefault((r["dataset"], r["method"]), {})[int(r["seed"])] = float(seconds) / float(epochs)
        return found

    def _judge_timing(self, claim: Claim, times: dict, reference: dict) -> list[dict]:
        rows = []
        for (dataset, method), ours in times.items():
            other = times.get((dataset, claim.other))
            if method != claim.method or other is None:
                continue
            rows.append({**self._row(claim, dataset, None, reference), **timing_verdict(claim, ours, other)})
        return rows

    def _judge_attack(self, claim: Claim, attacks: dict, reference: dict) -> list[dict]:
        rows = []
        for (dataset, method), ours in attacks.items():
            if method != claim.method or (dataset, claim.other) not in attacks:
                continue
            other = attacks[(dataset, claim.other)]
            row = self._row(claim, dataset, None, reference)
            if ours["rules"] != other["rules"]:  # a vote against an argmax: no like-with-like comparison
                scored = lambda e: " and ".join(f"{i} ({p})" for i, p in sorted(e["rules"]))  # noqa: E731
                rows.append({**row, "verdict": "not comparable",
                             "why": f"{claim.method} is scored by {scored(ours)}, {claim.other} by {scored(other)}"})
                continue
            same = row["paper_dataset"] == dataset
            rows.append({**row, **verdict(claim, ours["seeds"], other["seeds"], row["paper_effect"] if same else None)})
        return rows
