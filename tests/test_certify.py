from __future__ import annotations

import math
import re

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.stats import binomtest

from bench.certification.engine import (
    OUTCOMES,
    Certifier,
    CertifyConfig,
    certify,
    classifier,
    literal_algorithm2,
    summarize,
)
from bench.certification.sequential import PROCEDURES, make_test, n_min
from bench.certification.simulation import simulate
from bench.certification.streams import CHUNK
from bench.certification.vicinity import parse_vicinity

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
    # the first round ends exactly at n_min; the tape draws whole chunks of each input's stream
    assert result.drawn == CHUNK * math.ceil(expected / CHUNK) * len(X)


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
    # each test reports its lower boundary under its own name (sprt: below_p1, others: not_robust)
    assert outcomes.count(PROCEDURES[procedure].reject_outcome) == 200


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
    from bench.certification.simulation import bernoulli_draw

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
    with pytest.raises(ValueError, match=r"budget = 2000 samples cannot certify .*kappa = 0.001.*"
                                         r"procedure 'paper': that procedure's minimum is 4603 samples"):
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


def test_the_progress_bar_counts_samples_forwarded_within_a_round(monkeypatch):
    """Issue 25: the bar counts inputs decided, which jump round by round (a round can be most of
    the work: the demo's went from 12/200 to 194/200); each forward batch now reports the
    samples forwarded on the bar, so a long round shows it is moving. Outcomes are unchanged."""
    import bench.certification.engine as engine
    from bench.certification.streams import SampleTape

    seen, postfixes = [], []
    monkeypatch.setattr(engine.time, "monotonic", iter(range(0, 10**6)).__next__)  # every call 1 s later
    original = SampleTape._extend

    def counting(self, inputs, ends):
        hook = self.on_forward
        self.on_forward = lambda n: (seen.append(n), hook(n))
        try:
            original(self, inputs, ends)
        finally:
            self.on_forward = hook

    monkeypatch.setattr(SampleTape, "_extend", counting)
    monkeypatch.setattr(engine.tqdm, "set_postfix_str", lambda bar, text, refresh=True: postfixes.append(text))
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(36, 3))
    x = torch.rand(12, 1, 6, 6)
    cfg = CertifyConfig(budget=2000, batch_size=CHUNK)
    with_bar, _ = certify(classifier(model), x, parse_vicinity("linf:0.05"), 3, cfg, seed=1, progress=True)
    assert len(seen) > 1 and all(n == CHUNK for n in seen)  # one report per forward batch
    assert postfixes[-1] == f"{sum(seen):,} samples forwarded" and sum(seen) == with_bar.drawn
    monkeypatch.undo()
    without, _ = certify(classifier(model), x, parse_vicinity("linf:0.05"), 3, cfg, seed=1, progress=False)
    assert torch.equal(with_bar.outcome, without.outcome) and torch.equal(with_bar.samples, without.samples)


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
    from bench.certification.streams import SampleTape

    x = torch.rand(5, 1, 4, 4)
    tape = SampleTape(_pixel_sign(), x, LINF, batch_size=70, seed=3)
    first, second = tape.reader(), tape.reader()
    a = [first(torch.tensor([0, 1, 2, 3, 4]), torch.tensor([3, 1, 4, 1, 5]))]
    a.append(first(torch.tensor([1, 3]), torch.tensor([6, 40])))
    b = second(torch.tensor([3, 1]), torch.tensor([3, 9]))  # other inputs, other chunking
    assert tape.drawn == CHUNK * (1 + 1 + 1 + 2 + 1)  # each input's longest read in whole chunks, nothing twice
    per_input_a = {0: a[0][:3], 1: torch.cat([a[0][3:4], a[1][:6]]), 3: torch.cat([a[0][8:9], a[1][6:]])}
    assert torch.equal(b[:3], per_input_a[3][:3]) and torch.equal(b[3:10], per_input_a[1])
    # a fresh tape with the same seed, read in one go per input, draws the same first samples
    solo = SampleTape(_pixel_sign(), x, LINF, batch_size=70, seed=3).reader()
    assert torch.equal(solo(torch.tensor([0, 1, 2, 3, 4]), torch.tensor([3, 1, 4, 1, 5])), a[0])


def test_an_inputs_stream_depends_on_its_index_and_the_seed_only():
    """Whatever the batch, the order and sizes of the reads, the other inputs read with it, or
    the block it is in (a tape over inputs 2 to 4 with ``first_index=2``): the same samples."""
    from bench.certification.streams import SampleTape

    # a classifier that any change of a sample's noise moves (a coarser one is constant on most
    # inputs' vicinities, and a constant stream equals any other)
    fine = lambda images: (images.flatten(1).sum(1) * 1e4).long() % 7  # noqa: E731
    x = torch.rand(5, 1, 4, 4, generator=torch.Generator().manual_seed(0))
    whole = SampleTape(fine, x, LINF, batch_size=256, seed=11).reader()
    streams = whole(torch.arange(5), torch.full((5,), 100))
    per_input = streams.split(100)
    block = SampleTape(fine, x[2:], LINF, batch_size=32, seed=11, first_index=2).reader()
    reads = [block(torch.tensor([2]), torch.tensor([7])), block(torch.tensor([0, 2]), torch.tensor([60, 93])),
             block(torch.tensor([1, 0]), torch.tensor([100, 40]))]
    assert torch.equal(reads[0], per_input[4][:7])
    assert torch.equal(reads[1][:60], per_input[2][:60]) and torch.equal(reads[1][60:], per_input[4][7:100])
    assert torch.equal(reads[2][:100], per_input[3]) and torch.equal(reads[2][100:], per_input[2][60:100])
    other = SampleTape(fine, x, LINF, batch_size=256, seed=12).reader()(torch.arange(5), torch.full((5,), 100))
    assert not torch.equal(other, streams)  # another seed, another stream
    assert not torch.equal(per_input[0], per_input[1])  # inputs' streams are not copies of one another
    sizes = []  # a batch size under one chunk still bounds every forward
    small = SampleTape(lambda b: (sizes.append(len(b)), fine(b))[1], x, LINF, batch_size=7, seed=11)
    assert torch.equal(small.reader()(torch.arange(5), torch.full((5,), 100)), streams) and max(sizes) == 7


@pytest.mark.parametrize("spec", ["linf:0.1", "affine"])
def test_a_tapes_samples_are_each_chunks_own_seeded_draw(spec):
    """The tape applies many chunks' noise at once; each chunk's samples are still exactly the
    vicinity's own call on that input with a generator seeded by ``chunk_seed``."""
    from bench.certification.streams import SampleTape, chunk_seed
    from bench.certification.vicinity import parse_vicinity

    x = torch.rand(4, 3, 5, 5, generator=torch.Generator().manual_seed(1))
    vicinity, seen = parse_vicinity(spec), []
    tape = SampleTape(lambda b: (seen.append(b.clone()), torch.zeros(len(b), dtype=torch.long))[1],
                      x, vicinity, batch_size=96, seed=7, first_index=9)
    tape.reader()(torch.arange(4), torch.tensor([70, 5, 33, 64]))
    chunks = [(i, c) for i, n in enumerate([70, 5, 33, 64]) for c in range(-(-n // CHUNK))]
    own = [vicinity.flat(x[i : i + 1], CHUNK, torch.Generator().manual_seed(chunk_seed(7, 9 + i, c)))
           for i, c in chunks]
    assert torch.equal(torch.cat(seen), torch.cat(own))


def test_a_sampler_that_is_not_a_vicinity_is_drawn_chunk_by_chunk_through_its_flat():
    """bench.api takes any sampler object: one with only ``__call__`` and ``flat`` (no two phases)
    gives the tape each chunk's own ``flat`` samples, as before f6abb34."""
    from bench.certification.streams import SampleTape, chunk_seed

    class Duck:
        def flat(self, x, n, generator=None):
            return LINF.flat(x, n, generator)

    x, seen = torch.rand(3, 1, 4, 4), []
    SampleTape(lambda b: (seen.append(b), torch.zeros(len(b), dtype=torch.long))[1], x, Duck(), batch_size=64,
               seed=2).reader()(torch.arange(3), torch.tensor([10, 40, 1]))
    own = [LINF.flat(x[i : i + 1], CHUNK, torch.Generator().manual_seed(chunk_seed(2, i, c)))
           for i, c in [(0, 0), (1, 0), (1, 1), (2, 0)]]
    assert torch.equal(torch.cat(seen), torch.cat(own))


def test_the_tape_sampling_benchmark_times_two_paths_to_the_same_samples(tmp_path):
    """``benchmarks/tape_sampling.py``: its per-chunk path (the L∞ box's formula before f6abb34,
    drawn chunk by chunk) gives what the tape draws now (it refuses to time them otherwise), and
    it writes one row per path."""
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "tape_sampling.py"
    spec = importlib.util.spec_from_file_location("tape_sampling", path)
    bench_module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(bench_module)
    table = bench_module.main(["--inputs", "3", "--samples", "70", "--rounds", "1", "--out", str(tmp_path / "t.csv")])
    assert list(table["path"]) == ["per-chunk call", "batched apply"] and table["chunks"].eq(9).all()
    x = torch.rand(2, 1, 4, 4)
    g1, g2 = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    assert torch.equal(bench_module.PerChunkLinf(0.1)(x, 5, g1), LINF(x, 5, g2))  # LINF: linf:0.1


def test_one_inputs_chunks_never_share_a_seed():
    """The CPU generator keeps a seed's low 32 bits: an input's chunk seeds stay distinct there."""
    from bench.certification.streams import chunk_seed

    for seed, index in ((0, 0), (3, 12345), (2**40, 7)):
        assert len({chunk_seed(seed, index, c) & 0xFFFFFFFF for c in range(100_000)}) == 100_000


def test_settings_certified_together_share_samples_and_match_running_alone():
    from bench.certification.engine import certify_many

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


# --- bad model outputs are refused, never certified -------------------------------------------


class _Logits(torch.nn.Module):
    """Zero logits over 3 classes, except ``value`` at (row, 1) of every batch (all rows if None)."""

    def __init__(self, value: float, row: int | None = None):
        super().__init__()
        self.value, self.row = value, row

    def forward(self, x):
        z = torch.zeros(len(x), 3)
        if self.row is None:
            z[:, 1] = self.value
        elif self.row < len(x):
            z[self.row, 1] = self.value
        return z


@pytest.mark.parametrize("value,shown", [(float("nan"), "nan"), (float("inf"), "inf"), (float("-inf"), "-inf")])
def test_non_finite_logits_are_refused_naming_the_input_and_the_value(value, shown):
    predict = classifier(_Logits(value, row=2))
    with pytest.raises(ValueError, match=rf"non-finite logit \({shown}\) for input 2 of the batch"):
        predict(X)
    # through the engine: an error, never a certificate (NaN logits everywhere used to certify class 0)
    for row in (2, None):
        with pytest.raises(ValueError, match=rf"non-finite logit \({shown}\) for input"):
            certify(classifier(_Logits(value, row=row)), X, LINF, 3, CertifyConfig(budget=1000), progress=False)


def _draw_bad_for(bad_input: int, bad: int):
    """A ``draw`` that predicts class 0, except ``bad`` for every sample of input ``bad_input``."""

    def draw(inputs, sizes):
        owner = torch.repeat_interleave(inputs, sizes)
        return torch.where(owner == bad_input, bad, 0).long()

    return draw


@pytest.mark.parametrize("procedure", list(PROCEDURES))
@pytest.mark.parametrize("bad", [10, -1])
def test_a_class_outside_range_is_refused_by_every_procedure(procedure, bad):
    cfg = CertifyConfig(procedure=procedure, budget=1000)
    # from the engine's draw: the error names the certified input and the value
    with pytest.raises(ValueError, match=rf"draw returned class {bad} for input 5; classes must lie in \[0, 10\)"):
        Certifier(cfg, 10).run(8, _draw_bad_for(5, bad), torch.zeros(8, dtype=torch.long), progress=False)
    # from a model's predict: refused on the clean images ...
    with pytest.raises(ValueError, match=rf"predict \(clean images\) returned class {bad} for input 0"):
        certify(constant(bad), X, LINF, 10, cfg, progress=False)

    # ... and on the vicinity samples when only those are bad (the tape names the input's index)
    calls = []

    def clean_then_bad(images):  # certify_many predicts the clean images first, in one batch here
        calls.append(len(images))
        return torch.full((len(images),), 0 if len(calls) == 1 else bad, dtype=torch.long)

    with pytest.raises(ValueError, match=rf"predict returned class {bad} for input 0"):
        certify(clean_then_bad, X, LINF, 10, cfg, progress=False)
    assert calls[0] == len(X)


def test_a_candidate_outside_range_and_non_integer_predictions_are_refused():
    with pytest.raises(ValueError, match=r"candidate returned class 7 for input 1"):
        Certifier(CertifyConfig(procedure="sprt"), 3).run(2, _draw_bad_for(0, 0), torch.tensor([0, 7]),
                                                           progress=False)
    with pytest.raises(ValueError, match=r"dtype torch.float32; classes must be integer indices"):
        certify(lambda images: torch.zeros(len(images)), X, LINF, 10, progress=False)
    with pytest.raises(ValueError, match=r"returned predictions of shape \(3,\); expected one class per sample"):
        Certifier(CertifyConfig(budget=1000), 3).run(2, lambda i, s: torch.zeros(3, dtype=torch.long),
                                                     progress=False)


def test_an_empty_or_misshapen_batch_of_images_is_refused():
    with pytest.raises(ValueError, match=r"images is an empty batch \(shape \(0, 1, 6, 6\)\)"):
        certify(constant(), X[:0], LINF, 10, progress=False)
    with pytest.raises(ValueError, match=r"images must be a tensor of shape N×C×H×W; got \(1, 6, 6\)"):
        certify(constant(), X[0], LINF, 10, progress=False)


@pytest.mark.parametrize("num_classes", [1, 0, True, 2.5])
def test_fewer_than_two_classes_is_refused(num_classes):
    with pytest.raises(ValueError, match=rf"num_classes = {num_classes!r} is out of range; allowed: an integer >= 2"):
        certify(constant(0), X, LINF, num_classes, progress=False)


@pytest.mark.parametrize("budget", [1000.5, "1000", True, float("nan")])
def test_a_budget_that_is_not_a_whole_number_is_refused(budget):
    msg = rf"budget = {re.escape(repr(budget))} is not a whole number of samples"
    with pytest.raises(ValueError, match=msg):
        CertifyConfig(budget=budget)
    with pytest.raises(ValueError, match=msg):
        make_test("paper", 0.01, 0.01, budget)


def test_integer_valued_budgets_are_accepted_as_int():
    for budget in (np.int64(1000), np.int32(1000), 1000.0):
        cfg = CertifyConfig(budget=budget)
        assert cfg.budget == 1000 and type(cfg.budget) is int
        assert make_test("sprt", 0.01, 0.01, budget).budget == 1000


def test_sprt_with_kappa_zero_gets_the_kappa_zero_message():
    with pytest.raises(ValueError, match="kappa = 0 .*sound bound"):
        CertifyConfig(kappa=0.0, procedure="sprt").make_test()
    with pytest.raises(ValueError, match="kappa = 0 .*sound bound"):
        make_test("sprt", 0.0, 0.01, 1000)


def test_a_budget_below_the_sprts_own_minimum_names_that_minimum():
    kappa = alpha = 0.01
    p0, p1 = 1 - kappa, 1 - kappa / 10
    # all-agreeing SPRT: n·ln(p1/p0) >= ln(1/α)
    expected = math.ceil(math.log(1 / alpha) / math.log(p1 / p0))
    assert expected == 509 == make_test("sprt", kappa, alpha, 1000).min_certify
    assert make_test("sprt", kappa, alpha, 480).min_certify == 509  # whatever the budget
    assert n_min(kappa, alpha) == 459  # what the old message named
    with pytest.raises(ValueError, match=r"budget = 480 samples cannot certify .*procedure 'sprt': "
                                         r"that procedure's minimum is 509 samples.*at least 509"):
        Certifier(CertifyConfig(kappa=kappa, alpha=alpha, procedure="sprt", budget=480), 2)
    Certifier(CertifyConfig(kappa=kappa, alpha=alpha, procedure="sprt", budget=509), 2)


def _rate_draw(rate: float, seed: int):
    """Class 0 with probability ``rate``, else 1 (a robust input at κ when rate > 1−κ)."""
    g = torch.Generator().manual_seed(seed)
    return lambda inputs, sizes: (torch.rand(int(sizes.sum()), generator=g) >= rate).long()


def test_the_sprts_lower_stop_is_below_p1_never_not_robust():
    assert OUTCOMES[:3] == ("certified", "not_robust", "undecided")  # old indices unchanged
    assert OUTCOMES[-1] == "below_p1"
    assert PROCEDURES["sprt"].reject_outcome == "below_p1"
    assert PROCEDURES["paper"].reject_outcome == PROCEDURES["mixture"].reject_outcome == "not_robust"
    # p = 0.995 is robust at κ = 0.01 but inside the SPRT's indifference region (0.99, 0.999)
    n = 200
    cfg = CertifyConfig(kappa=0.01, alpha=0.01, procedure="sprt", budget=20_000)
    result = Certifier(cfg, 2).run(n, _rate_draw(0.995, 3), torch.zeros(n, dtype=torch.long), progress=False)
    outcomes = pd.Series([OUTCOMES[o] for o in result.outcome.tolist()])
    assert not outcomes.eq("not_robust").any()
    assert outcomes.eq("below_p1").mean() > 0.5  # about 72 %, exactly (bench.certification.simulation.exact_rates)
    frame = result.frame()
    assert set(frame["outcome"]) <= {"certified", "below_p1", "undecided"}
    # the mixture test rejects p >= 1−κ, which is false here: it reports no below_p1
    mix = Certifier(CertifyConfig(procedure="mixture", budget=2000), 2).run(
        n, _rate_draw(0.995, 3), torch.zeros(n, dtype=torch.long), progress=False)
    assert OUTCOMES.index("below_p1") not in mix.outcome.tolist()


def test_simulate_counts_the_sprts_own_outcome():
    row = simulate(CertifyConfig(procedure="sprt", budget=5000), 0.5, 50, seed=0)
    assert row["below_p1"] == 1.0 and row["not_robust"] == 0.0
    row = simulate(CertifyConfig(procedure="mixture", budget=5000), 0.5, 50, seed=0)
    assert row["not_robust"] == 1.0 and row["below_p1"] == 0.0
