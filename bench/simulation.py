"""Simulation of the certification procedures on inputs with a known majority rate.

An input whose vicinity samples get class 0 with probability ``rate`` (class 1 otherwise) is
certified wrongly whenever ``rate ≤ 1−κ``. Running the engine's own stopping code
(:class:`bench.certify.Certifier`) on such Bernoulli streams measures each procedure's
false-certification rate and its sample cost, without a model.
"""
from __future__ import annotations

from dataclasses import replace

import pandas as pd
import torch

from bench.certify import OUTCOMES, CertifyConfig, Certifier

__all__ = ["bernoulli_draw", "simulate"]


def bernoulli_draw(rate: float, seed: int):
    """A ``draw`` callback whose samples are class 0 with probability ``rate``, else class 1."""
    gen = torch.Generator().manual_seed(seed)

    def draw(inputs: torch.Tensor, sizes: torch.Tensor) -> torch.Tensor:
        u = torch.rand(int(sizes.sum()), generator=gen, dtype=torch.float64)
        return (u >= rate).long()

    return draw


def simulate(config: CertifyConfig, rate: float, n_inputs: int, seed: int = 0) -> dict:
    """Certify ``n_inputs`` simulated inputs of majority rate ``rate``; summary as a dict.

    ``certified`` is the fraction certified (a false certification rate when rate ≤ 1−κ).
    The valid procedures test class 0, fixed in advance; the paper's tests the running majority.
    """
    certifier = Certifier(config, num_classes=2)
    result = certifier.run(n_inputs, bernoulli_draw(rate, seed),
                           candidate=torch.zeros(n_inputs, dtype=torch.long), progress=False)
    outcome = pd.Series([OUTCOMES[i] for i in result.outcome.tolist()])
    certified = outcome.eq("certified")
    certified_samples = result.samples[result.outcome == OUTCOMES.index("certified")]
    return {
        "procedure": config.procedure,
        "rate": rate,
        "kappa": config.kappa,
        "alpha": config.alpha,
        "budget": config.budget,
        "inputs": n_inputs,
        "certified": float(certified.mean()),
        "not_robust": float(outcome.eq("not_robust").mean()),
        "undecided": float(outcome.eq("undecided").mean()),
        "min_samples_certified": int(certified_samples.min()) if len(certified_samples) else None,
        "mean_samples": float(result.samples.float().mean()),
    }


def study(rates: list[float], procedures: list[str], budgets: list[int], n_inputs: int,
          kappa: float = 0.01, alpha: float = 0.01, seed: int = 0) -> pd.DataFrame:
    """A grid of :func:`simulate` runs, one row per (procedure, budget, rate)."""
    rows = []
    for procedure in procedures:
        for budget in budgets:
            cfg = CertifyConfig(kappa=kappa, alpha=alpha, procedure=procedure, budget=budget)
            for rate in rates:
                rows.append(simulate(replace(cfg), rate, n_inputs, seed))
    return pd.DataFrame(rows)
