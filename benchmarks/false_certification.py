"""How often each procedure certifies an input it should not: exact, with a Monte-Carlo check.

An input whose vicinity samples get class 0 with probability ``rate`` (class 1 otherwise) is
certified wrongly whenever rate ≤ 1−κ. For each (procedure, budget, rate) cell this script
computes the outcome probabilities exactly, by dynamic programming over the test's stopping
rule (:func:`bench.certification.simulation.exact_rates`), and beside them runs a Monte-Carlo simulation
through the engine's own stopping code (:func:`bench.certification.simulation.simulate`), with the exact
Clopper–Pearson 95% interval of its certified fraction and whether the exact value lies in it.

At rate = 1−κ every certificate is false; a valid test keeps that probability ≤ α at any
budget, while the paper's re-test-after-every-sample procedure does not, and gets worse as the
budget grows. Writes ``reports/bench/false_certification.csv``: the ``exact_*`` columns are
probabilities (``exact_lower_stop``: stopped at the lower boundary, "not robust";
``exact_mass_error``: the rounding error of the dynamic programme), the ``mc_*`` columns the
simulation's fractions; ``--inputs 0`` skips the simulation.

Run: ``make bench`` (or ``python benchmarks/false_certification.py``).
"""
from __future__ import annotations

import argparse
import logging
import time
from pathlib import Path

import pandas as pd
from scipy.stats import binomtest

from bench.certification.engine import CertifyConfig
from bench.certification.simulation import exact_rates, simulate
from bench.io import write_csv

log = logging.getLogger("benchmarks.false_certification")

EXACT_COLUMNS = ("certified", "certified_class0", "certified_class1", "lower_stop", "undecided",
                 "mean_samples", "min_samples_certified", "mass_error")
MC_COLUMNS = ("certified", "certified_class1", "lower_stop", "undecided", "mean_samples",
              "min_samples_certified")


def cell(procedure: str, budget: int, rate: float, inputs: int, kappa: float, alpha: float,
         seed: int, confidence: float = 0.95) -> dict:
    """One row: the exact rates of the cell and, if ``inputs`` > 0, a Monte-Carlo run beside them."""
    cfg = CertifyConfig(kappa=kappa, alpha=alpha, procedure=procedure, budget=budget)
    start = time.perf_counter()
    exact = exact_rates(cfg, rate)
    row: dict = {"procedure": procedure, "budget": budget, "rate": rate, "kappa": kappa, "alpha": alpha}
    row.update({f"exact_{k}": exact[k] for k in EXACT_COLUMNS})
    row["exact_seconds"] = time.perf_counter() - start
    if inputs > 0:
        start = time.perf_counter()
        mc = simulate(cfg, rate, inputs, seed)
        seconds = time.perf_counter() - start
        k = round(mc["certified"] * inputs)
        ci = binomtest(k, inputs).proportion_ci(confidence_level=confidence, method="exact")
        row.update({"mc_inputs": inputs, "mc_seed": seed})
        row.update({f"mc_{c}": mc[c] for c in MC_COLUMNS})
        row.update({
            "mc_certified_ci_low": ci.low,
            "mc_certified_ci_high": ci.high,
            "exact_in_mc_ci": bool(ci.low <= exact["certified"] <= ci.high),
            "mc_seconds": seconds,
        })
    return row


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=4000, help="Monte-Carlo inputs per cell (0: exact only)")
    p.add_argument("--rates", type=float, nargs="+", default=[0.98, 0.99, 0.995, 0.999])
    p.add_argument("--budgets", type=int, nargs="+", default=[1000, 5000, 20000])
    p.add_argument("--procedures", nargs="+", default=["paper", "sprt", "mixture"])
    p.add_argument("--kappa", type=float, default=0.01)
    p.add_argument("--alpha", type=float, default=0.01)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", type=Path, default=Path("reports/bench/false_certification.csv"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    start = time.perf_counter()
    rows = []
    for procedure in args.procedures:
        for budget in args.budgets:
            for rate in args.rates:
                row = cell(procedure, budget, rate, args.inputs, args.kappa, args.alpha, args.seed)
                log.info("%s budget %d rate %g: exact certified %.4f%%%s", procedure, budget, rate,
                         100 * row["exact_certified"],
                         "" if args.inputs <= 0 else
                         f", Monte Carlo {100 * row['mc_certified']:.2f}% "
                         f"[{100 * row['mc_certified_ci_low']:.2f}, {100 * row['mc_certified_ci_high']:.2f}] "
                         f"({row['mc_seconds']:.0f} s)")
                rows.append(row)
    table = pd.DataFrame(rows)
    write_csv(table, args.out)
    summary = f"wrote {args.out} in {time.perf_counter() - start:.0f} s (exact part {table['exact_seconds'].sum():.1f} s"
    if args.inputs > 0:
        summary += (f", Monte Carlo {table['mc_seconds'].sum():.0f} s; exact value inside the "
                    f"Monte-Carlo 95% interval in {int(table['exact_in_mc_ci'].sum())}/{len(table)} cells")
    log.info("%s)\n%s", summary, table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
