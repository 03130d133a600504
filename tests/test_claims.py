"""The paper's claims (bench.paper.claims): verdicts by hand, and the claims table from job outputs."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from bench.paper.claims import CLAIMS, Claim, get_claim, list_claims, register_claim, verdict
from bench.paths import ModelRun
from bench.report.html import _claims_html
from bench.stats import paired_difference_interval
from bench.tables import get_table

ABOVE = Claim("t_above", "a above b", "test", "table1", "certified_robust_accuracy", "da")
WITHIN = Claim("t_within", "a within 1 of b", "test", "table1", "standard_accuracy", "erm", kind="within", margin=1.0)


def pair(a_only: int, b_only: int, n: int = 400, both: int = 300) -> tuple[np.ndarray, np.ndarray]:
    a, b = np.zeros(n, bool), np.zeros(n, bool)
    a[:both] = b[:both] = True
    a[both: both + a_only] = True
    b[both + a_only: both + a_only + b_only] = True
    return a, b


def judge(claim, a_only, b_only, paper=None, **kw):
    a, b = pair(a_only, b_only, **kw)
    return verdict(claim, {0: a}, {0: b}, paper)


def test_the_reference_runs_ours_against_da_by_hand():
    """400 inputs, 10 certified only by ours and 12 only by DA (reports/reference/README.md).
    Discordant share 22/400, its 97.5 % Clopper–Pearson upper bound 8.6 %; ours' share of them
    10/22, its 97.5 % interval [0.219, 0.702]: ours − DA in [−4.8, +3.5] (the interval conditional
    on the 22, [−2.8, +2.0], leaves out the share's own uncertainty). p = 0.83 two-sided; the
    direction is not decided; on the paper's own dataset, its +12.6 points are excluded."""
    from scipy.stats import beta

    r = judge(ABOVE, 10, 12)
    psi_high = beta.ppf(1 - 0.0125, 23, 378)
    pi_low, pi_high = beta.ppf(0.0125, 10, 13), beta.ppf(1 - 0.0125, 11, 12)
    assert r["ci_low"] == pytest.approx(100 * psi_high * (2 * pi_low - 1), rel=1e-9)
    assert r["ci_high"] == pytest.approx(100 * psi_high * (2 * pi_high - 1), rel=1e-9)
    assert r["effect"] == -0.5 and (round(r["ci_low"], 1), round(r["ci_high"], 1)) == (-4.8, 3.5)
    assert r["verdict"] == "not decided" and r["p_value"] == pytest.approx(0.8318, abs=1e-3)
    assert judge(ABOVE, 10, 12, paper=12.6)["verdict"] == "contradicted"
    assert r["detectable"] == pytest.approx(100 * (1.959964 + 0.841621) * (22 / 400 / 400) ** 0.5, rel=1e-5)


def test_above_verdicts():
    assert judge(ABOVE, 30, 5)["verdict"] == "supported"
    assert judge(ABOVE, 5, 30)["verdict"] == "contradicted"  # the opposite direction
    assert judge(ABOVE, 30, 5, paper=20.0)["verdict"] == "contradicted"  # the paper's +20 excluded
    assert judge(ABOVE, 30, 5, paper=6.0)["verdict"] == "supported"


def test_within_verdicts():
    """The drop b − a against the margin of 1 point (the paper's "<1% accuracy drop")."""
    # no discordant input among 1,000: the drop is within ±0.44 points
    assert judge(WITHIN, 0, 0, n=1000, both=900)["verdict"] == "supported"
    assert judge(WITHIN, 0, 40)["verdict"] == "contradicted"  # a drop of 10 points
    assert judge(WITHIN, 2, 4)["verdict"] == "not decided"  # 0.5 points, interval past 1


def test_several_seeds_count_the_inputs_and_the_seeds():
    """Two seeds that agree on everything are the one seed's evidence, not twice it (the seeds
    share the inputs): 20 inputs, one discordant, is not decided either way."""
    a, b = pair(1, 0, n=20, both=10)
    two = verdict(ABOVE, {0: a, 1: a}, {0: b, 1: b})
    assert two["seeds"] == 2 and two["verdict"] == "not decided" and two["ci_low"] < 0 < two["ci_high"]
    none = verdict(WITHIN, {0: b, 1: b}, {0: b, 1: b})  # no discordant input: no evidence of equality either
    assert none["verdict"] == "not decided" and none["ci_high"] > 15
    seeds = {s: pair(*counts) for s, counts in enumerate([(20, 4), (18, 6), (30, 2)])}
    r = verdict(ABOVE, {s: p[0] for s, p in seeds.items()}, {s: p[1] for s, p in seeds.items()})
    assert r["verdict"] == "supported" and r["direction"] == "supported" and "3 seeds" in r["test"]
    small = verdict(ABOVE, {s: p[0] for s, p in seeds.items()}, {s: p[1] for s, p in seeds.items()}, paper_effect=30.0)
    assert small["verdict"] == "contradicted" and small["direction"] == "supported"  # smaller than the paper's


def test_the_registry():
    assert {"table1_cra_above_da", "table1_cra_above_prl", "table1_accuracy_within_1_of_erm",
            "table3_autoattack_above_da", "table2_rotate_above_da", "table10_cra_above_da"} <= set(list_claims())
    assert get_claim("table1_accuracy_within_1_of_erm").margin == 1.0
    with pytest.raises(ValueError, match="unknown claim"):
        get_claim("nope")
    with pytest.raises(ValueError, match="registered twice"):
        register_claim(Claim("table1_cra_above_da", "x", "y", "table1", "standard_accuracy", "da"))
    with pytest.raises(ValueError, match="with a margin"):
        register_claim(Claim("bad", "x", "y", "table1", "standard_accuracy", "da", kind="within"))
    assert "bad" not in CLAIMS


def certify_files(root, method: str, hits: np.ndarray) -> str:
    model = ModelRun("t", "fashion_mnist", method, "convnet", 0)
    csv = root / model.output("certify_inputs", "table1")
    csv.parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame({"input": range(len(hits)), "label": 0, "clean_prediction": 0, "prediction": 0, "samples": 100,
                  "outcome": np.where(hits, "certified", "not_certified"), "method": method,
                  "dataset": "fashion_mnist", "arch": "convnet", "seed": 0, "vicinity": "main", "kappa": 0.01,
                  "alpha": 0.01, "procedure": "paper"}).to_csv(csv, index=False)
    return str(csv)


def attack_file(root, method: str, inference: str, correct: np.ndarray, adaptive: bool = False) -> str:
    """AutoAttack's outcomes as the attack job writes them: on the network (Table 3) or, with
    ``adaptive``, its rand version on the vote (the job ``VoteAutoAttack``)."""
    name = "VoteAutoAttack" if adaptive else "AutoAttack"
    path = root / ModelRun("t", "fashion_mnist", method, "convnet", 0).output("attack", name)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"method": method, "dataset": "fashion_mnist", "arch": "convnet", "seed": 0, "attack": "AutoAttack",
           "label": "AutoAttack", "protocol": "adaptive" if adaptive else "paper", "inference": inference,
           "correct": correct.astype(int).tolist()}
    path.write_text(json.dumps({"rows": [row], "provenance": {}}))
    return str(path)


def test_the_claims_table_and_its_section(tmp_path):
    ours, da = pair(30, 5)
    paths = [certify_files(tmp_path, "ours", ours), certify_files(tmp_path, "da", da),
             attack_file(tmp_path, "ours", "vote", ours), attack_file(tmp_path, "da", "argmax", da)]
    df = get_table("claims").build(paths, {"paper_reference": {"fashion_mnist": "mnist"}})
    rows = df.set_index("claim")
    cra = rows.loc["table1_cra_above_da"]
    assert cra["verdict"] == "supported" and cra["paper_dataset"] == "mnist"
    assert cra["paper_effect"] == pytest.approx(96.80 - 84.12)  # shown for reference: another dataset's
    assert rows.loc["table3_autoattack_above_da", "verdict"] == "not comparable"  # a vote against an argmax
    assert "table1_cra_above_prl" not in rows.index  # no PRL in this run: nothing to say
    page = _claims_html(df)
    assert "not comparable" in page and "supported" in page and "(mnist)" in page


def test_no_discordant_input_among_few_is_no_evidence_of_equality():
    """20 inputs, no discordant one: the difference is not pinned at 0 (the interval conditional
    on the discordant inputs would say (0, 0)); a − b lies within ± the share's upper bound."""
    from scipy.stats import beta

    low, high = paired_difference_interval(0, 0, 20)
    assert high == pytest.approx(100 * beta.ppf(1 - 0.0125, 1, 20)) and low == -high and high > 15
    assert judge(WITHIN, 0, 0, n=20, both=15)["verdict"] == "not decided"
    assert np.isnan(judge(ABOVE, 0, 0, n=20, both=15)["detectable"])
    low, high = paired_difference_interval(30, 5, 400)
    assert 0 < low < 6.25 < high


def test_figure2_claims_pair_the_ablations_models_and_da_vote_is_like_with_like(tmp_path):
    """The ablation's models at λ = 1 and λ = 0 / 5 on the same inputs (Figure 2), and ours
    against da_vote (both voting) on Table 3, which the argmax da is not."""
    strong, weak = pair(30, 5)

    def ablation_file(value: float, hits: np.ndarray, kind: str) -> str:
        model = ModelRun("t", "fashion_mnist", "ours", "convnet", 0, "lam", repr(float(value)))
        if kind == "certify":
            path = tmp_path / model.output("certify_inputs", "table1")
            path.parent.mkdir(parents=True, exist_ok=True)
            pd.DataFrame({"input": range(len(hits)), "label": 0, "clean_prediction": np.where(hits, 0, 1),
                          "prediction": 0, "samples": 100, "outcome": np.where(hits, "certified", "not_certified"),
                          "method": "ours", "dataset": "fashion_mnist", "arch": "convnet", "seed": 0,
                          "vicinity": "main", "kappa": 0.01, "alpha": 0.01, "procedure": "paper"}).to_csv(path, index=False)
        else:
            path = tmp_path / model.output("attack", "AutoAttack")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"rows": [{"method": "ours", "dataset": "fashion_mnist", "arch": "convnet",
                                                  "seed": 0, "label": "AutoAttack", "protocol": "paper",
                                                  "inference": "vote", "correct": hits.astype(int).tolist()}],
                                        "provenance": {}}))
        return str(path)

    paths = [ablation_file(1, strong, "certify"), ablation_file(0, weak, "certify"), ablation_file(5, strong, "certify"),
             ablation_file(1, weak, "attack"), ablation_file(5, strong, "attack"),
             certify_files(tmp_path, "ours", strong), attack_file(tmp_path, "ours", "vote", strong),
             attack_file(tmp_path, "da_vote", "vote", weak), attack_file(tmp_path, "da", "argmax", weak)]
    rows = get_table("claims").build(paths, {}).set_index("claim")
    cra = rows.loc["figure2_cra_lam1_above_lam0"]
    assert cra["verdict"] == "supported" and (cra["method"], cra["other"]) == ("ours lam=1", "ours lam=0")
    assert rows.loc["figure2_accuracy_lam1_above_lam5", "verdict"] == "not decided"  # the same outcomes at 1 and 5
    assert rows.loc["figure2_autoattack_lam1_above_lam5", "verdict"] == "contradicted"  # λ = 5 defends better here
    assert rows.loc["table3_autoattack_above_da_vote", "verdict"] == "supported"
    assert rows.loc["table3_autoattack_above_da", "verdict"] == "not comparable"


def test_adaptive_claims_read_the_attack_on_the_vote_apart_from_the_attack_on_the_network(tmp_path):
    """ours against da_vote and RS under AutoAttack on the vote (table3_adaptive) from the
    VoteAutoAttack files only: the same models' outcomes under the paper's protocol (the attack on
    the network) decide the Table 3 claims and never mix into the adaptive ones."""
    strong, weak = pair(30, 5)
    paths = [attack_file(tmp_path, "ours", "vote", strong), attack_file(tmp_path, "da_vote", "vote", weak),
             attack_file(tmp_path, "ours", "vote", weak, adaptive=True),
             attack_file(tmp_path, "da_vote", "vote", strong, adaptive=True),
             attack_file(tmp_path, "rs", "vote", weak, adaptive=True)]
    other_attack = tmp_path / ModelRun("t", "fashion_mnist", "ours", "convnet", 0).output("attack", "PGD")
    other_attack.write_text(Path(paths[0]).read_text())  # an attack no claim reads (Table 9's): left out
    rows = get_table("claims").build([*paths, str(other_attack)], {}).set_index("claim")
    assert rows.loc["table3_autoattack_above_da_vote", "verdict"] == "supported"  # on the network: ours strong
    adaptive = rows.loc["table3_adaptive_autoattack_above_da_vote"]
    assert adaptive["verdict"] == "contradicted" and adaptive["effect"] < 0  # on the vote: da_vote strong
    assert pd.isna(adaptive["paper_effect"])  # the paper has no adaptive row
    assert rows.loc["table3_adaptive_autoattack_above_rs", "verdict"] == "not decided"  # the same outcomes
    assert "table3_autoattack_above_rs" not in rows.index  # RS was attacked on the vote only here


FASTER = Claim("t_faster", "a trains faster than b", "test", "table4", "train_seconds", "prl", kind="faster",
               paper_table=4)


def test_a_time_ratio_over_seeds_by_hand():
    """ours 100, 110, 90 s and the other 200, 220, 180 s: the ratio of geometric means, the Welch
    interval of the difference of mean log times (equal spreads: 4 degrees of freedom, t = 2.776),
    back on the ratio scale. Only the direction is judged (the paper's ratio is another machine's)."""
    from scipy.stats import t as student_t

    from bench.paper.claims import timing_verdict
    from bench.stats import time_ratio_across_seeds

    ours = {0: 100.0, 1: 110.0, 2: 90.0}
    other = {s: 2 * t for s, t in ours.items()}
    la, lb = np.log(list(ours.values())), np.log(list(other.values()))
    se = np.sqrt(la.var(ddof=1) / 3 + lb.var(ddof=1) / 3)
    r = time_ratio_across_seeds(ours, other)
    assert r["ratio"] == pytest.approx(2.0)
    assert r["low"] == pytest.approx(2.0 * np.exp(-2.776445 * se), rel=1e-5)
    assert r["high"] == pytest.approx(2.0 * np.exp(2.776445 * se), rel=1e-5)
    assert r["p"] == pytest.approx(2 * student_t.sf(np.log(2) / se, 4))
    supported = timing_verdict(FASTER, ours, other)
    assert supported["verdict"] == "supported" and supported["unit"] == "×"
    slower = timing_verdict(FASTER, other, ours)
    assert slower["verdict"] == "contradicted" and slower["ci_high"] < 1
    one = timing_verdict(FASTER, {0: 100.0}, {0: 300.0})  # a single timing: a ratio, no interval
    assert one["verdict"] == "not decided" and one["effect"] == pytest.approx(3.0) and np.isnan(one["ci_low"])
    with pytest.raises(ValueError, match="positive times"):
        time_ratio_across_seeds({0: 0.0}, {0: 1.0})


def model_file(root, method: str, seed: int, seconds: float | None) -> str:
    path = root / ModelRun("t", "fashion_mnist", method, "convnet", seed).output("model")
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"spec": {"method": method, "dataset": "fashion_mnist", "arch": "convnet", "seed": seed}, "epochs": 2,
            "device": "cpu"}
    if seconds is not None:
        meta["metrics"] = {"train_seconds": seconds}
    path.write_text(json.dumps(meta))
    return str(path)


def test_the_claims_table_judges_training_time_from_the_models_files(tmp_path):
    paths = [model_file(tmp_path, m, s, t) for m, times in (("ours", [100, 110, 90]), ("prl", [105, 108, 96]))
             for s, t in enumerate(times)] + [model_file(tmp_path, "erm", 0, 0.0)]  # no measurement: skipped
    df = get_table("claims").build(paths, {"paper_reference": {"fashion_mnist": "mnist"}})
    row = df.set_index("claim").loc["table4_trains_faster_than_prl"]
    assert row["unit"] == "×" and row["seeds"] == 3
    assert row["paper_effect"] == pytest.approx(28000 / 9600)  # the paper's MNIST ratio, shown for reference
    assert row["effect"] == pytest.approx(np.exp(np.mean(np.log([105, 108, 96])) - np.mean(np.log([100, 110, 90]))))
    assert row["verdict"] == "not decided"  # about 1.03 times: the interval contains 1
    page = _claims_html(df)
    assert "1.03×" in page and "<td>nan</td>" not in page  # a claim on time has no procedure: '–'


def test_the_claims_run_reads_every_trained_models_time():
    """config/claims.yaml has Table 4: its claims table reads the 12 models' model.json."""
    from bench.workflow.estimate import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "config" / "claims.yaml")
    assert 4 in config["tables"]
    timed = {p for p in get_table("claims").inputs(config) if p.endswith("model.json")}
    assert timed == {ModelRun("claims", "fashion_mnist", m, "convnet", s).output("model")
                     for m in config["methods"] for s in config["seeds"]}


def test_the_papers_effect_is_in_the_claims_own_terms():
    """A "within" claim's effect is the drop other − ours: the paper's is ERM's 99.37 − ours' 99.32
    (+0.05 on MNIST, a drop), not ours − ERM (found in the claims run's table); "faster" is a ratio."""
    from bench.tables.claims import Claims

    within = get_claim("table1_accuracy_within_1_of_erm")
    assert Claims._paper_effect(within, "mnist", {}) == pytest.approx(99.37 - 99.32)
    assert Claims._paper_effect(get_claim("table4_trains_faster_than_prl"), "mnist", {}) == pytest.approx(28000 / 9600)
    assert Claims._paper_effect(get_claim("table1_cra_above_da"), "mnist", {}) == pytest.approx(96.80 - 84.12)


def test_a_models_time_is_per_epoch(tmp_path):
    """A method may train longer than the run (train.method_epochs: IBP 16 epochs against 4 in the
    reference run): its time enters per epoch, so the ratio compares the methods' costs, not the
    run's choice of epochs."""
    from bench.tables.claims import Claims

    path = model_file(tmp_path, "ibp", 0, 800.0)
    meta = json.loads(open(path).read())
    meta["epochs"] = 8
    open(path, "w").write(json.dumps(meta))
    assert Claims._timed([path, model_file(tmp_path, "ours", 0, 100.0)], {}) == {
        ("fashion_mnist", "ibp"): {0: 100.0}, ("fashion_mnist", "ours"): {0: 50.0}}


def reference_checks():
    """benchmarks/reference_checks.py as a module (a script, not in a package)."""
    import importlib.util

    spec = importlib.util.spec_from_file_location(
        "reference_checks", Path(__file__).resolve().parents[1] / "benchmarks" / "reference_checks.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_the_reference_runs_known_behaviours_are_judged_as_claims(tmp_path, monkeypatch):
    """benchmarks/reference_checks.py judges its comparisons by the claims' verdict: ours 30 / DA 5
    inputs certified by one only (supported, the interval of verdict()), ours against ERM equal
    (not shown)."""
    checks = reference_checks()
    ours, da = pair(30, 5)
    for method, hits in (("ours", ours), ("da", da), ("erm", ours)):
        certify_files(tmp_path, method, hits)
        model = tmp_path / ModelRun("t", "fashion_mnist", method, "convnet", 0).output("model")
        model.write_text("{}")
    monkeypatch.chdir(tmp_path)
    rows = checks.vicinal("t").set_index("behaviour")
    above_da = rows.loc["ours above DA in certified robustness rate at the same n"]
    expected = verdict(Claim("x", "x", "x", "table1", "certified_robust_accuracy", "da"), {0: ours}, {0: da})
    assert above_da["holds"] and above_da["verdict"] == "supported"
    assert (above_da["ci_low"], above_da["ci_high"], above_da["p_value"]) == pytest.approx(
        (expected["ci_low"], expected["ci_high"], expected["p_value"]))
    assert "only for ours: 30, only for DA: 5" in above_da["evidence"]
    same = rows.loc["ours above ERM in certified robustness rate"]
    assert not same["holds"] and same["verdict"] == "not decided"


def test_the_reference_checks_of_the_votes(tmp_path, monkeypatch):
    """Behaviours 5 and 6 of benchmarks/reference_checks.py from the attack jobs' outputs: ours'
    vote attacked on the network and on the vote (right on 30 and 5 images only under the one),
    and da_vote's vote against DA's argmax, both attacked on the network (the inference rule's
    share of a Table 3 gap); a model without such outputs gives no row."""
    checks = reference_checks()
    network, vote = pair(30, 5)
    attack_file(tmp_path, "ours", "vote", network)
    attack_file(tmp_path, "ours", "vote", vote, adaptive=True)
    attack_file(tmp_path, "da_vote", "vote", network)
    attack_file(tmp_path, "da", "argmax", vote)
    attack_file(tmp_path, "erm", "argmax", vote)
    for method in ("ours", "da_vote", "da", "erm"):
        (tmp_path / ModelRun("t", "fashion_mnist", method, "convnet", 0).output("model")).write_text("{}")
    monkeypatch.chdir(tmp_path)
    rows = checks.votes("t").set_index("behaviour")
    assert list(rows.index) == [
        "ours's vote defends less against AutoAttack on the vote (adaptive) than on the network",
        "da's vote defends more than its argmax against AutoAttack on the network"]
    expected = verdict(Claim("x", "x", "x", "table3", "defence_success_rate", "da"), {0: network}, {0: vote})
    for row in rows.itertuples():
        assert row.holds and row.verdict == "supported"
        assert (row.ci_low, row.ci_high, row.p_value) == pytest.approx(
            (expected["ci_low"], expected["ci_high"], expected["p_value"]))
    assert "right only for da_vote (vote): 30, only for da (argmax): 5" in rows.iloc[1]["evidence"]
