"""Sequential tests of H0: p ≤ 1−κ for the rate p at which a vicinity sample gets one class.

Each test is a stopping rule on (v, n): ``v`` samples of the tested class among ``n`` drawn.
It *certifies* (rejects H0: p ≤ 1−κ) when ``v ≥ certify_at[n]`` and stops at its *lower
boundary* when ``v ≤ reject_at[n]``. Because all three tests below are monotone in v, these two
integer arrays, computed once per (κ, α, budget), are the whole rule, and the engine
(:mod:`bench.certification.engine`) only compares integers while it samples.

What the lower boundary rejects depends on the test, and so does the outcome it is reported as
(:attr:`SequentialTest.reject_outcome`, one of :data:`bench.certification.engine.OUTCOMES`):

``not_robust``
    rejects p ≥ 1−κ: the input is not robust at level κ (``paper`` and ``mixture``).
``below_p1``
    rejects p ≥ p1 only, i.e. says p < p1 (``sprt``). As p1 > 1−κ, this does *not* say the
    input is not robust: an input with 1−κ < p < p1 (robust, inside the SPRT's indifference
    region) stops here most of the time (p = 0.995 at κ = α = 0.01, default p1, budget 20,000:
    about 72 % of inputs).

``paper``
    Algorithm 2 of the paper: the exact binomial tests of Eq. (7), right tail
    P(Z ≥ v | n, 1−κ) < α certifies, left tail P(Z ≤ v | n, 1−κ) < α rejects, re-tested after
    every sample and with the tested class re-chosen as the running majority. The re-testing is
    optional stopping: its false-certification rate exceeds α, and grows with the budget.
``sprt``
    Wald's (1945) sequential probability ratio test of p0 = 1−κ against p1 > p0 (indifference
    region (p0, p1)); certifies when the likelihood ratio reaches 1/α, rejects p ≥ p1 (outcome
    ``below_p1``) when it falls to α. Valid for any budget by Ville's inequality; needs a
    candidate class fixed in advance.
``mixture``
    A test martingale: the likelihood ratio against p0 averaged over the prior
    λ·δ(p=1) + (1−λ)·U[p0, 1] certifies when it reaches 1/α; the same over U[0, p0] rejects.
    Valid for any budget by Ville's inequality (an anytime-valid test); with λ = 0.99 it
    certifies an all-agreeing input at exactly n_min = ⌈ln α / ln(1−κ)⌉, as the paper's test
    does. Needs a candidate class fixed in advance.
"""
from __future__ import annotations

import math
import numbers
from abc import ABC, abstractmethod
from collections.abc import Callable
from dataclasses import dataclass, field, fields

import numpy as np
from scipy import special

from bench.registry import Registry

__all__ = [
    "PROCEDURES",
    "SequentialTest",
    "PaperBinomialTest",
    "WaldSPRT",
    "MixtureMartingale",
    "make_test",
    "n_min",
    "validate_budget",
    "validate_level",
]


def validate_level(kappa: float, alpha: float) -> None:
    """Refuse κ or α outside (0, 1), naming the value and the allowed range."""
    if kappa == 0:
        raise ValueError(
            "kappa = 0 asks for deterministic robustness, which sampling cannot certify: "
            "only a sound bound does (IBP/CROWN bounds through bench.models.lirpa). "
            "Use a kappa in (0, 1), such as 0.01."
        )
    for name, value in (("kappa", kappa), ("alpha", alpha)):
        if not (0.0 < value < 1.0) or not math.isfinite(value):
            raise ValueError(f"{name} = {value!r} is out of range; allowed: 0 < {name} < 1")


def validate_budget(budget: object) -> int:
    """The sample budget as an ``int``, or a ValueError naming the value.

    A budget counts samples, so it must be a whole number >= 1. Refused rather than converted:
    a bool (an ``int`` subclass, but never meant as a count), a string (even ``"1000"``: a
    setting read as text is a bug upstream, and ``int()`` would hide it), a float with a
    fractional part (``int(1000.5)`` would silently drop the half sample) and a non-finite
    float. Accepted: Python and numpy integers, and floats with an integral value (``20000.0``,
    as a YAML or JSON reader may produce).
    """
    if isinstance(budget, (bool, np.bool_)):
        value = None
    elif isinstance(budget, numbers.Integral):
        value = int(budget)
    elif isinstance(budget, (float, np.floating)) and math.isfinite(budget) and float(budget).is_integer():
        value = int(budget)
    else:
        value = None
    if value is None:
        raise ValueError(
            f"budget = {budget!r} is not a whole number of samples; allowed: an integer >= 1 "
            f"(not a bool, a string or a float with a fractional part)"
        )
    if value < 1:
        raise ValueError(f"budget = {budget!r} is out of range; allowed: budget >= 1")
    return value


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


# Threshold tables already computed in this process, by test class and settings: a job
# certifies block after block of inputs (and table after table) under the same few tests, and
# the tables for a budget of 20,000 take scipy 0.3 to 0.5 s each to compute. Read-only arrays,
# shared by the tests of equal settings; the oldest is dropped past _THRESHOLDS_KEPT.
_THRESHOLDS: dict[tuple, tuple[np.ndarray, np.ndarray]] = {}
_THRESHOLDS_KEPT = 32


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
    #: The outcome (a name in :data:`bench.certification.engine.OUTCOMES`) reported when the lower boundary
    #: is crossed, named after what that boundary rejects: ``not_robust`` for a rejection of
    #: p ≥ 1−κ; a test whose lower boundary rejects something else must name its own.
    reject_outcome = "not_robust"

    def __post_init__(self) -> None:
        validate_level(self.kappa, self.alpha)
        self.budget = validate_budget(self.budget)
        key = (type(self), *((f.name, getattr(self, f.name)) for f in fields(self) if f.init))
        if (tables := _THRESHOLDS.get(key)) is None:
            n = np.arange(self.budget + 1, dtype=np.int64)
            tables = (_first_true(self._certifies, n), _first_true(lambda v, m: ~self._rejects(v, m), n) - 1)
            for table in tables:
                table.setflags(write=False)
            if len(_THRESHOLDS) >= _THRESHOLDS_KEPT:
                del _THRESHOLDS[next(iter(_THRESHOLDS))]
            _THRESHOLDS[key] = tables
        self.certify_at, self.reject_at = tables

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
        """(p_certify, p_not_robust) at (v, n); for the martingale tests, 1/M (anytime-valid).

        The second is the p-value of the lower boundary's null: p ≥ 1−κ (``paper``,
        ``mixture``), or p ≥ p1 for the SPRT (see :attr:`reject_outcome`).
        """

    @property
    def min_certify(self) -> int:
        """The fewest samples after which this test can certify (all of them agreeing).

        This procedure's own minimum, whatever the budget: when it exceeds the budget (a budget
        that cannot certify anything), it is found by searching n beyond the budget for the first
        n with n agreeing samples of n certifying. For ``paper`` it is n_min = ⌈ln α / ln(1−κ)⌉
        (459 at κ = α = 0.01, as for ``mixture`` there at λ = 0.99); the SPRT needs
        ⌈ln(1/α) / ln(p1/p0)⌉ (509 at κ = α = 0.01).
        """
        ok = np.nonzero(self.certify_at <= np.arange(self.budget + 1))[0]
        if len(ok):
            return int(ok[0])
        # All-agreeing evidence grows with n for every test here, so "n of n certifies" is
        # monotone in n: double past the budget, then bisect.
        def certifies_all(n: int) -> bool:
            m = np.array([n], dtype=np.int64)
            return bool(self._certifies(m, m)[0])

        lo, hi = self.budget, 2 * self.budget + 1  # certifies_all(lo) is false
        while not certifies_all(hi):
            lo, hi = hi, 2 * hi
            if hi > 1 << 62:
                raise ValueError(f"procedure '{self.name}' cannot certify at any number of samples "
                                 f"at kappa = {self.kappa}, alpha = {self.alpha}")
        while hi - lo > 1:
            mid = (lo + hi) // 2
            lo, hi = (lo, mid) if certifies_all(mid) else (mid, hi)
        return hi


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
    """Wald's SPRT of p0 = 1−κ against p1 (default 1 − κ/10), thresholds 1/α and α.

    Its lower boundary (likelihood ratio ≤ α) rejects p ≥ p1, not p ≥ 1−κ: a robust input with
    1−κ < p < p1 is stopped there most of the time. Hence its own outcome, ``below_p1``.
    """

    p1: float | None = None
    name = "sprt"
    reject_outcome = "below_p1"

    def __post_init__(self) -> None:
        # κ and α first: p1's default is computed from κ, and κ = 0 deserves validate_level's
        # message (sampling cannot certify deterministic robustness), not "p1 = 1.0".
        validate_level(self.kappa, self.alpha)
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


PROCEDURES: Registry[type[SequentialTest]] = Registry("procedure")
for _cls in (PaperBinomialTest, WaldSPRT, MixtureMartingale):
    PROCEDURES.add(_cls.name, _cls)


def make_test(procedure: str, kappa: float, alpha: float, budget: int, **options) -> SequentialTest:
    """Build the sequential test named ``procedure`` (``paper``, ``sprt`` or ``mixture``)."""
    cls = PROCEDURES[procedure]
    # budget is passed as given: SequentialTest validates it (int() would accept "1000", 1000.5)
    return cls(kappa=kappa, alpha=alpha, budget=budget, **options)
