"""Exact error rates of the sequential tests (bench.certification.simulation.exact_rates) against a brute-force
enumeration of every sample sequence, the engine itself and Monte Carlo."""
from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.stats import binomtest

from bench.certification.engine import OUTCOMES, Certifier, CertifyConfig
from bench.certification.sequential import SequentialTest
from bench.certification.simulation import exact_rates, simulate, stopping_rule_rates

BUDGET = 14  # 2^14 = 16,384 sequences
FIELDS = ("certified", "certified_class0", "certified_class1", "lower_stop", "undecided", "mean_samples")
# κ large enough that each test can both certify and stop at the lower boundary within BUDGET
TINY = {"kappa": 0.3, "alpha": 0.1, "budget": BUDGET}


def all_sequences(budget: int) -> np.ndarray:
    """Every sequence of ``budget`` two-class samples, one per row (row i: the bits of i)."""
    return ((np.arange(2**budget)[:, None] >> np.arange(budget)) & 1).astype(np.int64)


def weights(seqs: np.ndarray, rate: float) -> np.ndarray:
    """Probability of each whole sequence when a sample is class 0 with probability ``rate``."""
    zeros = (seqs == 0).sum(1)
    return rate**zeros * (1.0 - rate) ** (seqs.shape[1] - zeros)


def brute_force(certify_at: np.ndarray, reject_at: np.ndarray, running_majority: bool, rate: float,
                *, lower_first: bool = True, n_shift: int = 0, tie_class: int = 0) -> dict:
    """The stopping rule applied to each of the 2^budget sequences, weighted by its probability.

    The keyword arguments plant the bugs the comparison with the dynamic programme must catch:
    certification checked before the lower boundary, thresholds read at n + ``n_shift``, and
    ties of the running majority given to ``tie_class``.
    """
    budget = len(certify_at) - 1
    seqs = all_sequences(budget)
    w = weights(seqs, rate)
    outcome = np.full(len(seqs), "", dtype=object)
    cls = np.zeros(len(seqs), dtype=np.int64)
    stop = np.zeros(len(seqs), dtype=np.int64)
    v0 = np.cumsum(seqs == 0, axis=1)
    for n in range(1, budget + 1):
        live = outcome == ""
        zeros, ones = v0[:, n - 1], n - v0[:, n - 1]
        if running_majority:
            v = np.maximum(zeros, ones)
            tested = np.where(zeros > ones, 0, np.where(ones > zeros, 1, tie_class))
        else:
            v, tested = zeros, np.zeros_like(zeros)
        m = min(max(n + n_shift, 0), budget)
        low, up = v <= reject_at[m], v >= certify_at[m]
        if lower_first:
            is_low, is_up = live & low, live & up & ~low
        else:
            is_up, is_low = live & up, live & low & ~up
        outcome[is_low], outcome[is_up] = "lower_stop", "certified"
        cls[is_up], stop[is_low | is_up] = tested[is_up], n
    rest = outcome == ""
    outcome[rest], stop[rest] = "undecided", budget
    certified = outcome == "certified"
    return {
        "certified": w[certified].sum(),
        "certified_class0": w[certified & (cls == 0)].sum(),
        "certified_class1": w[certified & (cls == 1)].sum(),
        "lower_stop": w[outcome == "lower_stop"].sum(),
        "undecided": w[rest].sum(),
        "mean_samples": (w * stop).sum(),
    }


def engine_enumeration(config: CertifyConfig, rate: float) -> dict:
    """The engine (:class:`Certifier`) run on all 2^budget sequences, one input each, weighted."""
    budget = config.make_test().budget
    seqs = torch.from_numpy(all_sequences(budget))
    position = torch.zeros(len(seqs), dtype=torch.long)

    def draw(inputs: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        row = torch.repeat_interleave(inputs, sizes)
        col = torch.repeat_interleave(position[inputs] - (sizes.cumsum(0) - sizes), sizes) + torch.arange(len(row))
        position[inputs] += sizes
        return seqs[row, col]

    result = Certifier(config, num_classes=2).run(len(seqs), draw, candidate=torch.zeros(len(seqs), dtype=torch.long),
                                                  progress=False)
    w = weights(seqs.numpy(), rate)
    name = np.array(OUTCOMES)[result.outcome.numpy()]
    certified, undecided = name == "certified", name == "undecided"
    cls = result.prediction.numpy()
    return {
        "certified": w[certified].sum(),
        "certified_class0": w[certified & (cls == 0)].sum(),
        "certified_class1": w[certified & (cls == 1)].sum(),
        "lower_stop": w[~certified & ~undecided].sum(),  # whatever the engine names that stop
        "undecided": w[undecided].sum(),
        "mean_samples": (w * result.samples.numpy()).sum(),
    }


def assert_same(got: dict, want: dict, tol: float = 1e-12) -> None:
    for f in FIELDS:
        assert got[f] == pytest.approx(want[f], abs=tol * (BUDGET if f == "mean_samples" else 1)), f


def max_gap(a: dict, b: dict) -> float:
    return max(abs(a[f] - b[f]) for f in FIELDS)


def synthetic_test(procedure: str, variant: str) -> SequentialTest:
    """The tiny test of ``procedure`` with its last thresholds rewritten so that the check order
    (``variant="order"``: a reachable state crosses both boundaries at n = budget) or the tie
    rule of the running majority (``"tie"``: every state certifies at n = budget, ties too)
    matters; in the real tests' rules neither ever does, so only such a rule can show that
    the dynamic programme and the engine agree on them."""
    test = CertifyConfig(procedure=procedure, **TINY).make_test()
    c, r = test.certify_at.copy(), test.reject_at.copy()
    if variant == "order":
        # middle of the states still undecided after sample budget − 1, moved up by one
        c[BUDGET] = r[BUDGET] = (r[BUDGET - 1] + c[BUDGET - 1]) // 2 + 1
    elif variant == "tie":
        c[BUDGET], r[BUDGET] = BUDGET // 2, -1
    else:
        raise ValueError(variant)
    test.certify_at, test.reject_at = c, r
    return test


def synthetic_config(procedure: str, variant: str, monkeypatch) -> CertifyConfig:
    cfg = CertifyConfig(procedure=procedure, **TINY)
    test = synthetic_test(procedure, variant)
    monkeypatch.setattr(cfg, "make_test", lambda: test)
    return cfg


# --- (a) the dynamic programme against every sequence ------------------------------------------


@pytest.mark.parametrize("procedure", ["paper", "sprt", "mixture"])
@pytest.mark.parametrize("rate", [0.7, 0.9, 0.4])
def test_exact_rates_equal_brute_force_enumeration(procedure, rate):
    cfg = CertifyConfig(procedure=procedure, **TINY)
    test = cfg.make_test()
    exact = exact_rates(cfg, rate)
    brute = brute_force(test.certify_at, test.reject_at, test.running_majority, rate)
    assert_same(exact, brute)
    # the tiny rule does stop at both boundaries and at the budget, so every outcome is checked
    assert min(exact["certified"], exact["lower_stop"], exact["undecided"]) > 1e-4
    if procedure == "paper" and rate == 0.4:
        assert exact["certified_class1"] > 1e-3  # the running majority's other class
    assert exact["mass_error"] < 1e-12
    assert exact["min_samples_certified"] == test.min_certify


@pytest.mark.parametrize("procedure,variant", [
    ("paper", "order"), ("paper", "tie"), ("sprt", "order"), ("mixture", "order"),
])
def test_exact_rates_equal_brute_force_on_rules_where_order_and_ties_matter(procedure, variant):
    test = synthetic_test(procedure, variant)
    for rate in (0.7, 0.4):
        exact = stopping_rule_rates(test.certify_at, test.reject_at, rate, test.running_majority)
        assert_same(exact, brute_force(test.certify_at, test.reject_at, test.running_majority, rate))


@pytest.mark.parametrize("procedure", ["paper", "sprt", "mixture"])
def test_engine_on_every_sequence_equals_exact_rates(procedure, monkeypatch):
    """The dynamic programme and the engine implement one rule (check order included)."""
    configs = [CertifyConfig(procedure=procedure, **TINY), synthetic_config(procedure, "order", monkeypatch)]
    if procedure == "paper":
        configs.append(synthetic_config(procedure, "tie", monkeypatch))
    for cfg in configs:
        for rate in (0.7, 0.4):
            assert_same(engine_enumeration(cfg, rate), exact_rates(cfg, rate))


def test_brute_force_comparison_catches_a_wrong_order_an_off_by_one_and_a_wrong_tie():
    """Each planted bug moves some probability by over 1e-6, a million times the 1e-12 tolerance
    of the tests above, so an exact_rates (or engine) with that bug would fail them."""
    real = CertifyConfig(procedure="paper", **TINY).make_test()
    for test in (real, CertifyConfig(procedure="mixture", **TINY).make_test()):
        exact = stopping_rule_rates(test.certify_at, test.reject_at, 0.7, test.running_majority)
        for shift in (-1, 1):
            bugged = brute_force(test.certify_at, test.reject_at, test.running_majority, 0.7, n_shift=shift)
            assert max_gap(exact, bugged) > 1e-6
    for procedure in ("paper", "sprt", "mixture"):
        test = synthetic_test(procedure, "order")
        for rate in (0.7, 0.4):
            exact = stopping_rule_rates(test.certify_at, test.reject_at, rate, test.running_majority)
            swapped = brute_force(test.certify_at, test.reject_at, test.running_majority, rate, lower_first=False)
            assert max_gap(exact, swapped) > 1e-6, (procedure, rate)
    test = synthetic_test("paper", "tie")
    for rate in (0.7, 0.4):
        exact = stopping_rule_rates(test.certify_at, test.reject_at, rate, True)
        tie_to_1 = brute_force(test.certify_at, test.reject_at, True, rate, tie_class=1)
        assert abs(exact["certified_class1"] - tie_to_1["certified_class1"]) > 1e-6, rate
    # on the real tests the order cannot matter: no reachable state crosses both boundaries
    swapped = brute_force(real.certify_at, real.reject_at, True, 0.7, lower_first=False)
    assert max_gap(stopping_rule_rates(real.certify_at, real.reject_at, 0.7, True), swapped) < 1e-12


def test_rate_out_of_range_is_refused():
    with pytest.raises(ValueError, match=r"rate = 1.5 is out of range; allowed: 0 <= rate <= 1"):
        exact_rates(CertifyConfig(procedure="sprt", **TINY), 1.5)


# --- (b) Monte Carlo through the engine agrees with the exact values ----------------------------


@pytest.mark.parametrize("procedure,budget,rate", [
    ("paper", 1000, 0.99), ("paper", 1000, 0.995), ("sprt", 1000, 0.995), ("mixture", 2000, 0.995),
])
def test_monte_carlo_lies_in_its_interval_around_the_exact_rates(procedure, budget, rate):
    n = 3000
    cfg = CertifyConfig(kappa=0.01, alpha=0.01, procedure=procedure, budget=budget)
    exact, mc = exact_rates(cfg, rate), simulate(cfg, rate, n, seed=11)
    for field in ("certified", "lower_stop", "undecided"):
        ci = binomtest(round(mc[field] * n), n).proportion_ci(confidence_level=0.999, method="exact")
        assert ci.low <= exact[field] <= ci.high, (field, exact[field], mc[field])
    assert mc["min_samples_certified"] == exact["min_samples_certified"]


# --- (c) the known validity results, exactly -----------------------------------------------------


def test_valid_tests_keep_false_certification_at_alpha_and_the_paper_test_does_not():
    kappa = alpha = 0.01
    paper = []
    for budget in (1000, 5000):
        for procedure in ("sprt", "mixture"):
            exact = exact_rates(CertifyConfig(kappa=kappa, alpha=alpha, procedure=procedure, budget=budget), 1 - kappa)
            assert exact["certified"] <= alpha, (procedure, budget, exact["certified"])
            assert exact["mass_error"] < 1e-12
        paper.append(exact_rates(CertifyConfig(kappa=kappa, alpha=alpha, procedure="paper", budget=budget),
                                 1 - kappa)["certified"])
    # optional stopping: above alpha already at 1,000 samples, and growing with the budget
    assert alpha < paper[0] < paper[1]


def test_threshold_tables_are_computed_once_per_setting_and_are_the_computed_ones():
    """A job certifies block after block under the same tests: equal settings share one
    read-only table (computed once), equal to computing it afresh; other settings get their own."""
    from bench.certification import sequential
    from bench.certification.sequential import _first_true, make_test

    for procedure in ("paper", "mixture", "sprt"):
        first, again = make_test(procedure, 0.02, 0.05, 3000), make_test(procedure, 0.02, 0.05, 3000)
        assert first.certify_at is again.certify_at and first.reject_at is again.reject_at
        assert not first.certify_at.flags.writeable and not first.reject_at.flags.writeable
        n = np.arange(3001, dtype=np.int64)
        assert np.array_equal(first.certify_at, _first_true(first._certifies, n))
        assert np.array_equal(first.reject_at, _first_true(lambda v, m: ~first._rejects(v, m), n) - 1)
        assert make_test(procedure, 0.02, 0.05, 3001).certify_at is not first.certify_at
        for kappa, alpha in ((0.03, 0.05), (0.02, 0.01)):  # another κ or α: its own, right tables
            other = make_test(procedure, kappa, alpha, 3000)
            assert np.array_equal(other.certify_at, _first_true(other._certifies, n))
            assert not np.array_equal(other.certify_at, first.certify_at)
    assert make_test("sprt", 0.02, 0.05, 3000, p1=0.999).certify_at is not make_test("sprt", 0.02, 0.05, 3000).certify_at
    assert len(sequential._THRESHOLDS) <= sequential._THRESHOLDS_KEPT


def test_the_threshold_tables_benchmark_counts_a_jobs_runs_and_its_distinct_tests(tmp_path):
    """``benchmarks/threshold_tables.py`` on the smoke config: one block's runs (vicinity and
    test), the distinct tests among them, and both timings, in one row per config."""
    import importlib.util
    from pathlib import Path

    root = Path(__file__).resolve().parents[1]
    spec = importlib.util.spec_from_file_location("threshold_tables", root / "benchmarks" / "threshold_tables.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    table = module.main(["--configs", str(root / "config" / "smoke.yaml"), "--dataset", "fashion_mnist",
                         "--rounds", "1", "--blocks", "2", "--out", str(tmp_path / "t.csv")])
    row = table.iloc[0]
    assert row["blocks"] == 2 and 0 < row["distinct_tests"] < row["runs_per_block"]
    assert row["rebuilt_s"] > 0 and row["once_s"] > 0
