from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest

from bench.certify import (OUTCOMES, CertifyConfig, Certifier, certify, classifier,
                           literal_algorithm2, summarize)
from bench.sequential import PROCEDURES, make_test, n_min
from bench.simulation import simulate
from bench.vicinity import parse_vicinity

X = torch.rand(12, 1, 6, 6)
LINF = parse_vicinity("linf:0.1")


def constant(cls: int = 3):
    return lambda images: torch.full((len(images),), cls, dtype=torch.long)


def coin(seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return lambda images: torch.randint(0, 2, (len(images),), generator=g)


@pytest.mark.parametrize("kappa,alpha", [(0.01, 0.01), (0.1, 0.05), (0.001, 0.01)])
def test_constant_classifier_certified_after_exactly_n_min(kappa, alpha):
    expected = math.ceil(math.log(alpha) / math.log(1 - kappa))
    assert n_min(kappa, alpha) == expected
    cfg = CertifyConfig(kappa=kappa, alpha=alpha, budget=20 * expected)
    result, clean = certify(constant(), X, LINF, 10, cfg, progress=False)
    assert result.samples.tolist() == [expected] * len(X)
    assert all(OUTCOMES[o] == "certified" for o in result.outcome.tolist())
    assert result.prediction.tolist() == [3] * len(X) and clean.tolist() == [3] * len(X)
    assert result.drawn == expected * len(X)  # the first round ends exactly at n_min


def test_n_min_is_459_for_the_papers_levels():
    assert n_min(0.01, 0.01) == 459
    assert make_test("mixture", 0.01, 0.01, 1000).min_certify == 459
    assert make_test("sprt", 0.01, 0.01, 1000).min_certify == 509


@pytest.mark.parametrize("procedure", list(PROCEDURES))
def test_random_two_class_classifier_is_never_certified(procedure):
    x = torch.rand(200, 1, 4, 4)
    cfg = CertifyConfig(procedure=procedure, budget=5000)
    result, _ = certify(coin(), x, LINF, 2, cfg, progress=False)
    outcomes = [OUTCOMES[o] for o in result.outcome.tolist()]
    assert outcomes.count("certified") == 0
    assert outcomes.count("not_robust") == 200


def test_paper_p_values_agree_with_scipy_binomtest():
    test = make_test("paper", 0.01, 0.01, 100)
    rng = np.random.default_rng(0)
    n = rng.integers(1, 3000, 200)
    v = np.minimum(n, np.round(n * rng.uniform(0.9, 1.0, 200)).astype(int))
    p_right, p_left = test.p_values(v, n)
    for i in range(len(n)):
        assert p_right[i] == pytest.approx(binomtest(v[i], n[i], 0.99, "greater").pvalue, rel=1e-9, abs=1e-300)
        assert p_left[i] == pytest.approx(binomtest(v[i], n[i], 0.99, "less").pvalue, rel=1e-9, abs=1e-300)


def test_paper_thresholds_are_the_exact_binomial_boundaries():
    test = make_test("paper", 0.01, 0.01, 3000)
    for n in (459, 460, 700, 1500, 3000):
        c, d = test.certify_at[n], test.reject_at[n]
        assert binomtest(c, n, 0.99, "greater").pvalue < 0.01 <= binomtest(c - 1, n, 0.99, "greater").pvalue
        assert binomtest(d, n, 0.99, "less").pvalue < 0.01 <= binomtest(d + 1, n, 0.99, "less").pvalue


def streams(rates: list[float], length: int, seed: int = 0) -> list[list[int]]:
    rng = np.random.default_rng(seed)
    out = []
    for r in rates:
        other = rng.integers(1, 4, length)  # minority votes spread over classes 1..3
        out.append(np.where(rng.random(length) < r, 0, other).tolist())
    return out


def test_batched_engine_stops_where_the_literal_algorithm_stops():
    rates = [1.0, 0.999, 0.995, 0.99, 0.985, 0.97, 0.9, 0.6, 0.3] * 3
    budget = 3000
    seqs = streams(rates, budget, seed=1)
    literal = []
    for seq in seqs:
        it = iter(seq)
        literal.append(literal_algorithm2(lambda: next(it), 0.01, 0.01, budget))
    pos = torch.zeros(len(seqs), dtype=torch.long)

    def draw(inputs, sizes):
        out = []
        for i, m in zip(inputs.tolist(), sizes.tolist()):
            out += seqs[i][pos[i] : pos[i] + m]
            pos[i] += m
        return torch.tensor(out)

    cfg = CertifyConfig(procedure="paper", budget=budget)
    result = Certifier(cfg, num_classes=4).run(len(seqs), draw, progress=False)
    got = list(zip(result.prediction.tolist(), result.samples.tolist(), result.count.tolist(),
                   [OUTCOMES[o] for o in result.outcome.tolist()]))
    assert got == literal
    assert {o for *_, o in literal} == {"certified", "not_robust", "undecided"}


def test_budget_ends_an_input_whose_rate_sits_at_one_minus_kappa():
    from bench.simulation import bernoulli_draw

    cfg = CertifyConfig(procedure="mixture", budget=800)
    result = Certifier(cfg, 2).run(300, bernoulli_draw(0.99, 0), torch.zeros(300, dtype=torch.long),
                                   progress=False)
    assert result.samples.max() <= 800
    undecided = result.outcome == OUTCOMES.index("undecided")
    assert undecided.float().mean() > 0.5
    assert torch.all(result.samples[undecided] == 800)


@pytest.mark.slow
def test_valid_tests_keep_false_certification_at_alpha_and_the_paper_test_does_not(capsys):
    kappa = alpha = 0.01
    n, budget = 3000, 5000
    se = math.sqrt(alpha * (1 - alpha) / n)
    rates = {}
    for procedure in ("paper", "sprt", "mixture"):
        cfg = CertifyConfig(kappa=kappa, alpha=alpha, procedure=procedure, budget=budget)
        rates[procedure] = simulate(cfg, 1 - kappa, n, seed=7)["certified"]
    with capsys.disabled():
        print(f"\nfalse certification at p = 1-kappa (alpha = {alpha}, budget {budget}, {n} inputs): "
              + ", ".join(f"{k} {100 * v:.2f}%" for k, v in rates.items()))
    assert rates["sprt"] <= alpha + 3 * se
    assert rates["mixture"] <= alpha + 3 * se
    assert rates["paper"] > alpha + 3 * se  # optional stopping: the check above would catch it


def test_kappa_zero_and_bad_levels_are_refused():
    with pytest.raises(ValueError, match="kappa = 0 .*sound bound"):
        CertifyConfig(kappa=0.0).make_test()
    with pytest.raises(ValueError, match=r"alpha = 1.5 is out of range; allowed: 0 < alpha < 1"):
        CertifyConfig(alpha=1.5).make_test()
    with pytest.raises(ValueError, match="unknown procedure 'bayes'; known: paper, sprt, mixture"):
        CertifyConfig(procedure="bayes").make_test()
    with pytest.raises(ValueError, match="budget"):
        make_test("paper", 0.01, 0.01, 0)


def test_a_budget_below_the_fewest_samples_that_certify_is_refused():
    with pytest.raises(ValueError, match=r"budget = 2000 samples cannot certify .*kappa = 0.001.*at least n_min = 4603"):
        Certifier(CertifyConfig(kappa=0.001, budget=2000), 2)
    Certifier(CertifyConfig(kappa=0.001, budget=4603), 2)  # exactly n_min is enough


def test_valid_procedures_need_a_fixed_candidate():
    with pytest.raises(ValueError, match="candidate"):
        Certifier(CertifyConfig(procedure="sprt"), 2).run(3, lambda i, s: torch.zeros(int(s.sum())),
                                                          progress=False)


def test_certify_on_a_model_is_seeded_and_summarized():
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
    x = torch.rand(20, 1, 6, 6)
    cfg = CertifyConfig(budget=2000)
    a, clean = certify(classifier(model), x, parse_vicinity("linf:0.05"), 3, cfg, seed=1, progress=False)
    b, _ = certify(classifier(model), x, parse_vicinity("linf:0.05"), 3, cfg, seed=1, progress=False)
    assert torch.equal(a.samples, b.samples) and torch.equal(a.outcome, b.outcome)
    labels = clean.clone()
    labels[:5] = (labels[:5] + 1) % 3
    frame = a.frame(labels, clean)
    s = summarize(frame)
    assert s["standard_accuracy"] == pytest.approx(75.0)
    cert = frame["outcome"].eq("certified")
    assert s["certified_robustness_rate"] == pytest.approx(100 * cert.mean())
    assert s["certified_robust_accuracy"] == pytest.approx(100 * (cert & frame.prediction.eq(frame.label)).mean())
    assert set(frame.columns) >= {"label", "clean_prediction", "prediction", "samples", "count",
                                  "p_certify", "p_not_robust", "outcome"}


def test_summarize_uses_the_certified_prediction():
    frame = pd.DataFrame({"label": [0, 1, 2, 3], "clean_prediction": [0, 1, 0, 3],
                          "prediction": [0, 2, 2, 3],
                          "outcome": ["certified", "certified", "certified", "not_robust"],
                          "samples": [459, 459, 459, 3]})
    s = summarize(frame)
    assert (s["standard_accuracy"], s["certified_robustness_rate"], s["certified_robust_accuracy"]) == (75.0, 75.0, 50.0)


def _pixel_sign():
    """A classifier of vicinity samples whose output depends on the sample: the stream is data."""
    return lambda images: (images.flatten(1)[:, 0] > images.flatten(1)[:, 1]).long()


def test_a_sample_tape_replays_each_inputs_stream_however_it_is_read():
    from bench.certify import SampleTape

    x = torch.rand(5, 1, 4, 4)
    tape = SampleTape(_pixel_sign(), x, LINF, batch_size=7, seed=3)
    first, second = tape.reader(), tape.reader()
    a = [first(torch.tensor([0, 1, 2, 3, 4]), torch.tensor([3, 1, 4, 1, 5]))]
    a.append(first(torch.tensor([1, 3]), torch.tensor([6, 2])))
    b = second(torch.tensor([3, 1]), torch.tensor([3, 9]))  # other inputs, other chunking
    assert tape.drawn == 3 + 9 + 4 + 3 + 5  # each input's longest read, nothing twice
    per_input_a = {0: a[0][:3], 1: torch.cat([a[0][3:4], a[1][:6]]), 3: torch.cat([a[0][8:9], a[1][6:]])}
    assert torch.equal(b[:3], per_input_a[3]) and torch.equal(b[3:10], per_input_a[1])
    # a fresh tape with the same seed, read in one go per input, draws the same first samples
    solo = SampleTape(_pixel_sign(), x, LINF, batch_size=7, seed=3).reader()
    assert torch.equal(solo(torch.tensor([0, 1, 2, 3, 4]), torch.tensor([3, 1, 4, 1, 5])), a[0])


def test_settings_certified_together_share_samples_and_match_running_alone():
    from bench.certify import certify_many

    x = torch.rand(30, 1, 4, 4)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(16, 3))
    torch.manual_seed(0)
    configs = [CertifyConfig(kappa=0.1, alpha=a, procedure=p, budget=400)
               for p in ("paper", "mixture") for a in (0.05, 0.01)]
    results, clean = certify_many(classifier(model), x, parse_vicinity("linf:0.2"), 3, configs, seed=5,
                                  progress=False)
    alone, _ = certify(classifier(model), x, parse_vicinity("linf:0.2"), 3, configs[0], seed=5, progress=False)
    assert torch.equal(results[0].samples, alone.samples) and torch.equal(results[0].outcome, alone.outcome)
    # later settings only draw what no earlier one drew: in all, each input's longest prefix
    assert sum(r.drawn for r in results) <= 30 * 400
    assert sum(r.drawn for r in results[1:]) < sum(int(r.samples.sum()) for r in results[1:])
    for r, cfg in zip(results, configs):  # each result still obeys its own stopping rule
        test = cfg.make_test()
        certified = r.outcome == OUTCOMES.index("certified")
        assert (r.count[certified].numpy() >= test.certify_at[r.samples[certified].numpy()]).all()
