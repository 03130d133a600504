"""The paper's tables from the jobs' outputs, in long form, beside the paper's own numbers.

Each table is one row per (keys, metric): the table's keys (method, dataset, and κ, confidence,
transform or attack where the table has them), ``procedure`` for certification tables,
``metric``, ``value`` (ours), ``paper`` (the paper's value for ``paper_dataset``, or empty) and
``paper_dataset``: the dataset whose paper value is shown, which is the row's own dataset or the
one the config's ``paper_reference`` maps it to (Fashion-MNIST → MNIST by default, marked so).
Aggregation reads only job outputs (JSON); the report reads only these tables.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from bench.paper import paper_table

__all__ = ["build_extra", "build_table", "select_arch", "TRANSFORM_COLUMNS"]

TRANSFORM_COLUMNS = {"translate": "translation", "rotate": "rotation", "affine": "affine", "scale": "scale"}
CERT_METRICS = ["standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy"]


def _read(paths: list[str]) -> list[dict]:
    rows = []
    for p in paths:
        data = json.loads(Path(p).read_text())
        rows += data if isinstance(data, list) else [data]
    return rows


def _paper_lookup(number: int, keys: list[str], metric_cols: list[str]) -> dict:
    table = paper_table(number)
    out = {}
    for rec in table.to_dict("records"):
        for m in metric_cols:
            out[(*[rec[k] for k in keys], m)] = rec[m]
    return out


def _attach(df: pd.DataFrame, number: int, keys: list[str], reference: dict[str, str],
            paper_metric: dict[str, str] | None = None) -> pd.DataFrame:
    """Add ``paper`` and ``paper_dataset``; ``paper_metric`` maps our metric names to the
    paper table's column names (identity by default)."""
    paper_metric = paper_metric or {}
    cols = sorted(set(paper_metric.get(m, m) for m in df["metric"].unique()))
    cols = [c for c in cols if c in paper_table(number).columns]
    lookup = _paper_lookup(number, keys, cols)
    ref = df["dataset"].map(lambda d: reference.get(d, d)) if "dataset" in df else None
    values = []
    for i, row in enumerate(df.to_dict("records")):
        key_values = [ref.iloc[i] if (k == "dataset" and ref is not None) else row[k] for k in keys]
        values.append(lookup.get((*key_values, paper_metric.get(row["metric"], row["metric"])), np.nan))
    df = df.copy()
    df["paper"] = values
    if ref is not None:
        df["paper_dataset"] = ref.values
    return df


def build_table(number: int, paths: list[str], reference: dict[str, str] | None = None) -> pd.DataFrame:
    """Table ``number`` from the job outputs at ``paths``."""
    reference = reference or {}
    rows = _read([p for p in paths if p.endswith(".json") and not p.endswith("model.json")])
    if number in (1, 10, 11, 12, 2):
        df = pd.DataFrame(rows)
        df["confidence"] = (1 - df["alpha"]).round(6)
        metrics = CERT_METRICS if number == 1 else ["certified_robust_accuracy"]
        keys = {1: [], 10: [], 11: ["kappa"], 12: ["confidence"], 2: ["vicinity"]}[number]
        base = ["method", "dataset", "arch", "seed", *keys, "procedure", "inputs"]
        long = df.melt(id_vars=base, value_vars=metrics, var_name="metric", value_name="value")
        if number == 2:
            long = long.rename(columns={"vicinity": "transform"})
            long["paper_metric"] = long["transform"].map(TRANSFORM_COLUMNS)
            table = paper_table(2).melt(id_vars=["method", "dataset"], var_name="paper_metric", value_name="paper")
            long["paper_dataset"] = long["dataset"].map(lambda d: reference.get(d, d))
            long = long.merge(table.rename(columns={"dataset": "paper_dataset"}),
                              on=["method", "paper_dataset", "paper_metric"], how="left").drop(columns="paper_metric")
            return long
        return _attach(long, number, ["method", "dataset", *keys], reference)
    if number == 3:
        df = pd.DataFrame(rows)
        df["metric"], df["value"] = "defence_success_rate", df["defence_success_rate"]
        df["settings"] = df["settings"].map(lambda s: json.dumps(s, sort_keys=True))
        long = df[["method", "dataset", "arch", "seed", "inference", "inputs", "settings", "metric", "value"]]
        return _attach(long, 3, ["method", "dataset"], reference)
    if number == 9:
        df = pd.DataFrame(rows)
        df["metric"], df["value"] = "defence_success_rate", df["defence_success_rate"]
        long = df[["label", "method", "dataset", "arch", "seed", "inference", "inputs", "metric", "value"]]
        long = long.rename(columns={"label": "attack"})
        table9 = paper_table(9)  # CIFAR-10 only
        lookup = {(r["attack"], r["method"]): r["defence_success_rate"] for r in table9.to_dict("records")}
        long = long.copy()
        long["paper_dataset"] = "cifar10"
        long["paper"] = [lookup.get((a, m), np.nan) for a, m in zip(long["attack"], long["method"])]
        return long
    if number == 4:
        models = [json.loads(Path(p).read_text()) for p in paths if p.endswith("model.json")]
        train_rows = [{"method": m["spec"]["method"], "dataset": m["spec"]["dataset"], "arch": m["spec"]["arch"],
                       "seed": m["spec"]["seed"], "metric": "train_seconds", "value": m["metrics"]["train_seconds"],
                       "epochs": m["epochs"], "device": m["device"]} for m in models]
        infer = [{"method": r["method"], "dataset": r["dataset"], "arch": r["arch"], "seed": r["seed"],
                  "metric": "inference_seconds", "value": r["seconds"], "inputs": r["inputs"],
                  "procedure": r["procedure"]} for r in rows if r.get("procedure") == "paper"]
        long = pd.DataFrame(train_rows + infer)
        return _attach(long, 4, ["method", "dataset"], reference)
    raise ValueError(f"no such table: {number}")


def _attack_long(rows: list[dict], key: str | None) -> pd.DataFrame:
    """Attack results in the long form of Tables 3 and 9, with the protocol beside each row."""
    df = pd.DataFrame(rows)
    df["metric"], df["value"] = "defence_success_rate", df["defence_success_rate"]
    df["settings"] = df["settings"].map(lambda s: json.dumps(s, sort_keys=True))
    cols = ["method", "dataset", "arch", "seed", "protocol", "inference", "inputs", "settings", "metric", "value"]
    if key == "attack":
        df = df.drop(columns="attack").rename(columns={"label": "attack"})
        cols = ["attack", *cols]
    return df[cols]


def build_extra(name: str, paths: list[str], tolerance: float = 5.0) -> pd.DataFrame:
    """A beyond-the-paper output (:data:`bench.plan.EXTRA_TABLES`), the λ ablation, or the
    sweep's architecture choices, in long form from the job outputs at ``paths``."""
    from bench.masking import flags

    rows = _read([p for p in paths if p.endswith(".json")])
    if name == "table3_adaptive":
        return _attack_long(rows, None)
    if name == "table9_adaptive":
        return _attack_long(rows, "attack")
    if name == "certificate_audit":
        df = pd.DataFrame(rows)
        df["wrong_rate"] = 100.0 * df["wrong"] / df["audited"].where(df["audited"] > 0)
        return df
    if name == "native_certificates":
        native = [r for r in rows if "certificate" in r]
        prob = [{**{k: r[k] for k in ("method", "dataset", "arch", "seed")},
                 "certificate": f"probabilistic ({r['procedure']}), κ = {r['kappa']}, α = {r['alpha']}",
                 "norm": r["spec"], "radius": None, "metric": "certified_robust_accuracy",
                 "value": r["certified_robust_accuracy"], "inputs": r["inputs"]}
                for r in rows if "procedure" in r]
        return pd.DataFrame(native + prob).drop(columns=["settings", "seconds"], errors="ignore")
    if name == "masking":
        by_run: dict[tuple, dict[str, float]] = {}
        for r in rows:
            key = (r["method"], r["dataset"], r["arch"], r["seed"])
            by_run.setdefault(key, {})[r["attack"]] = r["defence_success_rate"]
        return pd.DataFrame([{"method": m, "dataset": d, "arch": a, "seed": s, **f}
                             for (m, d, a, s), rates in by_run.items() for f in flags(rates, tolerance)])
    if name == "ablation":
        out = []
        for r in rows:
            keys = {k: r[k] for k in ("method", "dataset", "arch", "seed", "hparam")} | {"hparam_value": r["value"]}
            if "attack" in r:
                out.append({**keys, "metric": "autoattack_defence_success_rate", "procedure": None,
                            "value": r["defence_success_rate"]})
            else:  # standard accuracy does not depend on the procedure: one row
                out.append({**keys, "metric": "certified_robust_accuracy", "procedure": r["procedure"],
                            "value": r["certified_robust_accuracy"]})
                out.append({**keys, "metric": "standard_accuracy", "procedure": None, "value": r["standard_accuracy"]})
        df = pd.DataFrame(out).drop_duplicates(["dataset", "seed", "hparam_value", "metric", "procedure"])
        return df.sort_values(["dataset", "hparam_value", "metric"]).reset_index(drop=True)
    if name == "arch_selection":
        return pd.DataFrame([{**{k: v for k, v in r.items() if k != "candidates"},
                              "candidates": json.dumps(r["candidates"])} for r in rows])
    raise ValueError(f"no such output: {name}")


def select_arch(paths: list[str], paper_arch: str) -> dict:
    """``arch: sweep``: the candidate with the highest validation certified robust accuracy
    (ties: higher standard accuracy, then the paper's architecture)."""
    rows = _read(paths)
    best = max(rows, key=lambda r: (r["certified_robust_accuracy"], r["standard_accuracy"], r["arch"] == paper_arch))
    return {k: best[k] for k in ("method", "dataset", "seed", "arch")} | {
        "criterion": "validation certified robust accuracy", "paper_arch": paper_arch,
        "candidates": {r["arch"]: {"certified_robust_accuracy": r["certified_robust_accuracy"],
                                   "standard_accuracy": r["standard_accuracy"]} for r in rows}}
