"""The sequential tests' threshold tables of one certification job: rebuilt per block, or once.

A model's certification job (``certify.group: model``) certifies its inputs block after block
(``certify.block_inputs``), each block under every run of its tables (a test: procedure, κ, α,
on a vicinity). Every run builds its test, and a test's thresholds for n = 0 … budget take scipy
a fraction of a second at the paper's budget of 20,000. Since they are computed once per setting
and process (:data:`bench.certification.sequential._THRESHOLDS`), a job builds each distinct test once; before,
every block rebuilt every run's. This times one job's builds both ways, for the CIFAR-10 models
of ``--configs``, in interleaved rounds, and writes ``reports/bench/threshold_tables.csv``: per
config, the runs per block, the blocks, the distinct tests, and the median seconds each way.

Run: ``python benchmarks/threshold_tables.py`` (about a minute).
"""
from __future__ import annotations

import argparse
import logging
import math
import statistics
import time
from pathlib import Path

import pandas as pd

from bench.certification import sequential
from bench.certification.engine import Certifier, CertifyConfig
from bench.data import dataset_info
from bench.io import update_csv
from bench.jobs.certify import _setting
from bench.tables import enabled_tables
from bench.workflow import estimate, plan

log = logging.getLogger("benchmarks.threshold_tables")


def runs_of(config: dict, dataset: str) -> list[tuple]:
    """One block's runs: every (vicinity, test) its tables certify by sampling, a test told from
    another as the certification job does (:func:`bench.jobs.certify._setting`)."""
    vicinities = plan.vicinities(config, dataset)
    settings = [s for t in enabled_tables(config) if hasattr(t, "settings") for s in t.settings(config, vicinities)]
    return sorted({(s["spec"], *_setting(s)) for s in settings if not s.get("deterministic")})


def build(runs: list[tuple], blocks: int, budget: int, once: bool) -> float:
    """Seconds to build every run's test for ``blocks`` blocks, with tables kept or not."""
    sequential._THRESHOLDS.clear()
    start = time.perf_counter()
    for _ in range(blocks):
        for _, procedure, kappa, alpha in runs:
            if not once:
                sequential._THRESHOLDS.clear()
            Certifier(CertifyConfig(kappa=kappa, alpha=alpha, procedure=procedure, budget=budget), 10)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--configs", nargs="+", type=Path, default=[Path("config/gpu-check.yaml")])
    parser.add_argument("--dataset", default="cifar10")
    parser.add_argument("--blocks", type=int, default=None, help="default: the config's test inputs over block_inputs")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/threshold_tables.csv"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    rows = []
    for path in args.configs:
        config = estimate.load_config(path)
        c = config["certify"]
        runs, budget = runs_of(config, args.dataset), int(c["budget"])
        if args.blocks is None and c.get("test_per_class") is None:
            parser.error(f"{path} certifies the whole test set: give --blocks")
        per_class, classes = c.get("test_per_class"), dataset_info(args.dataset).num_classes
        blocks = args.blocks or math.ceil(classes * int(per_class or 0) / int(c.get("block_inputs", 1000)))
        build(runs[:1], 1, budget, once=False)  # warm-up: scipy's import is not a table's cost
        seconds = {"rebuilt per block": [], "once per test": []}
        for _ in range(args.rounds):
            seconds["rebuilt per block"].append(build(runs, blocks, budget, once=False))
            seconds["once per test"].append(build(runs, blocks, budget, once=True))
        median = {k: statistics.median(v) for k, v in seconds.items()}
        rows.append({"device": "cpu", "config": str(path), "dataset": args.dataset, "budget": budget,
                     "runs_per_block": len(runs), "blocks": blocks,
                     "distinct_tests": len({r[1:] for r in runs}),
                     "rebuilt_s": median["rebuilt per block"], "once_s": median["once per test"],
                     "saved_s": median["rebuilt per block"] - median["once per test"], "rounds": args.rounds})
        log.info("%s: %s", path, rows[-1])
    return update_csv(pd.DataFrame(rows), args.out, keys=("device", "config"))


if __name__ == "__main__":
    main()
