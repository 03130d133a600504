"""``python -m bench data fetch``: stage datasets under a data root before jobs run."""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench import data as bdata

log = logging.getLogger("bench")


def _fetch_targets(args: argparse.Namespace) -> tuple[list[str], Path, dict[str, int]]:
    """The datasets ``data fetch`` stages, the root it stages them under, and those the config
    asks to write synthetically (``data.synthetic``: images per class)."""
    if args.config is None:
        if args.name is None:
            raise SystemExit("bench data fetch: give a dataset NAME or --config CONFIG")
        return [args.name], args.root if args.root is not None else bdata.default_root(), {}
    if args.root is not None:
        raise SystemExit("bench data fetch: --root goes with NAME; with --config the root is the config's data.root")
    import yaml

    try:
        config = yaml.safe_load(args.config.read_text())
    except (OSError, yaml.YAMLError) as exc:
        raise SystemExit(f"bench data fetch: cannot read config {args.config}: {exc}") from None
    try:
        root, names = Path(config["data"]["root"]), list(dict.fromkeys(config["datasets"]))
    except (TypeError, KeyError) as exc:
        raise SystemExit(f"bench data fetch: config {args.config} lacks data.root or datasets ({exc!r})") from None
    unknown = [n for n in names if n not in bdata.DATASETS]
    if unknown:
        raise SystemExit(f"bench data fetch: config {args.config} names unknown datasets "
                         f"{', '.join(map(str, unknown))}; known: {', '.join(bdata.DATASETS)}")
    return names, root, dict(config["data"].get("synthetic") or {})


def cmd_fetch(args: argparse.Namespace) -> None:
    """Stage each dataset (files of both splits and the decoded cache); one line per dataset on
    stdout, the reason of each failure on stderr, and a non-zero exit if any failed."""
    import sys

    from bench.data.synthetic import write_dataset

    names, root, synthetic = _fetch_targets(args)
    failed = []
    for name in names:
        try:
            if name in synthetic:
                write_dataset(name, root, int(synthetic[name]))
                log.warning("%s under %s is SYNTHETIC (bench.data.synthetic): a check of the mechanics, not data",
                            name, root)
            print(bdata.stage(name, root), flush=True)
        except (bdata.DatasetNotFoundError, bdata.DatasetLockTimeout, FileExistsError) as exc:
            print(f"{name}: NOT STAGED\n{exc}", file=sys.stderr, flush=True)
            failed.append(name)
    if failed:
        raise SystemExit(f"bench data fetch: {len(failed)} of {len(names)} datasets not staged under {root} "
                         f"({', '.join(failed)}); see above")
