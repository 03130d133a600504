"""Like with like: a table or summary compares two methods only when the same inference rule
scores them under the same attack target (issue 24). A vote over vicinity draws and the argmax
of a network are different defences of one network: their gap is not a difference of methods."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from bench.paths import ModelRun
from bench.report.html import _summary_html
from bench.tables import get_table
from bench.tables.attacks import COMPARED


def write_attack(tmp_path: Path, method: str, inference: str, correct: list[int], protocol: str = "paper",
                 attack: str = "AutoAttack") -> str:
    """An attack job's output, as bench.jobs.attack writes it, in the results layout under tmp_path."""
    path = tmp_path / ModelRun("t", "fashion_mnist", method, "convnet", 0).output("attack", attack)
    path.parent.mkdir(parents=True, exist_ok=True)
    row = {"method": method, "dataset": "fashion_mnist", "arch": "convnet", "seed": 0, "attack": attack,
           "label": attack, "protocol": protocol, "inputs": len(correct), "correct_count": sum(correct),
           "correct": correct, "defence_success_rate": 100.0 * sum(correct) / len(correct), "inference": inference,
           "settings": {}, "precision": "fp32"}
    path.write_text(json.dumps({"rows": [row], "provenance": {"code": {"engine": "x"}, "git_commit": "c"}}))
    return str(path)


@pytest.fixture
def mixed(tmp_path) -> list[str]:
    """ours by its vote (well above), da and erm by their argmax: the reference run's shape."""
    rng = np.random.default_rng(0)
    hits = lambda rate: [int(v) for v in rng.random(200) < rate]  # noqa: E731
    return [write_attack(tmp_path, "ours", "vote", hits(0.6)), write_attack(tmp_path, "da", "argmax", hits(0.1)),
            write_attack(tmp_path, "erm", "argmax", hits(0.02))]


def test_table3_never_compares_a_vote_with_an_argmax(mixed):
    df = get_table("table3").build(mixed, {"paper_reference": {"fashion_mnist": "mnist"}})
    ours, da, erm = (df[df["method"] == m].iloc[0] for m in ("ours", "da", "erm"))
    assert ours["vs_best"] == "best" and np.isnan(ours["vs_best_p"])  # alone under its rule: nothing to beat
    assert da["vs_best"] == "best"  # the best argmax defence, though ours' vote is far above it
    assert erm["vs_best"] == "worse" and erm["vs_best_p"] < 0.05  # compared with da: same rule, same target
    for _, group in df.groupby(COMPARED):
        assert group["inference"].nunique() == 1 and group["protocol"].nunique() == 1


def test_every_compared_group_of_an_attack_table_holds_one_rule_and_one_target(mixed, tmp_path):
    """A mutation check of the grouping: with ``inference`` left out, the vote would be the best of
    the argmax methods' column (this is what the paper's protocol did)."""
    extra = write_attack(tmp_path, "rs", "vote", [1] * 150 + [0] * 50, protocol="adaptive")
    df = get_table("table3").build([*mixed, extra], {})
    best = df[df["vs_best"] == "best"]
    assert set(best["method"]) == {"ours", "da", "rs"}  # one best per (rule, target)
    assert "inference" in get_table("table3").columns and "inference" in get_table("table9").rows


def test_the_summary_names_the_rule_and_never_ranks_across_rules(mixed):
    df = get_table("table3").build(mixed, {})
    html = _summary_html({"table3": df})
    rows = [r for r in html.split("<tr>") if "Table 3" in r]
    assert len(rows) == 2  # one summary row per inference rule
    vote, argmax = sorted(rows, key=lambda r: "argmax" in r)
    assert "vote" in vote and "<b>Ours</b>" in vote and "DA" not in vote
    assert "argmax" in argmax and "<b>DA</b>" in argmax and "Ours" not in argmax


def test_an_attack_table_no_model_needs_builds_empty_and_the_report_says_so():
    """A config with an adaptive: block but no voting method (issue 25: it crashed with
    KeyError 'defence_success_rate'): the adaptive tables have no rows, and say so."""
    from bench.report.html import _table_html

    table = get_table("table3_adaptive")
    df = table.build([], {})
    assert df.empty
    assert "No rows" in _table_html(table, df, {})


def test_an_adaptive_table_is_built_only_beside_its_table():
    """An adaptive: block with tables: [1, 3] plans the adaptive AutoAttack on the vote (beside
    Table 3) and no adaptive Table 9 attacks (the longest job of each voting model)."""
    config = {"adaptive": {"attacks": ["EOTPGD"], "vote_samples": 4, "eot_iter": 20, "steps": 100}, "tables": [1, 3]}
    assert get_table("table3_adaptive").enabled(config)
    assert not get_table("table9_adaptive").enabled(config)
    assert get_table("table9_adaptive").enabled({**config, "tables": [1, 3, 9]})
    assert not get_table("table3_adaptive").enabled({**config, "tables": [1]})
    assert not get_table("table3_adaptive").enabled({**config, "adaptive": None})


def test_an_imported_model_beside_trained_ones_is_no_mix_of_code_versions():
    """Issue 25: every table of a run with a models: block warned that it mixes code versions,
    since an imported model's stamp is the import job's. Trained models are compared with each
    other, imported ones with each other."""
    import pandas as pd

    from bench.report.html import _code_warning

    rows = pd.DataFrame({"method": ["erm", "ours", "mine"], "job": "certify", "code": "c1",
                         "model_code": ["train1", "train1", "import1"], "external": [None, None, "w.safetensors"]})
    assert _code_warning(rows) == ""
    rows.loc[1, "model_code"] = "train2"
    assert "trainings: train1, train2" in _code_warning(rows)
