"""Model selection outputs: the λ ablation (Figure 2's numbers, config block ``ablation``) and
the architecture chosen per method under ``arch: sweep``."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

from bench.paths import ModelRun, selection_file
from bench.runs import ablation_runs, methods
from bench.tables.base import Table, read_rows, register_table

__all__ = ["Ablation", "ArchSelection"]


@register_table
class Ablation(Table):
    key, order, config_key = "ablation", 30, "ablation"
    title = "λ ablation (Figure 2's numbers)"
    rows, columns = ["hparam_value"], ["metric", "procedure"]
    compare = False

    def inputs(self, config, arch_of=None):
        return [ModelRun.of(config, r).output(*o) for r in ablation_runs(config)
                for o in (("certify", "table1"), ("attack", "AutoAttack"))]

    def build(self, paths, config):
        out = []
        for r in read_rows(paths):
            keys = {k: r[k] for k in ("method", "dataset", "arch", "seed", "hparam")} | {"hparam_value": r["value"]}
            if "attack" in r:
                out.append({**keys, "metric": "autoattack_defence_success_rate", "procedure": None,
                            "value": r["defence_success_rate"], "inputs": r["inputs"]})
            else:  # standard accuracy does not depend on the procedure: one row
                out.append({**keys, "metric": "certified_robust_accuracy", "procedure": r["procedure"],
                            "value": r["certified_robust_accuracy"], "inputs": r["inputs"]})
                out.append({**keys, "metric": "standard_accuracy", "procedure": None, "value": r["standard_accuracy"],
                            "inputs": r["inputs"]})
        df = pd.DataFrame(out).drop_duplicates(["dataset", "seed", "hparam_value", "metric", "procedure"])
        df = df.sort_values(["dataset", "hparam_value", "metric"]).reset_index(drop=True)
        return self.with_intervals(df)


@register_table
class ArchSelection(Table):
    key, order = "arch_selection", 31
    title = "Architecture chosen per method by validation certified robust accuracy (arch: sweep)"
    compare, rate, plain = False, False, True

    def enabled(self, config):
        return config.get("arch") == "sweep"

    def inputs(self, config, arch_of=None):
        # the checkpoints' own outputs: listed without reading them
        return [selection_file(config["run"], d, m, s) for d in config["datasets"] for m in methods(config)
                for s in config["seeds"]]

    def build(self, paths, config):
        rows = [json.loads(Path(p).read_text()) for p in paths]
        return pd.DataFrame([{**{k: v for k, v in r.items() if k != "candidates"},
                              "candidates": json.dumps(r["candidates"])} for r in rows])


def select_arch(paths: list[str], paper_arch: str) -> dict:
    """``arch: sweep``: the candidate with the highest validation certified robust accuracy
    (ties: higher standard accuracy, then the paper's architecture)."""
    rows = read_rows(paths)
    best = max(rows, key=lambda r: (r["certified_robust_accuracy"], r["standard_accuracy"], r["arch"] == paper_arch))
    return {k: best[k] for k in ("method", "dataset", "seed", "arch")} | {
        "criterion": "validation certified robust accuracy", "paper_arch": paper_arch,
        "candidates": {r["arch"]: {"certified_robust_accuracy": r["certified_robust_accuracy"],
                                   "standard_accuracy": r["standard_accuracy"]} for r in rows}}
