"""The jobs a config's DAG plans, as ``snakemake -n`` lists them, in a normalised form: one line
per job (rule, inputs, outputs, log, benchmark, wildcards, resources; sorted), so that two plans
compare line by line. ``tests/plans/<config>.jobs.gz`` holds the plans of the shipped configs;
``tests/test_paths.py`` checks that the DAG still plans exactly them.

A change that means to change the plan (a new job kind, a new axis of the layout) writes them
anew, and its commit shows what changed::

    .venv/bin/python tests/plans.py --write          # every shipped config
    .venv/bin/python tests/plans.py --write smoke    # one
"""
from __future__ import annotations

import argparse
import gzip
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOLDEN = Path(__file__).resolve().parent / "plans"
CONFIGS = ("config", "smoke", "reference", "paper")
FIELDS = ("input", "output", "log", "benchmark", "wildcards", "resources")


def planned_jobs(config: Path) -> list[str]:
    """The normalised job lines of ``snakemake -n`` for ``config``, run in an empty directory."""
    with tempfile.TemporaryDirectory() as workdir:
        out = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "-d", workdir,
                              "-n", "--configfile", str(config)], capture_output=True, text=True, cwd=workdir,
                             timeout=600)
    if out.returncode != 0:
        raise RuntimeError(f"snakemake -n failed for {config}:\n{out.stdout[-2000:]}\n{out.stderr[-3000:]}")
    jobs: list[dict[str, str]] = []
    for line in out.stdout.splitlines():
        if m := re.match(r"^(?:local)?(?:rule|checkpoint) (\w+):$", line):
            jobs.append({"rule": m.group(1)})
        elif jobs and (m := re.match(r"^    (\w+): (.*)$", line)) and m.group(1) in FIELDS:
            value = m.group(2)
            if m.group(1) == "resources":  # tmpdir is the machine's
                value = ", ".join(p for p in value.split(", ") if not p.startswith("tmpdir="))
            elif m.group(1) in ("input", "output", "log"):
                value = ", ".join(sorted(value.split(", ")))
            jobs[-1][m.group(1)] = value
    return sorted(" | ".join(f"{k}={job[k]}" for k in sorted(job)) for job in jobs)


def golden(name: str) -> list[str]:
    return gzip.decompress((GOLDEN / f"{name}.jobs.gz").read_bytes()).decode().splitlines()


def write(name: str) -> int:
    lines = planned_jobs(ROOT / "config" / f"{name}.yaml")
    GOLDEN.mkdir(exist_ok=True)
    # mtime=0: the same plan gives the same bytes, so an unchanged plan is no change in git
    (GOLDEN / f"{name}.jobs.gz").write_bytes(gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0))
    return len(lines)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--write", action="store_true", help="write tests/plans/<config>.jobs.gz")
    parser.add_argument("configs", nargs="*", default=list(CONFIGS))
    args = parser.parse_args()
    for c in args.configs:
        if args.write:
            print(f"{c}: {write(c)} jobs")
        else:
            print("\n".join(planned_jobs(ROOT / "config" / f"{c}.yaml")))
