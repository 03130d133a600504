"""Simulation study: how often each procedure certifies an input it should not.

Inputs whose vicinity samples agree with probability ``rate`` are simulated (no model) and run
through the engine's own stopping code (:mod:`bench.simulation`). At rate = 1−κ every
certificate is false; a valid test keeps that fraction ≤ α at any budget, while the paper's
re-test-after-every-sample procedure does not, and gets worse as the budget grows. Writes
``reports/bench/false_certification.csv``.

Run: ``make bench`` (or ``python benchmarks/false_certification.py``).
"""
from __future__ import annotations

import argparse
import logging
import math
import time
from pathlib import Path

from bench.io import write_csv
from bench.simulation import study

log = logging.getLogger("benchmarks.false_certification")


def main(argv: list[str] | None = None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--inputs", type=int, default=4000)
    p.add_argument("--rates", type=float, nargs="+", default=[0.98, 0.99, 0.995, 0.999])
    p.add_argument("--budgets", type=int, nargs="+", default=[1000, 5000, 20000])
    p.add_argument("--procedures", nargs="+", default=["paper", "sprt", "mixture"])
    p.add_argument("--out", type=Path, default=Path("reports/bench/false_certification.csv"))
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    start = time.perf_counter()
    table = study(args.rates, args.procedures, args.budgets, args.inputs, kappa=0.01, alpha=0.01, seed=0)
    # Monte-Carlo standard error of each certified fraction
    table["certified_se"] = [math.sqrt(c * (1 - c) / args.inputs) for c in table["certified"]]
    write_csv(table, args.out)
    log.info("wrote %s in %.0f s\n%s", args.out, time.perf_counter() - start, table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
