"""What a Snakemake start costs, with and without the SLURM executor plugin's probe.

Snakemake imports every installed executor plugin when it starts; the SLURM plugin
(snakemake-executor-plugin-slurm) then runs ``scontrol show config`` with a 10-second timeout.
Where the SLURM clients are installed and no controller answers, every start waits for it.
``bench run`` starts a local run's Snakemake with ``SLURM_CONF=/dev/null``
(:func:`bench.cli.snakemake_env`), which makes ``scontrol`` fail at once.

Each round times, side by side, a fresh Python importing Snakemake's job scheduler (the import
that loads the plugins) in the environment as it is and in ``bench run``'s local environment;
``--repeats`` rounds, interleaved. Writes ``reports/bench/snakemake_start.csv``: per setting the
median, minimum and maximum seconds, and the ratio of the medians.

Run: ``python benchmarks/snakemake_start.py`` (about a minute where the probe waits).
"""
from __future__ import annotations

import argparse
import logging
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd

from bench.cli import snakemake_env
from bench.io import write_csv

log = logging.getLogger("benchmarks.snakemake_start")
IMPORT = "import snakemake.scheduling.job_scheduler"


def seconds(env: dict[str, str]) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-c", IMPORT], env=env, check=True, capture_output=True)
    return time.perf_counter() - start


def main(argv: list[str] | None = None) -> pd.DataFrame:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--out", type=Path, default=Path("reports/bench/snakemake_start.csv"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    settings = {"environment as it is": dict(os.environ), "bench run, local (SLURM_CONF=/dev/null)":
                snakemake_env([], os.environ)}
    times: dict[str, list[float]] = {name: [] for name in settings}
    for round_ in range(args.repeats):
        for name, env in settings.items():
            times[name].append(seconds(env))
        log.info("round %d/%d: %s", round_ + 1, args.repeats, {k: round(v[-1], 2) for k, v in times.items()})
    base = statistics.median(times["environment as it is"])
    rows = [{"setting": name, "median_s": statistics.median(t), "min_s": min(t), "max_s": max(t),
             "ratio_to_as_is": statistics.median(t) / base, "repeats": args.repeats,
             "scontrol": shutil.which("scontrol") or "not installed",
             "SLURM_CONF": os.environ.get("SLURM_CONF", "unset")} for name, t in times.items()]
    table = pd.DataFrame(rows)
    write_csv(table, args.out)
    log.info("wrote %s\n%s", args.out, table.to_string(index=False))
    return table


if __name__ == "__main__":
    main()
