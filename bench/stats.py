"""The statistics every reported rate carries: its interval and its paired comparisons.

- :func:`clopper_pearson`: the exact two-sided (1−level) interval of a proportion k/n
  (Clopper & Pearson 1934), via scipy's ``binomtest(...).proportion_ci(method="exact")``.
- :func:`mcnemar_exact`: McNemar's exact test of two classifiers on the same inputs: among the
  discordant inputs (one right, the other wrong) the count of each kind is Binomial(b + c, ½)
  under H0 (equal rates); two-sided or one-sided p-value from scipy's ``binomtest``.
- :func:`compare_to_best`: per column of a table, the best method and whether each other
  method's difference from it is significant on the paired test images.

Rates are in percent throughout, as in the paper's tables.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["LEVEL", "clopper_pearson", "compare_to_best", "mcnemar_exact", "rate_columns"]

#: the confidence of every interval and the level of every comparison in the tables
LEVEL = 0.95


def clopper_pearson(k: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """Exact interval of a binomial proportion, in percent; ``(nan, nan)`` when ``n == 0``."""
    from scipy.stats import binomtest

    k, n = int(k), int(n)
    if n <= 0:
        return (float("nan"), float("nan"))
    if not 0 <= k <= n:
        raise ValueError(f"successes k = {k} out of range for n = {n} trials; allowed: 0 <= k <= n")
    ci = binomtest(k, n).proportion_ci(confidence_level=level, method="exact")
    return 100.0 * ci.low, 100.0 * ci.high


def mcnemar_exact(a: Sequence[bool], b: Sequence[bool], alternative: str = "two-sided") -> dict:
    """McNemar's exact test of H0 "a and b are right equally often" on paired inputs.

    ``a`` and ``b`` are per-input correctness (or certification) of two classifiers on the same
    inputs, in the same order. ``alternative="greater"`` tests "a is right more often than b".
    Returns the discordant counts ``a_only`` (a right, b wrong) and ``b_only``, and ``p``
    (1.0 when there is no discordant input: no evidence of any difference).
    """
    from scipy.stats import binomtest

    a, b = np.asarray(a, dtype=bool), np.asarray(b, dtype=bool)
    if a.shape != b.shape:
        raise ValueError(f"paired test needs the same inputs: {a.shape} vs {b.shape}")
    a_only, b_only = int((a & ~b).sum()), int((~a & b).sum())
    p = 1.0 if a_only + b_only == 0 else float(binomtest(a_only, a_only + b_only, 0.5,
                                                           alternative=alternative).pvalue)
    return {"a_only": a_only, "b_only": b_only, "p": p}


def rate_columns(successes: pd.Series, inputs: pd.Series, level: float = LEVEL) -> pd.DataFrame:
    """``ci_low`` and ``ci_high`` (percent) for each row's ``successes`` of ``inputs``."""
    bounds = [clopper_pearson(k, n, level) if pd.notna(k) and pd.notna(n) else (np.nan, np.nan)
              for k, n in zip(successes, inputs)]
    return pd.DataFrame(bounds, columns=["ci_low", "ci_high"], index=successes.index)


def compare_to_best(df: pd.DataFrame, columns: list[str], outcomes: dict[tuple, np.ndarray],
                    level: float = LEVEL) -> pd.DataFrame:
    """Mark the best method of each column and test every other method against it.

    ``df`` has one row per (method, column) with ``value`` and a ``key`` column holding the
    row's key into ``outcomes`` (per-input booleans: right or certified). ``columns`` are the
    keys that define a column of the paper's layout (dataset, metric, procedure, …): within
    one, rows are paired on the same test inputs. Adds ``best`` (the highest value; several on
    an exact tie), ``vs_best_p`` (McNemar's exact two-sided p-value against the best; NaN where
    a row lacks per-input outcomes) and ``vs_best``: ``best``, ``tie`` (not significantly
    different at 1−``level``) or ``worse``.
    """
    df = df.copy()
    df["best"], df["vs_best_p"], df["vs_best"] = False, np.nan, None
    for _, group in df.groupby(columns, dropna=False, sort=False):
        values = group["value"]
        if values.notna().sum() == 0:
            continue
        top = values.max()
        best_rows = group.index[values == top]
        df.loc[best_rows, "best"] = True
        df.loc[best_rows, "vs_best"] = "best"
        reference = outcomes.get(df.at[best_rows[0], "key"])
        for i in group.index.difference(best_rows):
            if pd.isna(df.at[i, "value"]):
                continue
            other = outcomes.get(df.at[i, "key"])
            if reference is None or other is None or len(reference) != len(other):
                continue
            p = mcnemar_exact(reference, other)["p"]
            df.at[i, "vs_best_p"] = p
            df.at[i, "vs_best"] = "tie" if p >= 1 - level else "worse"
    return df.drop(columns="key")
