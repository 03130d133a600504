"""``python -m bench run``: the DAG through Snakemake, after clearing the lock a killed run of this host
left behind and moving corrupt result files aside; the environment that keeps a local run off SLURM."""
from __future__ import annotations

import argparse
import logging
import os
from collections.abc import Mapping
from pathlib import Path

log = logging.getLogger("bench")


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
    gone is cleared (:mod:`bench.workflow.run_owner`; a lock of a live run, of another host's run or of a
    plain ``snakemake`` is refused, with how to clear it by hand); corrupt result files of the
    config are moved aside so that their jobs rerun (:mod:`bench.workflow.integrity`); this run's owner
    record is written, and removed when Snakemake ends. A local run's Snakemake starts without
    probing SLURM (:func:`snakemake_env`)."""
    import subprocess
    import sys

    from bench.workflow.integrity import option_values, quarantine_corrupt, results_folder, snakemake_workdir
    from bench.workflow.run_owner import lock_refusal, record_owner, release_owner

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
    """Those of the result files ``moved`` aside (:func:`bench.workflow.integrity.quarantine_corrupt`)
    that are outputs of the DAG of the ``snakemake`` command, as paths for ``--forcerun``.

    Why: Snakemake does not rerun a job whose output is missing when what was built from it is
    present; forced, the job reruns and so does everything downstream. Only the DAG's files,
    read from ``snakemake --summary``: a file of a table the config no longer builds has no rule
    (``--forcerun`` would stop Snakemake), and one the run does not need stays unbuilt.
    """
    import subprocess

    from bench.workflow.integrity import NOT_OUTPUTS

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
