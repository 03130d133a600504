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
    assert "<b>ours</b>" in html and "80.0 <small>[70.0, 85.0]</small>" in html
    assert "2 of 3: da, ours" in html
    assert "+40.0 over erm (p = 0.001)" in html


def test_each_seed_is_its_own_column():
    frame = pd.concat([column({"ours": (80.0, "best", None), "da": (40.0, "worse", 0.01)}).assign(seed=0),
                       column({"da": (70.0, "best", None), "ours": (30.0, "worse", 0.02)}).assign(seed=1)])
    html = _summary_html({"table1": frame})
    assert "seed 0 / mixture" in html and "seed 1 / mixture" in html
    assert "+40.0 over da (p = 0.01)" in html and "+40.0 over ours (p = 0.02)" in html
    assert "1 of 2: ours" in html and "1 of 2: da" in html


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
