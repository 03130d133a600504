"""The statistics every reported rate carries: its interval and its paired comparisons.

- :func:`clopper_pearson`: the exact two-sided (1−level) interval of a proportion k/n
  (Clopper & Pearson 1934), via scipy's ``binomtest(...).proportion_ci(method="exact")``.
- :func:`mcnemar_exact`: McNemar's exact test of two classifiers on the same inputs: among the
  discordant inputs (one right, the other wrong) the count of each kind is Binomial(b + c, ½)
  under H0 (equal rates); two-sided or one-sided p-value from scipy's ``binomtest``.
- :func:`compare_to_best`: per column of a table, the best method and whether each other
  method's difference from it is significant on the paired test images.
- :func:`paired_across_seeds`: two methods trained with several seeds, evaluated on the same
  inputs: the exact sign test over inputs (these models) beside an interval that counts the
  inputs' and the seeds' sampling together (the methods), and which of the two limits the
  conclusion.
- :func:`paired_difference_interval`, :func:`detectable_difference`: the interval of a paired
  difference and the smallest difference a run can detect.
- :func:`time_ratio_across_seeds`: how many times longer one method's training takes than
  another's, over training seeds (the ratio of geometric means, with its Welch t interval).

Rates are in percent throughout, as in the paper's tables.
"""
from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

__all__ = ["LEVEL", "clopper_pearson", "compare_to_best", "detectable_difference", "mcnemar_exact", "paired_across_seeds",
           "paired_difference_interval", "rate_across_seeds", "rate_columns", "time_ratio_across_seeds"]

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
    """Method ``a`` against method ``b`` over training seeds, every seed's models scored on the same inputs.

    ``a[s]``, ``b[s]``: per-input outcomes (right, or certified and right) of the two methods'
    models of seed ``s``, in one input order: the same test inputs for every seed, so an input's
    outcomes are correlated across seeds and the input, not the (seed, input) pair, is the unit.
    The effect is the mean over seeds of the per-seed differences dₛ (points). Two answers:

    - **the test inputs** (the models held fixed): the exact sign test over inputs of Dᵢ, input
      i's difference a − b averaged over the seeds (with one seed, McNemar's exact test):
      ``p_inputs``. It says whether these models differ on inputs like these.
    - **the inputs and the seeds together** (the methods): the interval effect ± t·SE with
      SE² = s²(dₛ)/S + s²(Dᵢ)/n, the seeds' spread of the per-seed differences and the inputs'
      spread of the seed-averaged differences (a crossed design: both are samples; the seed ×
      input interaction enters both terms, which errs wide), and Welch–Satterthwaite degrees of
      freedom (``low``, ``high``). When no input is discordant in any seed, SE is 0 and says
      nothing: the interval is then ± the exact upper bound of the share of inputs discordant in
      some seed (|a − b| cannot exceed it).

    ``limited_by``: ``"seeds"`` when the inputs' test rejects at 1 − ``level`` but the interval
    contains 0 (these models differ; the spread over seeds does not let it be said of the
    methods), ``None`` when the interval excludes 0 (the difference stands), ``"inputs"``
    otherwise (not even these models are shown to differ).
    """
    from scipy.stats import binomtest
    from scipy.stats import t as student_t

    if set(a) != set(b) or not a:
        raise ValueError(f"both methods need the same seeds: {sorted(a)} vs {sorted(b)}")
    seeds = sorted(a)
    A = np.array([np.asarray(a[s], dtype=float) for s in seeds])
    B = np.array([np.asarray(b[s], dtype=float) for s in seeds])
    if A.shape != B.shape:
        raise ValueError(f"paired test needs the same inputs in every seed: {A.shape} vs {B.shape}")
    S, n = A.shape
    per_input = 100.0 * (A - B).mean(axis=0)  # Dᵢ, points
    diffs = 100.0 * (A - B).mean(axis=1)  # dₛ, points
    effect = float(diffs.mean())
    up, down = int((per_input > 0).sum()), int((per_input < 0).sum())
    p_inputs = 1.0 if up + down == 0 else float(binomtest(up, up + down, 0.5).pvalue)
    seed_var = float(diffs.var(ddof=1)) / S if S > 1 else 0.0
    input_var = float(per_input.var(ddof=1)) / n if n > 1 else 0.0
    se = float(np.sqrt(seed_var + input_var))
    df = float("nan")
    if up + down == 0:  # no discordant input anywhere: bound |a − b| by the share's exact upper bound
        half = clopper_pearson(0, n, level)[1]
    else:
        parts = (seed_var**2 / (S - 1) if S > 1 else 0.0) + (input_var**2 / (n - 1) if n > 1 else 0.0)
        df = se**4 / parts if parts > 0 else float(n - 1)
        half = float(student_t.ppf(0.5 + level / 2, df)) * se
    low, high = effect - half, effect + half
    stands = low > 0 or high < 0
    limited = None if stands else "seeds" if p_inputs < 1 - level else "inputs"
    return {"seeds": S, "inputs": n, "a_rate": 100.0 * float(A.mean()), "b_rate": 100.0 * float(B.mean()),
            "difference": effect, "per_seed_differences": diffs.tolist(), "se": se, "df": df, "inputs_up": up,
            "inputs_down": down, "p_inputs": p_inputs, "low": low, "high": high, "limited_by": limited}


def rate_across_seeds(hits: dict[int, Sequence[bool]], level: float = LEVEL) -> tuple[float, float, float]:
    """One method's rate over its training seeds, every seed's model on the same inputs: the mean
    of the per-seed rates (percent) and its ``level`` interval, mean ± t·SE with SE² =
    s²(rateₛ)/S + s²(hᵢ)/n (hᵢ: input i's hit share over the seeds; Welch–Satterthwaite degrees of
    freedom), clipped to [0, 100]. The inputs, not the (seed, input) pairs, are the unit: pooling
    the S·n outcomes as independent would make the interval too narrow. When every input has
    one outcome in every seed (SE = 0), the exact Clopper–Pearson interval of the n inputs."""
    from scipy.stats import t as student_t

    H = np.array([np.asarray(hits[s], dtype=float) for s in sorted(hits)])
    S, n = H.shape
    rates, per_input = 100.0 * H.mean(axis=1), 100.0 * H.mean(axis=0)
    value = float(rates.mean())
    seed_var = float(rates.var(ddof=1)) / S if S > 1 else 0.0
    input_var = float(per_input.var(ddof=1)) / n if n > 1 else 0.0
    se = float(np.sqrt(seed_var + input_var))
    if se == 0.0:
        low, high = clopper_pearson(int(round(value * n / 100.0)), n, level)
        return value, low, high
    parts = (seed_var**2 / (S - 1) if S > 1 else 0.0) + (input_var**2 / (n - 1) if n > 1 else 0.0)
    half = float(student_t.ppf(0.5 + level / 2, se**4 / parts)) * se
    return value, max(0.0, value - half), min(100.0, value + half)


def paired_difference_interval(a_only: int, b_only: int, n: int, level: float = LEVEL) -> tuple[float, float]:
    """A ``level`` interval of the difference of two paired rates, a − b, in points.

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
                          seeds: int | None = None, se: float | None = None, df: float | None = None) -> float:
    """The smallest difference of two paired rates (points) that a two-sided test at ``alpha``
    detects with probability ``power``.

    One seed: McNemar's test on ``n`` inputs of which a share ``discordant`` is discordant, by
    the normal approximation d ≈ (z₁₋α/₂ + z_power)·√(ψ/n) (Connor 1987, "Sample size for
    testing differences in proportions for the paired-sample design", Biometrics 43; the d² term
    of the variance dropped, which makes it a little larger). Several seeds: (t₁₋α/₂ + t_power)
    times the standard error ``se`` of :func:`paired_across_seeds`, the t quantiles at its
    Welch–Satterthwaite ``df`` as its interval's (normal quantiles without one; NaN without ``se``)."""
    from scipy.stats import norm
    from scipy.stats import t as student_t

    z = norm.ppf(1 - alpha / 2) + norm.ppf(power)
    if seeds is not None:
        if df is not None and np.isfinite(df):
            z = student_t.ppf(1 - alpha / 2, df) + student_t.ppf(power, df)
        return float(z * se) if se else float("nan")
    if not n or discordant is None:
        return float("nan")
    return float(100.0 * z * np.sqrt(discordant / n))


def time_ratio_across_seeds(a: dict[int, float], b: dict[int, float], level: float = LEVEL, power: float = 0.8
                            ) -> dict:
    """How many times longer ``b`` takes than ``a``, from each method's training seeds (seconds,
    by seed: each model's wall time on one machine): the ratio of the two geometric means (run
    times compare by ratios, summarised by their geometric mean: Fleming & Wallace 1986, "How not
    to lie with statistics: the correct way to summarize benchmark results", CACM 29), with the
    Welch t interval (``level``) of the difference of the mean log times, its two-sided test of
    no difference (``p``), and the smallest ratio above 1 that test detects with ``power`` at the
    seeds' spread (``detectable``). Unpaired: the same seed of two methods shares nothing that
    sets a wall time. With fewer than two seeds of either method there is no spread: the ratio
    alone, NaN for the rest."""
    from scipy.stats import t as student_t

    if not a or not b or any(not (np.isfinite(v) and v > 0) for v in (*a.values(), *b.values())):
        raise ValueError(f"both methods need positive times: {a} vs {b}")
    la, lb = np.log(list(a.values())), np.log(list(b.values()))
    diff = float(lb.mean() - la.mean())
    ratio, nan = float(np.exp(diff)), float("nan")
    seeds = min(len(la), len(lb))
    if seeds < 2:
        return {"ratio": ratio, "low": nan, "high": nan, "p": nan, "detectable": nan, "seeds": seeds}
    va, vb = la.var(ddof=1) / len(la), lb.var(ddof=1) / len(lb)
    se = float(np.sqrt(va + vb))
    if se == 0:  # identical times within each method: the interval is the ratio itself
        return {"ratio": ratio, "low": ratio, "high": ratio, "p": 0.0 if diff else 1.0, "detectable": nan,
                "seeds": seeds}
    df = se**4 / (va**2 / (len(la) - 1) + vb**2 / (len(lb) - 1))
    q = float(student_t.ppf(0.5 + level / 2, df))
    return {"ratio": ratio, "low": float(np.exp(diff - q * se)), "high": float(np.exp(diff + q * se)),
            "p": float(2 * student_t.sf(abs(diff) / se, df)),
            "detectable": float(np.exp((q + student_t.ppf(power, df)) * se)), "seeds": seeds}


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
