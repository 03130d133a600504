"""The metrics of the paper's Table 8, defined once, per input and as rates.

From a per-input frame (``label``, ``clean_prediction``, ``prediction``, ``outcome``), as the
certification engine (:meth:`bench.certification.engine.CertifyResult.frame`) and the sound bounds
(:func:`bench.evaluation.native.bound_certify_inputs`) write it:

- **standard accuracy**: the clean input's argmax prediction h(x) = G_x is the label;
- **certified robustness rate**: the prediction is certified (probabilistically robust at κ, α);
- **certified robust accuracy**: certified, and the certified prediction is the label.

The tables' intervals and paired tests (:mod:`bench.tables`), the jobs' summaries
(:func:`bench.certification.engine.summarize`) and the API's certificates (:func:`bench.api.certify`) all
read them from here.
"""
from __future__ import annotations

import pandas as pd

__all__ = ["METRICS", "per_input", "rates"]

#: Table 8's metrics, in the paper's order
METRICS = ("standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy")


def per_input(frame: pd.DataFrame, labelled: bool = True) -> dict[str, pd.Series]:
    """Each metric's per-input booleans (``labelled=False``: only the certified robustness rate,
    for inputs without labels)."""
    certified = frame["outcome"].eq("certified")
    if not labelled:
        return {"certified_robustness_rate": certified}
    return {"standard_accuracy": frame["clean_prediction"].eq(frame["label"]),
            "certified_robustness_rate": certified,
            "certified_robust_accuracy": certified & frame["prediction"].eq(frame["label"])}


def rates(frame: pd.DataFrame) -> dict[str, float]:
    """Each metric in percent of the frame's inputs."""
    return {m: 100.0 * float(v.mean()) for m, v in per_input(frame).items()}
