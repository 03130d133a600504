"""Checks of the results themselves (beyond the paper): the fresh-sample audit of certificates
(:mod:`bench.evaluation.audit`) and the gradient-masking flags (:mod:`bench.evaluation.masking`)."""
from __future__ import annotations

import pandas as pd

from bench.paths import ModelRun
from bench.runs import methods, runs
from bench.stats import rate_columns
from bench.tables.attacks import attack_outcomes
from bench.tables.base import MODEL_KEYS, Table, read_rows, register_table

__all__ = ["CertificateAudit", "Masking"]


@register_table
class CertificateAudit(Table):
    key, order, config_key = "certificate_audit", 20, "audit"
    title = "Certificate audit: certified inputs whose fresh-sample rate lies below 1−κ"
    compare, plain = False, True

    def inputs(self, config, arch_of=None):
        return [ModelRun.of(config, r).output("audit") for r in runs(config, arch_of, votes=False)]

    def build(self, paths, config):
        df = pd.DataFrame(read_rows(paths))
        if df.empty:
            return df
        df["wrong_rate"] = 100.0 * df["wrong"] / df["audited"].where(df["audited"] > 0)
        df[["ci_low", "ci_high"]] = rate_columns(df["wrong"], df["audited"])
        return df


@register_table
class Masking(Table):
    key, order, config_key = "masking", 22, "masking"
    title = "Gradient-masking checks (Carlini et al. 2019); red: flag raised (paired exact test, p < 0.05)"
    columns = ["check"]
    compare = False

    def inputs(self, config, arch_of=None):
        from bench.evaluation.masking import NEEDED, TRANSFER_ATTACK, TRANSFER_SOURCE

        out = []
        for r in runs(config, arch_of):
            # the transfer is crafted on erm's model: none for erm itself, none without erm
            no_transfer = r["method"] == TRANSFER_SOURCE or TRANSFER_SOURCE not in methods(config)
            out += [ModelRun.of(config, r).output("attack", a) for a in NEEDED
                    if not (a == TRANSFER_ATTACK and no_transfer)]
        return out

    def build(self, paths, config):
        from bench.evaluation.masking import flags

        rows = read_rows(paths)
        outcomes = attack_outcomes([{**r, "label": r["attack"]} for r in rows])
        by_model: dict[tuple, dict] = {}
        for (*model, attack), correct in outcomes.items():
            by_model.setdefault(tuple(model), {})[attack] = correct
        return pd.DataFrame([{**dict(zip(MODEL_KEYS, model)), **f}
                             for model, correct in by_model.items() for f in flags(correct)])
