"""``python -m bench plan``: a config's jobs, hours and peak memory estimated on a measured device."""
from __future__ import annotations

import argparse
import logging

from bench.io import write_csv

log = logging.getLogger("bench")


def cmd_plan(args: argparse.Namespace) -> None:
    """Jobs per kind, estimated hours and peak memory of a config's DAG on a measured device
    (:mod:`bench.workflow.estimate`); ``--jobs`` writes the per-job estimates."""
    from bench.workflow import estimate

    config = estimate.load_config(args.config)
    try:
        frame = estimate.estimate(config, args.device, args.throughput)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"bench plan: {exc}") from None
    table = estimate.summary(frame, config["resources"].get("activation_memory_mb"), retries=args.retries)

    if args.measured:
        import pandas as pd

        times = pd.read_csv(args.measured)
        both = estimate.compare(frame, times)
        if both.empty:
            raise SystemExit(f"bench plan: no job of {args.measured} is a job of {args.config}'s DAG: is it that "
                             "config's reports/<run>/job_times.csv?")
        missing = sorted(set(times["job"]) - set(both["job"]))
        if missing:
            log.warning("%d measured jobs are not in the estimate (e.g. %s)", len(missing), missing[0])
        frame = both
        print(f"measured ({args.measured}) against estimated, {len(frame)} jobs, seconds:")
        print(estimate.compare_by_kind(frame).to_string(float_format=lambda x: f"{x:,.3g}"))
    if args.jobs:
        write_csv(frame, args.jobs)
    if args.out:
        write_csv(table.assign(config=str(args.config), device=frame["device"].iloc[0]), args.out)
    log.info("%s on %s (work counted at the config's settings; hours from %s)", args.config,
             frame["device"].iloc[0], args.throughput)
    print(table.to_string(index=False, float_format=lambda x: f"{x:,.3g}"))
