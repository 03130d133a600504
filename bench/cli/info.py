"""``python -m bench params`` and ``methods``: the architectures' sizes beside the paper's Table 5, the
registered methods and their recipes."""
from __future__ import annotations

import argparse
import logging

import pandas as pd

from bench import data as bdata
from bench.io import write_csv
from bench.models import MODELS, count_parameters, create_model
from bench.paper import paper_table
from bench.training import available_methods, get_method

log = logging.getLogger("bench")


def parameter_table() -> pd.DataFrame:
    """Parameters of each architecture as built here, beside the count the paper states."""
    paper = paper_table(5).set_index("architecture")["parameters"]
    rows = []
    for arch in MODELS:
        row = {"architecture": arch}
        for ds in ("mnist", "cifar10", "cifar100"):
            row[f"built_{ds}"] = count_parameters(create_model(arch, bdata.DATASETS[ds]))
        row["paper"] = int(paper.get(arch, 0)) or None
        rows.append(row)
    return pd.DataFrame(rows)


def cmd_params(args: argparse.Namespace) -> None:
    table = parameter_table()
    write_csv(table, args.out)
    log.info("wrote %s\n%s", args.out, table.to_string(index=False))


def cmd_methods(args: argparse.Namespace) -> None:
    if args.recipes:
        from bench.report.recipes import recipe_table

        table = recipe_table(args.method or None)
        if args.out:
            from bench.io import write_csv

            write_csv(table, args.out)
        with pd.option_context("display.max_colwidth", 110, "display.width", 250):
            print(table.to_string(index=False))
        return
    rows = [{"key": k, "name": get_method(k).name, "vote": get_method(k).vote,
             "architectures": " ".join(get_method(k).architectures), "citation": get_method(k).citation}
            for k in available_methods()]
    log.info("registered methods:\n%s", pd.DataFrame(rows).to_string(index=False))
