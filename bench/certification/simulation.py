"""Simulation of the certification procedures on inputs with a known majority rate.

An input whose vicinity samples get class 0 with probability ``rate`` (class 1 otherwise) is
certified wrongly whenever ``rate ≤ 1−κ``. Two ways to measure each procedure's
false-certification rate and its sample cost, without a model:

* :func:`exact_rates` computes them exactly, by dynamic programming over the stopping rule;
* :func:`simulate` runs the engine's own stopping code (:class:`bench.certification.engine.Certifier`) on
  Bernoulli streams (Monte Carlo), a check that the engine implements that rule.
"""
from __future__ import annotations

import logging
from dataclasses import replace

import numpy as np
import pandas as pd
import torch

from bench.certification.engine import OUTCOMES, Certifier, CertifyConfig

__all__ = ["bernoulli_draw", "exact_rates", "simulate", "stopping_rule_rates", "study"]

log = logging.getLogger(__name__)


def _cut(lo: int, hi: int, a: int, b: int) -> tuple[int, int]:
    """The window [lo, hi] less the interval [a, b], as a window again (a hole inside stays)."""
    if a > hi or b < lo or a > b:
        return lo, hi
    if a <= lo and b >= hi:
        return 1, 0  # empty
    if a <= lo:
        return b + 1, hi
    if b >= hi:
        return lo, a - 1
    return lo, hi


def exact_rates(config: CertifyConfig, rate: float) -> dict:
    """Exact outcome probabilities of ``config``'s procedure on a two-class input whose samples
    are class 0 with probability ``rate`` (class 1 otherwise), i.i.d.

    Why: every procedure is a stopping rule on the count ``v`` of the tested class among the
    ``n`` samples drawn, given by two integer arrays of the test object
    (``config.make_test()``, the arrays the engine compares against): after sample n it stops at
    the lower boundary if ``v ≤ reject_at[n]`` (checked first, Algorithm 2 line 20), certifies
    if ``v ≥ certify_at[n]``, and stops undecided at n = budget. Re-testing after every sample
    is optional stopping: a fixed-n test of level α, applied at every n, certifies an input at
    rate = 1−κ with probability above α, growing with the budget; the paper's procedure does
    this, while the SPRT and the mixture martingale bound it by α at every budget (Ville).
    Monte Carlo measures this rate only to within its sampling error (about ±0.3 points at
    4,000 inputs); this function gives it exactly (see :func:`stopping_rule_rates`).

    Returns a dict with the settings (``procedure``, ``rate``, ``kappa``, ``alpha``,
    ``budget``) and the probabilities ``certified`` (= ``certified_class0`` +
    ``certified_class1``; the latter is 0 for the valid tests, which test class 0),
    ``lower_stop`` (the lower-boundary stop, whatever the engine names it: ``not_robust``),
    ``undecided`` (budget reached), with ``mean_samples`` (expected samples counted by the
    test), ``min_samples_certified`` (least n at which certification has positive probability,
    None if none) and ``mass_error`` (|1 − total|, the rounding error, ~1e-12 or less).
    """
    rate = float(rate)
    test = config.make_test()
    rates = stopping_rule_rates(test.certify_at, test.reject_at, rate, test.running_majority)
    log.debug("exact %s, budget %d, rate %g: certified %.6g, lower stop %.6g, undecided %.6g",
              config.procedure, test.budget, rate, rates["certified"], rates["lower_stop"], rates["undecided"])
    return {"procedure": config.procedure, "rate": rate, "kappa": config.kappa,
            "alpha": config.alpha, "budget": int(test.budget), **rates}


def stopping_rule_rates(certify_at: np.ndarray, reject_at: np.ndarray, rate: float,
                        running_majority: bool) -> dict:
    """Exact outcome probabilities of the stopping rule (``certify_at``, ``reject_at``) over
    n = 0 … budget (budget = ``len(certify_at) − 1``) on two-class i.i.d. samples, class 0
    with probability ``rate``; the dynamic programme behind :func:`exact_rates`.

    The distribution of the state over the still-undecided inputs is propagated one sample at
    a time, ``P_n(v0) = rate·P_{n−1}(v0−1) + (1−rate)·P_{n−1}(v0)`` (v0: the count of class 0),
    and after each sample n ≥ 1 the mass on the stopping region is absorbed into its outcome,
    in the engine's order: the lower boundary (``v ≤ reject_at[n]``) first, then certification
    (``v ≥ certify_at[n]``), then, at n = budget, undecided. The tested count ``v`` is

    * v0 if ``running_majority`` is false (the valid tests: class 0, fixed in advance);
    * max(v0, n−v0) if true (the paper's test: the running majority, re-chosen after every
      sample), of class 0 when v0 ≥ n−v0 (ties to the smaller class index, as in the engine);
      the certified mass is split by that class into ``certified_class0`` / ``certified_class1``.

    Only the window of v0 that can still be undecided is updated, in vectorised numpy: at most
    O(budget²) operations in all, well under a second at budget 20,000. Float64 throughout:
    each probability is a sum of at most ~budget² rounded terms, and the total rounding error
    is about budget × 1e-16 (~1e-12 at budget 20,000, as ``mass_error`` shows).
    """
    rate = float(rate)
    if not 0.0 <= rate <= 1.0:
        raise ValueError(f"rate = {rate!r} is out of range; allowed: 0 <= rate <= 1")
    certify_at = np.asarray(certify_at, dtype=np.int64)
    reject_at = np.asarray(reject_at, dtype=np.int64)
    if certify_at.shape != reject_at.shape or certify_at.ndim != 1 or len(certify_at) < 2:
        raise ValueError("certify_at and reject_at must be 1-D arrays of one length, budget + 1 >= 2")
    budget = len(certify_at) - 1
    p = np.zeros(budget + 2, dtype=np.float64)  # p[v0]: undecided mass with v0 class-0 samples
    p[0] = 1.0
    lo, hi = 0, 0  # p is zero outside [lo, hi]
    lower = cert0 = cert1 = undecided = 0.0
    expected = 0.0  # Σ n · P(stop at n)
    first_certified: int | None = None

    def take(a: int, b: int) -> float:
        """Absorb and return the mass on v0 in [a, b] ∩ window, shrinking the window."""
        nonlocal lo, hi
        a, b = max(a, lo), min(b, hi)
        if a > b:
            return 0.0
        mass = float(p[a : b + 1].sum())
        p[a : b + 1] = 0.0
        lo, hi = _cut(lo, hi, a, b)
        return mass

    for n in range(1, budget + 1):
        # one more sample: class 0 with probability `rate` moves v0 up by one
        moved = p[lo : hi + 1] * rate
        p[lo : hi + 1] *= 1.0 - rate
        p[lo + 1 : hi + 2] += moved
        hi += 1
        c, r = int(certify_at[n]), int(reject_at[n])
        if running_majority:
            half = (n + 1) // 2  # v0 >= half  <=>  v0 >= n - v0: class 0 is the majority
            low = take(n - r, r)  # max(v0, n - v0) <= r
            up0 = take(max(c, half), n)  # majority class 0, count v0 >= c
            up1 = take(0, min(n - c, half - 1))  # majority class 1, count n - v0 >= c
        else:
            low = take(0, r)
            up0, up1 = take(c, n), 0.0
        lower, cert0, cert1 = lower + low, cert0 + up0, cert1 + up1
        expected += n * (low + up0 + up1)
        if first_certified is None and up0 + up1 > 0.0:
            first_certified = n
        if lo > hi:  # every input has stopped
            break
    else:
        undecided = float(p[lo : hi + 1].sum())
        expected += budget * undecided
    certified = cert0 + cert1
    return {
        "certified": certified,
        "certified_class0": cert0,
        "certified_class1": cert1,
        "lower_stop": lower,
        "undecided": undecided,
        "mean_samples": expected,
        "min_samples_certified": first_certified,
        "mass_error": abs(1.0 - (certified + lower + undecided)),
    }


def bernoulli_draw(rate: float, seed: int):
    """A ``draw`` callback whose samples are class 0 with probability ``rate``, else class 1."""
    gen = torch.Generator().manual_seed(seed)

    def draw(inputs: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        u = torch.rand(int(sizes.sum()), generator=gen, dtype=torch.float64)
        return (u >= rate).long()

    return draw


def simulate(config: CertifyConfig, rate: float, n_inputs: int, seed: int = 0) -> dict:
    """Certify ``n_inputs`` simulated inputs of majority rate ``rate``; summary as a dict.

    ``certified`` is the fraction certified (a false certification rate when rate ≤ 1−κ),
    split by the certified class into ``certified_class0`` and ``certified_class1``;
    ``lower_stop`` is the fraction stopped at the lower boundary, whatever outcome name the
    engine gives it (every outcome but ``certified`` and ``undecided``), and ``not_robust`` the
    fraction with that outcome name. The valid procedures test class 0, fixed in advance; the
    paper's tests the running majority. :func:`exact_rates` gives the same quantities exactly.
    """
    certifier = Certifier(config, num_classes=2)
    result = certifier.run(n_inputs, bernoulli_draw(rate, seed),
                           candidate=torch.zeros(n_inputs, dtype=torch.long), progress=False)
    outcome = pd.Series([OUTCOMES[i] for i in result.outcome.tolist()])
    certified = outcome.eq("certified")
    undecided = outcome.eq("undecided")
    certified_class = result.prediction.numpy()[certified.to_numpy()]
    certified_samples = result.samples[result.outcome == OUTCOMES.index("certified")]
    return {
        "procedure": config.procedure,
        "rate": rate,
        "kappa": config.kappa,
        "alpha": config.alpha,
        "budget": config.budget,
        "inputs": n_inputs,
        "certified": float(certified.mean()),
        "certified_class0": float((certified_class == 0).sum() / n_inputs),
        "certified_class1": float((certified_class == 1).sum() / n_inputs),
        "lower_stop": float((~certified & ~undecided).mean()),
        "not_robust": float(outcome.eq("not_robust").mean()),
        "below_p1": float(outcome.eq("below_p1").mean()),
        "undecided": float(undecided.mean()),
        "min_samples_certified": int(certified_samples.min()) if len(certified_samples) else None,
        "mean_samples": float(result.samples.float().mean()),
    }


def study(rates: list[float], procedures: list[str], budgets: list[int], n_inputs: int,
          kappa: float = 0.01, alpha: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """A grid of :func:`simulate` runs, one row per (procedure, budget, rate)."""
    rows = []
    for procedure in procedures:
        for budget in budgets:
            cfg = CertifyConfig(kappa=kappa, alpha=alpha, procedure=procedure, budget=budget)
            for rate in rates:
                rows.append(simulate(replace(cfg), rate, n_inputs, seed))
    return pd.DataFrame(rows)
