"""Table 8's metrics are defined once (bench.certification.metrics) and every reader agrees with a hand count."""
from __future__ import annotations

import pandas as pd

from bench.certification.engine import summarize
from bench.certification.metrics import METRICS, per_input, rates
from bench.tables.base import certification_outcomes, outcome_key

#: five inputs: right and certified, right not certified, wrong but certified, certified as the
#: wrong class though the clean prediction was right, wrong and not certified
FRAME = pd.DataFrame({"input": range(5), "label": [0, 1, 2, 0, 1], "clean_prediction": [0, 1, 0, 0, 2],
                      "prediction": [0, 1, 0, 2, 2], "samples": [10, 20, 30, 40, 50],
                      "outcome": ["certified", "not_certified", "certified", "certified", "not_certified"]})


def test_the_metrics_by_hand():
    assert rates(FRAME) == {"standard_accuracy": 60.0, "certified_robustness_rate": 60.0,
                            "certified_robust_accuracy": 20.0}
    assert list(per_input(FRAME)) == list(METRICS)
    assert list(per_input(FRAME, labelled=False)) == ["certified_robustness_rate"]


def test_the_job_summary_and_the_tables_paired_outcomes_read_the_same_definitions(tmp_path):
    assert summarize(FRAME) == {"inputs": 5, **rates(FRAME), "mean_samples": 30.0}
    csv = tmp_path / "certify" / "table1_inputs.csv"
    csv.parent.mkdir()
    FRAME.assign(method="ours", dataset="d", arch="a", seed=0, vicinity="main", kappa=0.01, alpha=0.001,
                 procedure="paper").to_csv(csv, index=False)
    outcomes = certification_outcomes([str(csv)], list(METRICS), ["vicinity"])
    for metric in METRICS:
        key = outcome_key({"method": "ours", "dataset": "d", "arch": "a", "seed": 0, "vicinity": "main",
                           "procedure": "paper", "metric": metric}, ["vicinity"])
        assert 100.0 * outcomes[key].mean() == rates(FRAME)[metric], metric
