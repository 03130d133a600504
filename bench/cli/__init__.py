"""Command line: ``python -m bench <command>`` (or ``bench <command>`` once installed).

- ``demo``: train a small Basic ConvNet with the paper's method (``ours``) on the offline
  Fashion-MNIST data, then certify test inputs with the paper's procedure and a valid one.
- ``methods``: the registered training methods, their architectures and citations.
- ``params``: the parameter count of every architecture beside the paper's Table 5.
- ``data fetch --config CONFIG`` or ``data fetch NAME [--root ROOT]``: stage datasets before
  jobs run (download through torchvision, needs network; copy Fashion-MNIST from the Debian
  package; write the decoded cache), every dataset the config names under its ``data.root``.
- ``certify --model module:name``: certify your own model on a dataset split.
- ``plan --estimate CONFIG``: a config's jobs, hours and peak memory on a measured device.
- ``run [SNAKEMAKE ARGS]``: the DAG (``snakemake --rerun-incomplete``), after clearing the lock
  a killed ``bench run`` of this host left behind (a power cut, ``kill -9``) when no process of
  it still runs, and moving corrupt result files aside so that their jobs rerun.

One module per command (``bench/cli/<command>.py``); this one builds the parser and dispatches.
An error in what was given (a missing file, bad weights, a model that raises, a bad setting)
prints one line, ``bench: <message>``, and exits with status 1; ``--debug`` (before or after the
command) shows the full traceback instead.
"""
from __future__ import annotations

import argparse
import logging
from pathlib import Path

from bench import data as bdata
from bench.cli.certify import PROCEDURE_NOTES, cmd_certify
from bench.cli.demo import cmd_demo
from bench.cli.fetch import cmd_fetch
from bench.cli.info import cmd_methods, cmd_params, parameter_table
from bench.cli.plan import cmd_plan
from bench.cli.run import cmd_run, snakemake_env
from bench.models import MODELS

__all__ = ["build_parser", "error_line", "expected_errors", "main", "parameter_table", "snakemake_env"]

log = logging.getLogger("bench")


_DEBUG_HELP = "on an error, show the full traceback instead of one line"

_CERTIFY_DESCRIPTION = (
    "Certify any nn.Module from your code: --model module:name or file.py:name (a module, or a callable "
    "returning one), optionally --weights (a safetensors state dict; a pickled .pt/.pth is refused with "
    "the two lines that convert it). An input x is certified when a sequential test at level α (--alpha) "
    "accepts that more than a 1−κ share (--kappa) of its vicinity B(x) (--vicinity) gets the class the "
    "model gives x. Procedures (--procedure): "
    + "; ".join(f"{name}: {note}" for name, note in PROCEDURE_NOTES.items())
    + ". The output states the vicinity, κ, α and the procedure used.")


def build_parser() -> argparse.ArgumentParser:
    """The parser of every command but ``run``'s arguments (they go to Snakemake as given)."""
    p = argparse.ArgumentParser(prog="bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    p.add_argument("--debug", action="store_true", help=_DEBUG_HELP)
    sub = p.add_subparsers(dest="command", required=True)

    d = sub.add_parser("demo", help="train a small model offline and certify it")
    d.add_argument("--dataset", default="fashion_mnist", choices=list(bdata.DATASETS))
    d.add_argument("--method", default="ours", help="a registered method (default: ours)")
    d.add_argument("--arch", default="convnet", choices=list(MODELS))
    d.add_argument("--vicinity", default="linf:0.1", help="e.g. linf:0.1, l2:0.5, rotate:35")
    d.add_argument("--train-per-class", type=int, default=300)
    d.add_argument("--test-per-class", type=int, default=20)
    d.add_argument("--epochs", type=int, default=2)
    d.add_argument("--samples", type=int, default=4, help="vicinity samples per training input (n)")
    d.add_argument("--kappa", type=float, default=0.01)
    d.add_argument("--alpha", type=float, default=0.01)
    d.add_argument("--budget", type=int, default=20_000)
    d.add_argument("--procedures", nargs="+", default=["paper", "mixture"])
    d.add_argument("--seed", type=int, default=0)
    d.add_argument("--device", default=None, help="cpu, cuda, cuda:1 (default: cuda if available)")
    d.add_argument("--root", type=Path, default=None, help="data root (default $BENCH_DATA or ./data)")
    d.add_argument("--out", type=Path, default=Path("reports/demo"))
    d.set_defaults(func=cmd_demo)

    m = sub.add_parser("params", help="parameter counts beside the paper's Table 5")
    m.add_argument("--out", type=Path, default=Path("reports/params.csv"))
    m.set_defaults(func=cmd_params)

    me = sub.add_parser("methods", help="list the registered training methods, or their recipes with sources")
    me.add_argument("--recipes", action="store_true", help="every training setting of each method with its source")
    me.add_argument("--method", nargs="*", default=None, help="only these methods (with --recipes)")
    me.add_argument("--out", type=Path, default=None, help="also write the recipe table to this CSV")
    me.set_defaults(func=cmd_methods)

    data = sub.add_parser("data", help="dataset utilities")
    dsub = data.add_subparsers(dest="data_command", required=True)
    f = dsub.add_parser("fetch", help="stage datasets before jobs run (download, Debian copy, decoded cache)",
                        description="Stage datasets under a data root so that jobs (on offline compute nodes, "
                                    "say) find them: download through torchvision (needs network), copy "
                                    "Fashion-MNIST from the Debian package, write the decoded cache.")
    which = f.add_mutually_exclusive_group()
    which.add_argument("name", nargs="?", choices=list(bdata.DATASETS), help="one dataset")
    which.add_argument("--config", type=Path, default=None,
                       help="a YAML config: every dataset it names, under its data.root")
    f.add_argument("--root", type=Path, default=None, help="with NAME: data root (default $BENCH_DATA or ./data)")
    f.set_defaults(func=cmd_fetch)
    c = sub.add_parser("certify", help="certify your own model (bench.api.certify) on a dataset split",
                       description=_CERTIFY_DESCRIPTION)
    c.add_argument("--model", required=True, help="module:name or path/to/file.py:name")
    c.add_argument("--weights", type=Path, default=None, help="a safetensors state dict for the model")
    c.add_argument("--dataset", default="fashion_mnist", choices=list(bdata.DATASETS))
    c.add_argument("--split", default="test", choices=["test", "val"])
    c.add_argument("--per-class", type=int, default=10, help="images per class (default 10; 0: the whole split)")
    c.add_argument("--root", type=Path, default=None, help="data root (default $BENCH_DATA or ./data)")
    c.add_argument("--vicinity", default="linf:0.1", help="e.g. linf:0.1 (pixel units of [0,1] images), rotate:35")
    c.add_argument("--kappa", type=float, default=0.01,
                   help="κ: the share of the vicinity that may get another class (default 0.01)")
    c.add_argument("--alpha", type=float, default=0.01,
                   help="α: the test's level, the most often a non-robust input may be certified (default 0.01)")
    c.add_argument("--procedure", default="mixture", choices=["paper", "mixture", "sprt"],
                   help="mixture (default) and sprt are valid sequential tests at level α; paper is the "
                        "paper's procedure, which is not a valid sequential test at the stated α")
    c.add_argument("--budget", type=int, default=20_000)
    c.add_argument("--seed", type=int, default=0)
    c.add_argument("--out", type=Path, default=None, help="write certificates.csv and metrics.csv here")
    c.set_defaults(func=cmd_certify)
    pl = sub.add_parser("plan", help="estimate a config's jobs, hours and peak memory on a measured device")
    pl.add_argument("--estimate", dest="config", type=Path, required=True, metavar="CONFIG",
                    help="a YAML config, e.g. config/paper.yaml")
    pl.add_argument("--device", default="cpu",
                    help="a device measured in the throughput file (substring of its name, e.g. cpu, H100)")
    pl.add_argument("--throughput", type=Path, default=Path("reports/bench/throughput.csv"),
                    help="measured images/s per architecture (benchmarks/throughput.py)")
    pl.add_argument("--retries", type=int, default=1, help="submissions a resumable job may take beyond the "
                                                            "first (the SLURM profile's retries)")
    pl.add_argument("--jobs", type=Path, default=None, help="write the per-job estimates to this CSV")
    pl.add_argument("--out", type=Path, default=None, help="write the summary per job kind to this CSV")
    pl.add_argument("--measured", type=Path, default=None, metavar="JOB_TIMES",
                    help="a run's reports/job_times.csv: print measured against estimated per kind, and keep "
                         "only the measured jobs, with both, in --jobs")
    pl.set_defaults(func=cmd_plan)
    r = sub.add_parser("run", help="run the DAG, recovering from a killed run (arguments go to snakemake)")
    r.add_argument("snakemake_args", nargs=argparse.REMAINDER, help="e.g. --cores 2 reports/table1.csv")
    r.set_defaults(func=cmd_run)
    # --debug after the command too (`bench certify ... --debug`); SUPPRESS keeps the one given before it
    for command in (d, m, me, f, c, pl):
        command.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG_HELP)
    return p


def expected_errors() -> tuple[type[Exception], ...]:
    """The errors that what a user gives causes (files, weights, settings, their own code), which
    ``main`` prints as one line: OSError (FileNotFoundError, a dataset not found), ValueError
    (bench's checks), ImportError (ModuleNotFoundError), RuntimeError (torch: a state dict that
    does not load, a forward that fails, out of memory), TypeError and safetensors' errors."""
    from safetensors import SafetensorError  # here: only an error being reported needs it

    return (OSError, ValueError, ImportError, RuntimeError, TypeError, SafetensorError)


def error_line(error: BaseException) -> str:
    """What ``main`` prints for an expected error: ``bench: <message>`` and how to see the
    traceback (after a message of several lines, such as the conversion of a pickle, on a line
    of its own). bench's own errors (ValueError, OSError, and any raised ``from`` another, whose
    message names the cause) read as they are; the others, mostly raised by torch or a user's
    code, are prefixed by their type, which says what went wrong."""
    message = str(error) or type(error).__name__
    if not isinstance(error, (ValueError, OSError)) and error.__cause__ is None:
        message = f"{type(error).__name__}: {message}"
    hint = "(--debug shows the traceback)"
    return f"bench: {message}" + (f"\n{hint}" if "\n" in message else f" {hint}")


def main(argv: list[str] | None = None) -> None:
    """Parse ``argv`` (default: the command line) and run its command. An expected error
    (:func:`expected_errors`) prints :func:`error_line` on stderr and exits with status 1, unless
    ``--debug`` was given: then it propagates with its traceback. Any other error propagates."""
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"] and argv[1:2] not in (["-h"], ["--help"]):
        # everything after `run` belongs to snakemake, options included
        args = argparse.Namespace(verbose=False, debug=False, func=cmd_run, snakemake_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    try:
        args.func(args)
    except Exception as error:
        if args.debug or not isinstance(error, expected_errors()):
            raise
        print(error_line(error), file=sys.stderr, flush=True)
        raise SystemExit(1) from None
