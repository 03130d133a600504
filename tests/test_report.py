"""The report's first screen: which method is best on what, by how much, with what uncertainty."""
from __future__ import annotations

import pandas as pd

from bench.report.html import _summary_html


def column(values: dict[str, tuple[float, str, float | None]]) -> pd.DataFrame:
    return pd.DataFrame([{"method": m, "dataset": "mnist", "procedure": "mixture", "metric": "certified_robust_accuracy",
                          "value": v, "ci_low": v - 10, "ci_high": v + 5, "vs_best": rank, "vs_best_p": p}
                         for m, (v, rank, p) in values.items()])


def test_the_summary_names_the_best_the_ties_and_the_margin_with_its_test():
    frame = column({"ours": (80.0, "best", None), "da": (74.0, "tie", 0.2), "erm": (40.0, "worse", 0.001)})
    html = _summary_html({"table1": frame})
    assert "<b>Ours</b>" in html and "80.0 <small>[70.0, 85.0]</small>" in html
    assert "2 of 3: DA, Ours" in html
    assert "+40.0 over ERM (p = 0.001)" in html


def test_each_seed_is_its_own_column():
    frame = pd.concat([column({"ours": (80.0, "best", None), "da": (40.0, "worse", 0.01)}).assign(seed=0),
                       column({"da": (70.0, "best", None), "ours": (30.0, "worse", 0.02)}).assign(seed=1)])
    html = _summary_html({"table1": frame})
    assert "seed 0 / mixture" in html and "seed 1 / mixture" in html
    assert "+40.0 over DA (p = 0.01)" in html and "+40.0 over Ours (p = 0.02)" in html
    assert "1 of 2: Ours" in html and "1 of 2: DA" in html


def test_the_summary_names_methods_as_the_paper_does_and_the_rule_in_words():
    """Issue 25: a method's display name is what the report shows (the CSVs keep the key), and
    an attack row's target is said in words: "paper" is the paper's protocol, not a procedure."""
    from bench.report.html import _key_label, method_label

    assert method_label("pgdt") == "PGDT" and method_label("ours") == "Ours"
    assert method_label("ours lam=1") == "ours lam=1"  # Figure 2's compared models are no methods
    assert _key_label("protocol", "paper") == "attack on the network (the paper's protocol)"
    assert _key_label("inference", "vote") == "scored by vote"


def test_a_run_that_cannot_separate_the_methods_says_so():
    frame = column({"ours": (60.0, "best", None), "da": (50.0, "tie", 0.5)})
    html = _summary_html({"table1": frame})
    assert "2 of 2" in html and "none significantly below" in html
    assert _summary_html({}) == ""


def test_the_report_shows_the_recipes_of_the_run_s_shapes(tmp_path):
    from bench.report.html import _recipes_html
    from bench.report.recipes import recipe_table

    path = tmp_path / "recipes.csv"
    recipe_table(["ours", "ibp"]).to_csv(path, index=False)
    html = _recipes_html(str(path), {"datasets": ["fashion_mnist"], "hparams": {"ours": {"n_samples": 4}}})
    assert "authors&#x27; code" in html or "authors' code" in html
    assert "<td>28x28</td>" in html and "<td>32x32</td>" not in html
    assert "n_samples" in html and "&quot;n_samples&quot;: 4" in html


def test_the_run_line_counts_methods_not_the_models_a_claim_compares():
    """Figure 2's claims compare "ours lam=1" with "ours lam=0": those are no methods of the run."""
    from bench.report.html import _run_line

    frames = {"table1": pd.DataFrame({"method": ["ours", "da"], "inputs": [20, 20]}),
              "claims": pd.DataFrame({"method": ["ours lam=1", "ours"], "inputs": [20, 20]})}
    assert "2 methods" in _run_line({"run": "r", "datasets": ["mnist"], "seeds": [0]}, frames)


def table1_rows(accuracy_by_procedure: dict[str, float], seed: int = 0, verdict: dict[str, str] | None = None
                ) -> pd.DataFrame:
    rows = []
    for procedure, acc in accuracy_by_procedure.items():
        for metric, value in (("standard_accuracy", acc), ("certified_robust_accuracy", 50.0)):
            rows.append({"method": "ours", "dataset": "mnist", "seed": seed, "metric": metric, "procedure": procedure,
                         "value": value, "successes": value / 5, "inputs": 20, "ci_low": 1.0, "ci_high": 2.0,
                         "vs_best": (verdict or {}).get(procedure, "best"), "vs_best_p": 0.01})
    return pd.DataFrame(rows)


def test_table1_shows_standard_accuracy_once_when_every_procedure_agrees():
    """Issue 25: standard accuracy is the prediction on the clean input, the same under every
    certification procedure; Table 1 showed it once per procedure."""
    from bench.report.html import _table_html
    from bench.tables import get_table

    table = get_table("table1")
    html = _table_html(table, table1_rows({"paper": 90.0, "sprt": 90.0, "mixture": 90.0}), {})
    header = html.split("</thead>")[0]
    assert header.count("standard accuracy") == 1 and "standard accuracy / " not in header
    assert header.count("certified robust accuracy / ") == 3  # the certified columns stay per procedure
    # where they differ (a vote drawn per procedure, say), each procedure keeps its own column
    differing = _table_html(table, table1_rows({"paper": 90.0, "sprt": 85.0}), {}).split("</thead>")[0]
    assert differing.count("standard accuracy / ") == 2
    # the same count but another comparison with the best (other inputs right): not merged
    compared = table1_rows({"paper": 90.0, "sprt": 90.0}, verdict={"paper": "tie", "sprt": "worse"})
    assert _table_html(table, compared, {}).split("</thead>")[0].count("standard accuracy / ") == 2


def test_several_seeds_are_several_rows_and_merge_per_seed():
    """A run with seeds [0, 1] shows a row per seed (one cell per seed, none overwritten), and
    standard accuracy is merged across procedures within each seed."""
    from bench.report.html import _table_html
    from bench.tables import get_table

    frame = pd.concat([table1_rows({"paper": 90.0, "mixture": 90.0}, seed=0),
                       table1_rows({"paper": 80.0, "mixture": 80.0}, seed=1)], ignore_index=True)
    html = _table_html(get_table("table1"), frame, {})
    header, body = html.split("</thead>")
    assert "<th>seed</th>" in header and header.count("standard accuracy") == 1
    assert body.count("<tr>") == 2 and "90.00" in body and "80.00" in body


def test_the_summary_shows_standard_accuracy_once_across_procedures():
    frame = table1_rows({"paper": 90.0, "mixture": 90.0})
    html = _summary_html({"table1": frame})
    assert html.count("standard accuracy") == 1 and html.count("certified robust accuracy") == 2
