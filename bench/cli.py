"""Command line: ``python -m bench <command>`` (or ``bench <command>`` once installed).

- ``demo``: train a small Basic ConvNet with the paper's method (``ours``) on the offline
  Fashion-MNIST data, then certify test inputs with the paper's procedure and a valid one.
- ``methods``: the registered training methods, their architectures and citations.
- ``params``: the parameter count of every architecture beside the paper's Table 5.
- ``data fetch --config CONFIG`` or ``data fetch NAME [--root ROOT]``: stage datasets before
  jobs run (download through torchvision, needs network; copy Fashion-MNIST from the Debian
  package; write the decoded cache), every dataset the config names under its ``data.root``.
- ``run [SNAKEMAKE ARGS]``: the DAG (``snakemake --rerun-incomplete``), after clearing the lock
  a killed ``bench run`` of this host left behind (a power cut, ``kill -9``) when no process of
  it still runs, and moving corrupt result files aside so that their jobs rerun.
"""
from __future__ import annotations

import argparse
import logging
import os
import time
from collections.abc import Mapping
from pathlib import Path

import pandas as pd

from bench import data as bdata
from bench.certify import CertifyConfig, certify, classifier, summarize
from bench.io import write_csv
from bench.method import available_methods, get_method
from bench.models import MODELS, count_parameters, create_model
from bench.paper import paper_table
from bench.stats import clopper_pearson
from bench.train import TrainSpec, accuracy, load_model, resolve_device, train
from bench.vicinity import parse_vicinity

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


def cmd_demo(args: argparse.Namespace) -> None:
    start = time.perf_counter()
    defaults = get_method(args.method).resolve_hparams(bdata.dataset_info(args.dataset))
    hparams = {"n_samples": args.samples} if "n_samples" in defaults else {}
    spec = TrainSpec(dataset=args.dataset, method=args.method, arch=args.arch, seed=args.seed,
                     epochs=args.epochs, vicinity=args.vicinity, hparams=hparams,
                     train_per_class=args.train_per_class, val_per_class=20, device=args.device,
                     data_root=None if args.root is None else str(args.root))
    run_dir = args.out / "model"
    train(spec, run_dir)
    device = resolve_device(args.device)
    model = load_model(run_dir, device)
    test = bdata.load_split(args.dataset, "test", args.root, subset_per_class=args.test_per_class).to(device)
    log.info("clean test accuracy on %d inputs: %.2f%%", len(test), accuracy(model, test))
    vicinity = parse_vicinity(args.vicinity)
    rows = []
    for procedure in args.procedures:
        cfg = CertifyConfig(kappa=args.kappa, alpha=args.alpha, procedure=procedure, budget=args.budget)
        result, clean = certify(classifier(model), test.images, vicinity, test.info.num_classes,
                                cfg, seed=args.seed)
        frame = result.frame(test.labels, clean)
        write_csv(frame, args.out / f"certify_{procedure}.csv")
        rows.append({"method": args.method, "procedure": procedure, "vicinity": args.vicinity,
                     "kappa": args.kappa, "alpha": args.alpha, **summarize(frame)})
    summary = pd.DataFrame(rows)
    for metric in ("standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy"):
        bounds = [clopper_pearson(round(v * n / 100), n) for v, n in zip(summary[metric], summary["inputs"])]
        summary[f"{metric}_ci_low"], summary[f"{metric}_ci_high"] = zip(*bounds)
    write_csv(summary, args.out / "summary.csv")
    log.info("demo finished in %.0f s; results in %s\n%s", time.perf_counter() - start, args.out,
             summary.to_string(index=False, float_format=lambda v: f"{v:.2f}"))


def cmd_params(args: argparse.Namespace) -> None:
    table = parameter_table()
    write_csv(table, args.out)
    log.info("wrote %s\n%s", args.out, table.to_string(index=False))


def cmd_methods(args: argparse.Namespace) -> None:
    if args.recipes:
        from bench.recipes import recipe_table

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

    from bench.synthetic import write_dataset

    names, root, synthetic = _fetch_targets(args)
    failed = []
    for name in names:
        try:
            if name in synthetic:
                write_dataset(name, root, int(synthetic[name]))
                log.warning("%s under %s is SYNTHETIC (bench.synthetic): a check of the mechanics, not data",
                            name, root)
            print(bdata.stage(name, root), flush=True)
        except (bdata.DatasetNotFoundError, bdata.DatasetLockTimeout, FileExistsError) as exc:
            print(f"{name}: NOT STAGED\n{exc}", file=sys.stderr, flush=True)
            failed.append(name)
    if failed:
        raise SystemExit(f"bench data fetch: {len(failed)} of {len(names)} datasets not staged under {root} "
                         f"({', '.join(failed)}); see above")


def _live_snakemake(workdir: Path) -> list[int]:
    """PIDs of other Snakemake processes working in ``workdir`` (they own its lock)."""
    import psutil

    me, found = os.getpid(), []
    for proc in psutil.process_iter(["pid", "cmdline"]):
        try:
            cmd = " ".join(proc.info["cmdline"] or [])
            if proc.info["pid"] != me and "snakemake" in cmd and "bench run" not in cmd \
                    and Path(proc.cwd()).resolve() == workdir.resolve():
                found.append(proc.info["pid"])
        except (psutil.NoSuchProcess, psutil.AccessDenied, OSError):
            continue
    return found


def cmd_run(args: argparse.Namespace) -> None:
    """Run the DAG (``snakemake --rerun-incomplete``), recovering from a killed run.

    Before Snakemake starts: a lock left by a killed ``bench run`` of this host whose process is
    gone is cleared (:mod:`bench.run_owner`; a lock of a live run, of another host's run or of a
    plain ``snakemake`` is refused, with how to clear it by hand); corrupt result files of the
    config are moved aside so that their jobs rerun (:mod:`bench.integrity`); this run's owner
    record is written, and removed when Snakemake ends. A local run's Snakemake starts without
    probing SLURM (:func:`snakemake_env`)."""
    import subprocess
    import sys

    from bench.integrity import option_values, quarantine_corrupt, results_folder, snakemake_workdir
    from bench.run_owner import lock_refusal, record_owner, release_owner

    snakemake = [sys.executable, "-m", "snakemake", *args.snakemake_args]
    env = snakemake_env(args.snakemake_args, os.environ)
    workdir = Path(".")
    locks = workdir / ".snakemake" / "locks"
    if locks.is_dir() and any(locks.iterdir()):
        live = _live_snakemake(Path.cwd())
        if live:
            raise SystemExit(f"another Snakemake run (pid {', '.join(map(str, live))}) is working in this directory; "
                             "wait for it to finish or stop it")
        refusal = lock_refusal(workdir)
        if refusal:
            raise SystemExit(f"bench run: {refusal}")
        log.warning("clearing a stale lock left by a killed run of this host (no Snakemake process holds it)")
        subprocess.run([*snakemake, "--unlock"], check=True, capture_output=True, env=env)
    folder = results_folder(args.snakemake_args, workdir)
    forced = _rerun_moved(quarantine_corrupt(folder), snakemake, env, snakemake_workdir(args.snakemake_args, workdir)) \
        if folder is not None else []
    if forced:  # the user's own --forcerun values too: a second --forcerun replaces the first
        forced = ["--forcerun", *option_values(args.snakemake_args, ("--forcerun", "-R")), *forced]
    owner = record_owner(workdir)
    try:
        code = subprocess.run([*snakemake, *forced, "--rerun-incomplete"], env=env).returncode
    finally:
        release_owner(workdir, owner)
    raise SystemExit(code)


def _rerun_moved(moved: list[Path], snakemake: list[str], env: Mapping[str, str], base: Path) -> list[str]:
    """Those of the result files ``moved`` aside (:func:`bench.integrity.quarantine_corrupt`)
    that are outputs of the DAG of the ``snakemake`` command, as paths for ``--forcerun``.

    Why: Snakemake does not rerun a job whose output is missing when what was built from it is
    present; forced, the job reruns and so does everything downstream. Only the DAG's files,
    read from ``snakemake --summary``: a file of a table the config no longer builds has no rule
    (``--forcerun`` would stop Snakemake), and one the run does not need stays unbuilt.
    """
    import subprocess

    from bench.integrity import NOT_OUTPUTS

    if not moved:
        return []
    wanted = {os.path.normpath(os.path.relpath(p, base)): p for p in moved if not any(p.match(n) for n in NOT_OUTPUTS)}
    summary = subprocess.run([*snakemake, "--summary", "--rerun-incomplete"], capture_output=True, text=True, env=env)
    if summary.returncode != 0:
        log.warning("could not list the DAG's files (snakemake --summary failed): the %d file(s) moved aside are "
                    "recomputed only where a job that needs them runs", len(moved))
        return []
    in_dag = {os.path.normpath(line.split("\t", 1)[0]) for line in summary.stdout.splitlines()[1:] if line.strip()}
    forced = sorted(f for f in wanted if f in in_dag)
    log.warning("%d corrupt result file(s) moved aside; %d of them this run needs, forced to rerun: %s",
                len(moved), len(forced), ", ".join(forced) or "none")
    return forced


#: the options that send jobs to an executor other than the local one (a cluster's, say)
_SUBMITTING = ("--executor", "--profile", "--workflow-profile")


def snakemake_env(snakemake_args: list[str], environ: Mapping[str, str], workdir: Path = Path(".")) -> dict[str, str]:
    """The environment of a ``bench run``'s Snakemake: ``environ``, plus ``SLURM_CONF=/dev/null``
    when the jobs surely run locally.

    Why: Snakemake imports every installed executor plugin when it starts, and the SLURM plugin
    (snakemake-executor-plugin-slurm, ``job_status_query.get_min_job_age``) then runs
    ``scontrol show config`` with a 10-second timeout. Where the SLURM clients are installed but
    no controller answers (this project's test machine, a workstation off its cluster's network)
    that costs 9-10 s on every start; an empty config makes ``scontrol`` fail at once, and a
    local run never calls SLURM. Any sign of another executor keeps the user's configuration:
    ``-e``/``--executor``, ``--profile``, ``--workflow-profile`` (or an abbreviation of them,
    which Snakemake's parser accepts), ``$SNAKEMAKE_PROFILE``, or a ``profiles/default`` that
    Snakemake would read by itself."""
    env = dict(environ)
    submits = bool(environ.get("SNAKEMAKE_PROFILE")) or (workdir / "profiles" / "default").is_dir()
    for arg in snakemake_args:
        name = arg.split("=", 1)[0]
        if (name.startswith("-e") and not name.startswith("--")) or \
                (len(name) > 2 and name.startswith("--") and any(o.startswith(name) for o in _SUBMITTING)):
            submits = True
    if not submits:
        env["SLURM_CONF"] = os.devnull
    return env


def _user_model(spec: str, weights: Path | None):
    """``module:name`` (or ``path/to/file.py:name``): an ``nn.Module``, or a callable returning
    one, from user code; ``weights``: a safetensors state dict loaded into it (never unpickled)."""
    import importlib
    import importlib.util

    import torch

    where, _, name = spec.rpartition(":")
    if not where or not name:
        raise SystemExit(f"bench: --model {spec!r}: give module:name or path/to/file.py:name")
    if where.endswith(".py"):
        loader = importlib.util.spec_from_file_location(Path(where).stem, where)
        if loader is None or not Path(where).exists():
            raise SystemExit(f"bench: --model: no such file {where}")
        module = importlib.util.module_from_spec(loader)
        loader.loader.exec_module(module)
    else:
        module = importlib.import_module(where)
    try:
        obj = getattr(module, name)
    except AttributeError:
        raise SystemExit(f"bench: --model: {where} has no {name!r}") from None
    model = obj if isinstance(obj, torch.nn.Module) else obj()
    if not isinstance(model, torch.nn.Module):
        raise SystemExit(f"bench: --model: {spec} is not an nn.Module nor returns one (got {type(model).__name__})")
    if weights is not None:
        from safetensors.torch import load_file

        from bench.external import check_fit

        tensors = load_file(str(weights))
        check_fit(model, tensors, f"--weights {weights} for --model {spec}")
        model.load_state_dict(tensors)
    return model.eval()


def cmd_certify(args: argparse.Namespace) -> None:
    """Certify a user's model on a dataset split (:func:`bench.api.certify`); metrics with their
    intervals on stdout, the per-input frame and the metrics as CSV under ``--out``."""
    from bench import api

    model = _user_model(args.model, args.weights)
    split = bdata.load_split(args.dataset, args.split, args.root, subset_per_class=args.per_class or None)
    result = api.certify(model, split, vicinity=args.vicinity, kappa=args.kappa, alpha=args.alpha,
                         procedure=args.procedure, budget=args.budget, seed=args.seed, progress=True)
    if args.out:
        write_csv(result.frame, args.out / "certificates.csv")
        write_csv(result.metrics.reset_index(), args.out / "metrics.csv")
    print(result.metrics.round(2).to_string())


def cmd_plan(args: argparse.Namespace) -> None:
    """Jobs per kind, estimated hours and peak memory of a config's DAG on a measured device
    (:mod:`bench.estimate`); ``--jobs`` writes the per-job estimates."""
    from bench import estimate

    config = estimate.load_config(args.config)
    try:
        frame = estimate.estimate(config, args.device, args.throughput)
    except (FileNotFoundError, ValueError) as exc:
        raise SystemExit(f"bench plan: {exc}") from None
    table = estimate.summary(frame, config["resources"].get("activation_memory_mb"), retries=args.retries)
    from bench.io import write_csv

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


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="bench", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("-v", "--verbose", action="store_true", help="debug logging")
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
                       description="Certify any nn.Module from your code: --model module:name or file.py:name "
                                   "(a module, or a callable returning one), optionally --weights (safetensors).")
    c.add_argument("--model", required=True, help="module:name or path/to/file.py:name")
    c.add_argument("--weights", type=Path, default=None, help="a safetensors state dict for the model")
    c.add_argument("--dataset", default="fashion_mnist", choices=list(bdata.DATASETS))
    c.add_argument("--split", default="test", choices=["test", "val"])
    c.add_argument("--per-class", type=int, default=10, help="images per class (default 10; 0: the whole split)")
    c.add_argument("--root", type=Path, default=None, help="data root (default $BENCH_DATA or ./data)")
    c.add_argument("--vicinity", default="linf:0.1", help="e.g. linf:0.1 (pixel units of [0,1] images), rotate:35")
    c.add_argument("--kappa", type=float, default=0.01)
    c.add_argument("--alpha", type=float, default=0.01)
    c.add_argument("--procedure", default="mixture", choices=["paper", "mixture", "sprt"],
                   help="mixture (default) and sprt are valid sequential tests; paper is the paper's procedure")
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
    return p


def main(argv: list[str] | None = None) -> None:
    import sys

    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["run"] and argv[1:2] not in (["-h"], ["--help"]):
        # everything after `run` belongs to snakemake, options included
        args = argparse.Namespace(verbose=False, func=cmd_run, snakemake_args=argv[1:])
    else:
        args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s", datefmt="%H:%M:%S")
    args.func(args)
