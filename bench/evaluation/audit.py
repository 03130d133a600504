"""Certificate audit (issue 5, item 2): are certified inputs really robust at level κ?

A certificate says that at least 1−κ of the vicinity U(B(x)) is classified as the certified
class. For a sample of certified inputs, :func:`audit` draws a large fresh sample of the
vicinity (independent of the one that certified it), estimates that class's rate with an exact
Clopper–Pearson interval, and calls the certificate *wrong* when the whole interval lies below
1−κ. With the paper's procedure, which re-tests after every sample, some certificates are
expected to be wrong far more often than α (docs/certification.md: false-certification table); with a valid
sequential test, at most about α of them.
"""
from __future__ import annotations

from collections.abc import Callable

import pandas as pd
import torch

from bench.certification.vicinity import Vicinity

__all__ = ["audit"]


def audit(predict: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor, certified: torch.Tensor,
          vicinity: Vicinity, kappa: float, samples: int = 20_000, confidence: float = 0.999,
          seed: int = 0, batch_size: int = 256) -> pd.DataFrame:
    """Audit the certificates of ``images`` (N×C×H×W in [0,1]) for classes ``certified`` (N).

    Returns one row per input: ``samples``, ``hits`` (samples classified as the certified class),
    ``rate``, the two-sided exact interval ``ci_low``/``ci_high`` at ``confidence``, and
    ``wrong``: ``ci_high < 1 − κ``.
    """
    from scipy.stats import binomtest

    gen = torch.Generator(device=images.device).manual_seed(seed)
    rows = []
    for i in range(len(images)):
        hits = 0
        for start in range(0, samples, batch_size):
            m = min(batch_size, samples - start)
            preds = predict(vicinity.flat(images[i : i + 1], m, gen))
            hits += int((preds.cpu() == int(certified[i])).sum())
        ci = binomtest(hits, samples).proportion_ci(confidence_level=confidence, method="exact")
        rows.append({"samples": samples, "hits": hits, "rate": hits / samples, "ci_low": ci.low,
                     "ci_high": ci.high, "wrong": bool(ci.high < 1 - kappa)})
    return pd.DataFrame(rows)
