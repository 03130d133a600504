"""A table of the benchmark as one registered class: what it needs, how it aggregates, how it shows.

A table declares its key (``reports/<run>/<key>.csv``), the paper's number where it has one,
its title, when a config enables it, the job outputs it reads (:meth:`Table.inputs`), how it
turns them into one tidy long-form frame (:meth:`Table.build`), and its layout in the report
(``rows`` × ``columns``). Certification tables also declare the settings their certify job
runs (:meth:`CertificationTable.settings`). The DAG (``bench.workflow.plan``), the jobs, the aggregation
rule and the HTML report loop over :data:`TABLES`; adding a table is one module in
``bench/tables/`` with one decorated class (docs/extending.md: "Adding a table").

Every rate row carries ``successes`` of ``inputs``, its exact 95 % interval (``ci_low``,
``ci_high``, :func:`bench.stats.clopper_pearson`) and, where the table compares methods, the
best per column and McNemar's paired test against it (``best``, ``vs_best``, ``vs_best_p``).
"""
from __future__ import annotations

from typing import Any, ClassVar

import numpy as np
import pandas as pd

from bench.certification.metrics import per_input
from bench.io import read_inputs_csv, read_result
from bench.paper import paper_table
from bench.paths import ModelRun, file_kind, output_kind
from bench.registry import Registry
from bench.runs import ArchOf, runs
from bench.stats import compare_to_best, rate_columns

__all__ = ["ArchOf", "CertificationTable", "TABLES", "Table", "enabled_tables", "get_table", "read_rows",
           "register_table"]

TABLES: Registry[type["Table"]] = Registry("table")
#: the keys of a model's identity in every row
MODEL_KEYS = ["method", "dataset", "arch", "seed"]
#: what a row says about where its model came from: an external checkpoint's file (bench.training.external)
SOURCE_KEYS = ["external"]


def register_table(cls: type["Table"]) -> type["Table"]:
    """Class decorator: add ``cls`` to :data:`TABLES` under ``cls.key``."""
    for attr in ("key", "title"):
        if not hasattr(cls, attr):
            raise TypeError(f"table class {cls.__name__} must declare '{attr}'")
    return TABLES.add(cls.key, cls)


def get_table(key: str) -> "Table":
    return TABLES[key]()


def enabled_tables(config: dict) -> list["Table"]:
    """The tables a config builds, in report order."""
    return [cls() for cls in sorted(TABLES.values(), key=lambda c: c.order) if cls().enabled(config)]


def read_rows(paths: list[str]) -> list[dict]:
    """The result rows of job outputs (``{"rows": [...], "provenance": {...}}``), each row with
    the kind of job that wrote it (``job``), that job's code stamp and commit (``code``,
    ``git_commit``) and the code stamp of the training behind the model (``model_code``)."""
    rows = []
    for p in paths:
        data = read_result(p)  # a corrupt file is named, with how to recompute it
        prov = data.get("provenance", {})
        stamp = {"job": output_kind(p), "code": prov.get("code", {}).get("engine"), "git_commit": prov.get("git_commit")}
        if "model_code" in prov:
            stamp["model_code"] = prov["model_code"]
        rows += [{**r, **stamp} for r in data["rows"]]
    return rows


class Table:
    """One output of the benchmark. Subclass, declare the class attributes, implement
    :meth:`inputs` and :meth:`build`."""

    key: ClassVar[str]
    title: ClassVar[str]
    number: ClassVar[int | None] = None  # the paper's table number: its values go beside ours
    order: ClassVar[float] = 100.0  # position in the report
    config_key: ClassVar[str | None] = None  # a config block that enables the table (beyond the paper)
    beside: ClassVar[str | None] = None  # shown in the report right after this table
    rows: ClassVar[list[str]] = ["method", "dataset"]
    columns: ClassVar[list[str]] = ["metric"]
    compare: ClassVar[bool] = True  # mark the best method per column and test the rest against it
    rate: ClassVar[bool] = True  # values are rates in percent over test inputs (with intervals)
    plain: ClassVar[bool] = False  # shown row by row as it is, not in the rows × columns layout
    #: metric -> the column keys it does not depend on: the report shows it once across them
    #: (where the rows agree), not once per key
    shared: ClassVar[dict[str, list[str]]] = {}

    def enabled(self, config: dict) -> bool:
        if self.config_key is not None:
            return bool(config.get(self.config_key))
        listed = config.get("tables", [])
        return self.key in listed or (self.number is not None and self.number in listed)

    def inputs(self, config: dict, arch_of: ArchOf | None = None) -> list[str]:
        """The job outputs the table is aggregated from."""
        raise NotImplementedError

    def build(self, paths: list[str], config: dict) -> pd.DataFrame:
        """The table in long form from the job outputs at ``paths``."""
        raise NotImplementedError

    # --- shared helpers ---------------------------------------------------------------------

    @staticmethod
    def with_intervals(df: pd.DataFrame, outcomes: dict[tuple, np.ndarray] | None = None,
                       columns: list[str] | None = None) -> pd.DataFrame:
        """Add ``successes``, ``ci_low``, ``ci_high`` to rate rows (``value`` percent of ``inputs``)
        and, given per-input ``outcomes`` keyed by ``df["key"]``, the comparison to the best of
        each column (``columns``: the keys of a column, besides the method's own)."""
        df = df.copy()
        known = df["value"].notna() & df["inputs"].notna()
        df["successes"] = np.where(known, np.round(df["value"].fillna(0) * df["inputs"].fillna(0) / 100.0), np.nan)
        df[["ci_low", "ci_high"]] = rate_columns(df["successes"], df["inputs"])
        if outcomes is not None and columns is not None:
            return compare_to_best(df, columns, outcomes)
        return df.drop(columns="key", errors="ignore")

    @staticmethod
    def attach_paper(df: pd.DataFrame, number: int, keys: list[str], reference: dict[str, str],
                     paper_metric: dict[str, str] | None = None) -> pd.DataFrame:
        """Add ``paper`` (the paper's value) and ``paper_dataset`` (the dataset it is for: the row's
        own, or the one the config's ``paper_reference`` maps it to); ``paper_metric`` maps our
        metric names to the paper table's columns."""
        paper_metric = paper_metric or {}
        table = paper_table(number)
        cols = [c for c in sorted({paper_metric.get(m, m) for m in df["metric"].unique()}) if c in table.columns]
        lookup = {(*[rec[k] for k in keys], m): rec[m] for rec in table.to_dict("records") for m in cols}
        df = df.copy()
        df["paper_dataset"] = df["dataset"].map(lambda d: reference.get(d, d))
        df["paper"] = [lookup.get((*[r["paper_dataset"] if k == "dataset" else r[k] for k in keys],
                                   paper_metric.get(r["metric"], r["metric"])), np.nan)
                       for r in df.to_dict("records")]
        return df


class CertificationTable(Table):
    """A table of certification settings: its certify job runs :meth:`settings` for one model and
    writes ``results/<run>/<model>/certify/<key>.json`` (+ ``_inputs.csv``, one row per input)."""

    metrics: ClassVar[list[str]] = ["certified_robust_accuracy"]
    setting_keys: ClassVar[list[str]] = []  # the columns that tell the table's settings apart

    def settings(self, config: dict, vicinities: dict[str, str]) -> list[dict[str, Any]]:
        """The (vicinity, spec, κ, α, procedure) settings behind the table; ``vicinities`` maps
        the config's vicinity names to spec strings for the dataset."""
        raise NotImplementedError

    def deterministic(self, config: dict) -> bool:
        """Whether the job also certifies κ = 0 by sound bounds (Table 11's first column)."""
        return False

    @staticmethod
    def setting(vicinities: dict[str, str], vicinity: str, kappa: float, alpha: float, procedure: str) -> dict:
        return {"vicinity": vicinity, "spec": vicinities[vicinity], "kappa": kappa, "alpha": alpha,
                "procedure": procedure}

    def inputs(self, config, arch_of=None):
        out = []
        for r in runs(config, arch_of, votes=False):
            model = ModelRun.of(config, r)
            out += [model.output("certify", self.key), model.output("certify_inputs", self.key)]
        return out

    def build(self, paths, config):
        inputs_files = [p for p in paths if file_kind(p) == "certify_inputs"]
        rows = read_rows([p for p in paths if p not in inputs_files])
        outcomes = certification_outcomes(inputs_files, self.metrics, self.setting_keys)
        df = pd.DataFrame(rows)
        df["confidence"] = (1 - df["alpha"]).round(6)
        keys = [*MODEL_KEYS, *SOURCE_KEYS, *self.setting_keys, "procedure", "inputs", "precision", "job", "code",
                "model_code", "git_commit"]
        long = df.melt(id_vars=[k for k in keys if k in df], value_vars=self.metrics, var_name="metric",
                       value_name="value")
        long["key"] = [outcome_key(r, self.setting_keys) for r in long.to_dict("records")]
        long = self.with_intervals(long, outcomes, ["dataset", "seed", *self.setting_keys, "procedure", "metric"])
        return self.paper_values(long, config.get("paper_reference", {}))

    def paper_values(self, long: pd.DataFrame, reference: dict[str, str]) -> pd.DataFrame:
        return self.attach_paper(long, self.number, ["method", "dataset", *self.setting_keys], reference)


def outcome_key(row: dict, setting_keys: list[str]) -> tuple:
    """The key of one model × setting × metric's per-input outcomes."""
    return (*[row[k] for k in MODEL_KEYS], *[str(row[k]) for k in setting_keys], row["procedure"], row["metric"])


def certification_outcomes(paths: list[str], metrics: list[str], setting_keys: list[str]) -> dict[tuple, np.ndarray]:
    """Per-input outcomes from the certify jobs' ``_inputs.csv`` files, keyed by :func:`outcome_key`
    with the table's ``setting_keys`` (``vicinity``, ``kappa`` or ``confidence``)."""
    out = {}
    for p in paths:
        frame = read_inputs_csv(p, ("input", "alpha", "vicinity", "kappa", "procedure"))
        frame["confidence"] = (1 - frame["alpha"]).round(6)
        ident = {k: frame[k].iloc[0] for k in MODEL_KEYS} if len(frame) else {}
        for (vicinity, kappa, confidence, procedure), group in frame.groupby(
                ["vicinity", "kappa", "confidence", "procedure"], sort=False):
            group = group.sort_values("input")
            row = {**ident, "vicinity": vicinity, "kappa": kappa, "confidence": confidence, "procedure": procedure}
            flags = per_input(group)
            for metric in metrics:
                out[outcome_key({**row, "metric": metric}, setting_keys)] = flags[metric].to_numpy()
    return out
