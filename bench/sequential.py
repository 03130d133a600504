"""Sequential tests of H0: p ≤ 1−κ for the rate p at which a vicinity sample gets one class.

Each test is a stopping rule on (v, n): ``v`` samples of the tested class among ``n`` drawn.
It *certifies* (rejects H0: p ≤ 1−κ) when ``v ≥ certify_at[n]`` and declares the input
*not robust* (rejects p ≥ 1−κ) when ``v ≤ reject_at[n]``. Because all three tests below are
monotone in v, these two integer arrays, computed once per (κ, α, budget), are the whole
rule, and the engine (:mod:`bench.certify`) only compares integers while it samples.

``paper``
    Algorithm 2 of the paper: the exact binomial tests of Eq. (7), right tail
    P(Z ≥ v | n, 1−κ) < α certifies, left tail P(Z ≤ v | n, 1−κ) < α rejects, re-tested after
    every sample and with the tested class re-chosen as the running majority. The re-testing is
    optional stopping: its false-certification rate exceeds α, and grows with the budget.
``sprt``
    Wald's (1945) sequential probability ratio test of p0 = 1−κ against p1 > p0 (indifference
    region (p0, p1)); certifies when the likelihood ratio reaches 1/α, rejects when it falls to
    α. Valid for any budget by Ville's inequality; needs a candidate class fixed in advance.
``mixture``
    A test martingale: the likelihood ratio against p0 averaged over the prior
    λ·δ(p=1) + (1−λ)·U[p0, 1] certifies when it reaches 1/α; the same over U[0, p0] rejects.
    Valid for any budget by Ville's inequality (an anytime-valid test); with λ = 0.99 it
    certifies an all-agreeing input at exactly n_min = ⌈ln α / ln(1−κ)⌉, as the paper's test
    does. Needs a candidate class fixed in advance.
"""
from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from scipy import special

__all__ = [
    "PROCEDURES",
    "SequentialTest",
    "PaperBinomialTest",
    "WaldSPRT",
    "MixtureMartingale",
    "make_test",
    "n_min",
    "validate_level",
]


def validate_level(kappa: float, alpha: float) -> None:
    """Refuse κ or α outside (0, 1), naming the value and the allowed range."""
    if kappa == 0:
        raise ValueError(
            "kappa = 0 asks for deterministic robustness, which sampling cannot certify: "
            "only a sound bound does (IBP/CROWN bounds through bench.lirpa). "
            "Use a kappa in (0, 1), such as 0.01."
        )
    for name, value in (("kappa", kappa), ("alpha", alpha)):
        if not (0.0 < value < 1.0) or not math.isfinite(value):
            raise ValueError(f"{name} = {value!r} is out of range; allowed: 0 < {name} < 1")


def n_min(kappa: float, alpha: float) -> int:
    """The fewest samples that can certify under the paper's test: ⌈ln α / ln(1−κ)⌉."""
    validate_level(kappa, alpha)
    n = math.ceil(math.log(alpha) / math.log1p(-kappa))
    # guard the float ceiling: the smallest n with (1-κ)^n < α
    while (1 - kappa) ** n >= alpha:
        n += 1
    while n > 1 and (1 - kappa) ** (n - 1) < alpha:
        n -= 1
    return n


def _first_true(pred: Callable[[np.ndarray, np.ndarray], np.ndarray], n: np.ndarray) -> np.ndarray:
    """For each n, the least v in [0, n] with ``pred(v, n)`` true, or n+1 if none.

    ``pred`` must be monotone in v (false … false true … true).
    """
    lo = np.zeros_like(n)
    hi = n + 1
    while np.any(lo < hi):
        mid = (lo + hi) // 2
        open_ = lo < hi
        ok = np.zeros_like(open_)
        ok[open_] = pred(mid[open_], n[open_])
        hi = np.where(open_ & ok, mid, hi)
        lo = np.where(open_ & ~ok, mid + 1, lo)
    return lo


@dataclass
class SequentialTest(ABC):
    """A sequential test of H0: p ≤ 1−κ with thresholds for n = 0 … budget."""

    kappa: float
    alpha: float
    budget: int
    certify_at: np.ndarray = field(init=False, repr=False)
    reject_at: np.ndarray = field(init=False, repr=False)

    name = "abstract"
    #: True if the tested class is re-chosen as the running majority (paper); False if it must
    #: be fixed before the counted samples are drawn (valid tests).
    running_majority = False

    def __post_init__(self) -> None:
        validate_level(self.kappa, self.alpha)
        if int(self.budget) < 1:
            raise ValueError(f"budget = {self.budget!r} is out of range; allowed: budget >= 1")
        n = np.arange(self.budget + 1, dtype=np.int64)
        self.certify_at = _first_true(self._certifies, n)
        self.reject_at = _first_true(lambda v, m: ~self._rejects(v, m), n) - 1

    @property
    def p0(self) -> float:
        return 1.0 - self.kappa

    @abstractmethod
    def _certifies(self, v: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Whether (v, n) crosses the certification boundary (monotone increasing in v)."""

    @abstractmethod
    def _rejects(self, v: np.ndarray, n: np.ndarray) -> np.ndarray:
        """Whether (v, n) crosses the non-robustness boundary (monotone decreasing in v)."""

    @abstractmethod
    def p_values(self, v: np.ndarray, n: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(p_certify, p_not_robust) at (v, n); for the martingale tests, 1/M (anytime-valid)."""

    @property
    def min_certify(self) -> int:
        """The fewest samples after which this test can certify (all of them agreeing)."""
        ok = np.nonzero(self.certify_at <= np.arange(self.budget + 1))[0]
        return int(ok[0]) if len(ok) else self.budget + 1


@dataclass
class PaperBinomialTest(SequentialTest):
    """Algorithm 2 (lines 17–19): exact binomial tails re-tested after every sample."""

    name = "paper"
    running_majority = True

    # scipy.stats is imported where used: it is slow to import and only this test needs it.
    def _certifies(self, v, n):
        from scipy.stats import binom

        return binom.sf(v - 1, n, self.p0) < self.alpha

    def _rejects(self, v, n):
        from scipy.stats import binom

        return binom.cdf(v, n, self.p0) < self.alpha

    def p_values(self, v, n):
        from scipy.stats import binom

        return binom.sf(v - 1, n, self.p0), binom.cdf(v, n, self.p0)


@dataclass
class WaldSPRT(SequentialTest):
    """Wald's SPRT of p0 = 1−κ against p1 (default 1 − κ/10), thresholds 1/α and α."""

    p1: float | None = None
    name = "sprt"

    def __post_init__(self) -> None:
        if self.p1 is None:
            self.p1 = 1.0 - self.kappa / 10.0
        if not (1.0 - self.kappa < self.p1 < 1.0):
            raise ValueError(f"sprt p1 = {self.p1!r} is out of range; allowed: 1-kappa < p1 < 1")
        super().__post_init__()

    def log_lr(self, v, n):
        a = math.log(self.p1 / self.p0)
        b = math.log((1.0 - self.p1) / (1.0 - self.p0))
        return v * a + (n - v) * b

    def _certifies(self, v, n):
        return self.log_lr(v, n) >= -math.log(self.alpha)

    def _rejects(self, v, n):
        return self.log_lr(v, n) <= math.log(self.alpha)

    def p_values(self, v, n):
        llr = self.log_lr(np.asarray(v, float), np.asarray(n, float))
        return np.minimum(1.0, np.exp(-llr)), np.minimum(1.0, np.exp(llr))


@dataclass
class MixtureMartingale(SequentialTest):
    """Spike-and-slab mixture likelihood ratio (prior λ·δ(1) + (1−λ)·U[p0,1]), threshold 1/α."""

    spike: float = 0.99
    name = "mixture"

    def __post_init__(self) -> None:
        if not (0.0 <= self.spike < 1.0):
            raise ValueError(f"mixture spike = {self.spike!r} is out of range; allowed: 0 <= spike < 1")
        super().__post_init__()

    def _log_base(self, v, n):
        """log of p0^v (1−p0)^(n−v), the likelihood under H0's boundary."""
        return v * math.log(self.p0) + (n - v) * math.log(self.kappa)

    def log_m_certify(self, v, n):
        v, n = np.asarray(v, float), np.asarray(n, float)
        a, b = v + 1.0, n - v + 1.0
        with np.errstate(divide="ignore"):
            slab = (
                math.log1p(-self.spike) - math.log(self.kappa)
                + special.betaln(a, b) + np.log(special.betaincc(a, b, self.p0))
            )
            spike = np.where(v == n, math.log(self.spike) - n * math.log(self.p0), -np.inf)
        return np.logaddexp(spike, slab - self._log_base(v, n)) if self.spike > 0 else slab - self._log_base(v, n)

    def log_m_reject(self, v, n):
        v, n = np.asarray(v, float), np.asarray(n, float)
        a, b = v + 1.0, n - v + 1.0
        with np.errstate(divide="ignore"):
            mix = -math.log(self.p0) + special.betaln(a, b) + np.log(special.betainc(a, b, self.p0))
        return mix - self._log_base(v, n)

    def _certifies(self, v, n):
        return self.log_m_certify(v, n) >= -math.log(self.alpha)

    def _rejects(self, v, n):
        return self.log_m_reject(v, n) >= -math.log(self.alpha)

    def p_values(self, v, n):
        return (np.minimum(1.0, np.exp(-self.log_m_certify(v, n))),
                np.minimum(1.0, np.exp(-self.log_m_reject(v, n))))


PROCEDURES: dict[str, type[SequentialTest]] = {
    cls.name: cls for cls in (PaperBinomialTest, WaldSPRT, MixtureMartingale)
}


def make_test(procedure: str, kappa: float, alpha: float, budget: int, **options) -> SequentialTest:
    """Build the sequential test named ``procedure`` (``paper``, ``sprt`` or ``mixture``)."""
    try:
        cls = PROCEDURES[procedure]
    except KeyError:
        raise ValueError(f"unknown procedure '{procedure}'; known: {', '.join(PROCEDURES)}") from None
    return cls(kappa=kappa, alpha=alpha, budget=int(budget), **options)
