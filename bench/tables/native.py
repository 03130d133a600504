"""The baselines' own certificates beside the probabilistic one (beyond the paper, config block
``native``): Cohen et al.'s CERTIFY for RS, sound auto_LiRPA bounds (κ = 0) for IBP."""
from __future__ import annotations

import pandas as pd

from bench.paths import ModelRun
from bench.runs import runs
from bench.tables.base import Table, read_rows, register_table
from bench.training import get_method

__all__ = ["NativeCertificates"]


@register_table
class NativeCertificates(Table):
    key, order, config_key = "native_certificates", 21, "native"
    title = "Native certificates of the baselines, beside the probabilistic one"
    columns = ["certificate", "radius"]
    compare, plain = False, True

    def inputs(self, config, arch_of=None):
        return [ModelRun.of(config, r).output(*o) for r in runs(config, arch_of, votes=False)
                if get_method(r["method"]).native_certificate for o in (("native",), ("certify", "table1"))]

    def build(self, paths, config):
        rows = read_rows(paths)
        native = [r for r in rows if "certificate" in r]
        prob = [{**{k: r[k] for k in ("method", "dataset", "arch", "seed", "job", "code", "git_commit")},
                 "certificate": f"probabilistic ({r['procedure']}), κ = {r['kappa']}, α = {r['alpha']}",
                 "norm": r["spec"], "radius": None, "metric": "certified_robust_accuracy",
                 "value": r["certified_robust_accuracy"], "inputs": r["inputs"]}
                for r in rows if "procedure" in r]
        df = pd.DataFrame(native + prob).drop(columns=["settings", "seconds"], errors="ignore")
        return self.with_intervals(df) if len(df) else df
