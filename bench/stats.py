"""The statistics every reported rate carries: its interval and its paired comparisons.

- :func:`clopper_pearson`: the exact two-sided (1−level) interval of a proportion k/n
  (Clopper & Pearson 1934), via scipy's ``binomtest(...).proportion_ci(method="exact")``.
- :func:`mcnemar_exact`: McNemar's exact test of two classifiers on the same inputs: among the
  discordant inputs (one right, the other wrong) the count of each kind is Binomial(b + c, ½)
  under H0 (equal rates); two-sided or one-sided p-value from scipy's ``binomtest``.
- :func:`compare_to_best`: per column of a table, the best method and whether each other
  method's difference from it is significant on the paired test images.
- :func:`paired_across_seeds`: two methods trained with several seeds, evaluated on the same
  inputs: the stratified exact McNemar test over the seeds (the inputs' sampling) beside a
  t interval of the per-seed differences (the seeds' sampling), and which of the two limits the
  conclusion.
- :func:`paired_difference_interval`, :func:`detectable_difference`: the interval of a paired
  difference and the smallest difference a run can detect.

Rates are in percent throughout, as in the paper's tables.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["LEVEL", "clopper_pearson", "compare_to_best", "detectable_difference", "mcnemar_exact", "paired_across_seeds",
           "paired_difference_interval", "rate_columns"]

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


def paired_across_seeds(a: dict[int, Sequence[bool]], b: dict[int, Sequence[bool]], level: float = LEVEL) -> dict:
    """Method ``a`` against method ``b`` over training seeds, each seed's models scored on the same inputs.

    ``a[s]``, ``b[s]``: per-input outcomes (right, or certified and right) of the two methods'
    models of seed ``s``, in one input order. Two sources of chance, two answers:

    - **the test inputs**: the stratified exact McNemar test, seeds as strata. Under H0 (in every
      seed, a discordant input is as likely a's as b's) the pooled discordant counts are
      Binomial(Σ(bₛ+cₛ), ½): for matched pairs the Cochran–Mantel–Haenszel test reduces to
      McNemar's on the pooled discordant pairs (Agresti, *Categorical Data Analysis*, 3rd ed.,
      §11.1); here exact (``p_inputs``). It holds the trained models fixed: it says whether these
      models differ, not whether the methods would with other seeds.
    - **the training seeds**: the per-seed differences of the rates dₛ (points), their mean and
      its Student-t interval with S − 1 degrees of freedom (``seed_low``, ``seed_high``; needs
      S ≥ 2), which treats the seeds as a sample of the method's training runs (the per-seed
      spread includes each seed's input noise, so this interval is the wider, honest one).

    ``limited_by``: ``"seeds"`` when the inputs' test rejects at 1 − ``level`` but the seeds'
    interval contains 0 (the difference is real for these models and not shown for the
    methods), ``"inputs"`` when neither rejects, ``None`` when both do (the difference stands).
    Rates and differences are in percent.
    """
    from scipy.stats import binomtest
    from scipy.stats import t as student_t

    if set(a) != set(b) or not a:
        raise ValueError(f"both methods need the same seeds: {sorted(a)} vs {sorted(b)}")
    seeds = sorted(a)
    per_seed = {s: mcnemar_exact(a[s], b[s]) for s in seeds}
    sizes = {s: len(np.asarray(a[s])) for s in seeds}
    a_only = sum(r["a_only"] for r in per_seed.values())
    b_only = sum(r["b_only"] for r in per_seed.values())
    p_inputs = 1.0 if a_only + b_only == 0 else float(binomtest(a_only, a_only + b_only, 0.5).pvalue)
    diffs = np.array([100.0 * (per_seed[s]["a_only"] - per_seed[s]["b_only"]) / sizes[s] for s in seeds])
    mean = float(diffs.mean())
    if len(seeds) >= 2:
        half = float(student_t.ppf(0.5 + level / 2, len(seeds) - 1) * diffs.std(ddof=1) / np.sqrt(len(seeds)))
        low, high = mean - half, mean + half
    else:
        low = high = float("nan")
    seed_rejects = len(seeds) >= 2 and (low > 0 or high < 0)
    inputs_reject = p_inputs < 1 - level
    limited = None if (inputs_reject and seed_rejects) else "seeds" if inputs_reject else "inputs"
    total = sum(sizes.values())
    return {"seeds": len(seeds), "a_rate": 100.0 * float(sum(np.sum(a[s]) for s in seeds)) / total,
            "b_rate": 100.0 * float(sum(np.sum(b[s]) for s in seeds)) / total, "difference": mean,
            "per_seed_differences": diffs.tolist(), "a_only": a_only, "b_only": b_only, "p_inputs": p_inputs,
            "seed_low": low, "seed_high": high, "limited_by": limited}


def paired_difference_interval(a_only: int, b_only: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """A (1−``level``) interval of the difference of two paired rates, a − b, in points.

    a − b = ψ(2π − 1), with ψ the share of discordant inputs (one right, the other wrong) and π
    the share of a's among them. Both get an exact Clopper–Pearson interval at 1 − (1−level)/2,
    and the difference's interval is the range of ψ(2π − 1) over the two (Bonferroni: coverage at
    least ``level``). Unlike the interval conditional on the m observed discordant inputs, it
    counts the uncertainty of ψ, so that no discordant input among few gives a wide interval,
    not (0, 0): with m = 0, π is unknown and a − b lies in ±ψ's upper bound."""
    m, n = int(a_only) + int(b_only), int(n)
    if n <= 0:
        return float("nan"), float("nan")
    each = 1 - (1 - level) / 2
    psi_low, psi_high = (v / 100.0 for v in clopper_pearson(m, n, each))
    pi_low, pi_high = (0.0, 1.0) if m == 0 else (v / 100.0 for v in clopper_pearson(a_only, m, each))
    low, high = 2 * pi_low - 1, 2 * pi_high - 1
    return (100.0 * (psi_high if low < 0 else psi_low) * low, 100.0 * (psi_high if high > 0 else psi_low) * high)


def detectable_difference(discordant: float | None, n: int | None, power: float = 0.8, alpha: float = 0.05,
                          seeds: int | None = None, seed_sd: float | None = None) -> float:
    """The smallest difference of two paired rates (points) that a two-sided test at ``alpha``
    detects with probability ``power``.

    One seed: McNemar's test on ``n`` inputs of which a share ``discordant`` is discordant, by
    the normal approximation d ≈ (z₁₋α/₂ + z_power)·√(ψ/n) (Connor 1987, "Sample size for
    testing differences in proportions for the paired-sample design", Biometrics 43: the d² term
    of the variance dropped, which errs small). Several seeds: the t test of the per-seed
    differences, (t₁₋α/₂ + t_power)·sd/√S with S − 1 degrees of freedom (NaN for S < 2 or no spread)."""
    from scipy.stats import norm
    from scipy.stats import t as student_t

    if seeds is not None:
        if seeds < 2 or not seed_sd:
            return float("nan")
        df = seeds - 1
        return float((student_t.ppf(1 - alpha / 2, df) + student_t.ppf(power, df)) * seed_sd / np.sqrt(seeds))
    if not n or discordant is None:
        return float("nan")
    return float(100.0 * (norm.ppf(1 - alpha / 2) + norm.ppf(power)) * np.sqrt(discordant / n))


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
