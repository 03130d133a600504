"""Result files checked before a run: each corrupt one is moved aside, so Snakemake recomputes it.

A result file cut short (a full disk, a power cut on a file system that lost the unsynced data,
a stray ``truncate``) still has its name, so Snakemake takes it for done and the aggregation
that reads it fails. ``python -m bench run`` calls :func:`quarantine_corrupt` on the config's
results folder (:func:`results_folder`) before it starts Snakemake: every job result
(``*.json``, ``*_inputs.csv``) is read back with the checking readers of :mod:`bench.io`, and
each one that fails is renamed ``<name>.corrupt`` (kept for a look, logged). A missing file
alone does not make Snakemake rerun its job when what was built from it is present (Snakemake
takes a missing intermediate file for one that was cleaned up), so ``bench run`` also forces
the jobs of the moved files that its DAG holds (``--forcerun``): they rerun, and so does
everything downstream of them.
"""
from __future__ import annotations

import logging
import os
import re
from collections.abc import Sequence
from pathlib import Path

import yaml

from bench.io import CorruptResult, check_result, read_inputs_csv, read_json_object
from bench.paths import file_kind, results_dir

__all__ = ["CORRUPT_SUFFIX", "NOT_OUTPUTS", "check_result_file", "option_values", "quarantine_corrupt",
           "results_folder", "snakemake_workdir"]

log = logging.getLogger(__name__)

#: what a corrupt file's name gets on being moved aside
CORRUPT_SUFFIX = ".corrupt"
#: result-folder JSON that no rule declares as output (a job's resume state): nothing to rerun for them
NOT_OUTPUTS = ("*.progress.json", "checkpoint.json")
#: the outputs of a job that hold result rows (``{"rows": [...], "provenance": {...}}``; bench.paths)
_ROW_KINDS = {"certify", "attack", "audit", "native", "validation"}
#: what config/schema.yaml admits as a run name (one folder name: the scan never leaves results/)
RUN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]*")
#: Snakemake's default config (the Snakefile's ``configfile:``), when the command line names none
DEFAULT_CONFIG = Path("config/config.yaml")


def check_result_file(path: Path) -> None:
    """Raise :class:`bench.io.CorruptResult` if the result file at ``path`` is corrupt.

    A job's rows (``certify/``, ``attacks/``, the audit, native and validation results, or any
    JSON with a ``rows`` key) go through :func:`bench.io.read_result`; other JSON (the model's
    and checkpoint's metadata, progress files) must parse as an object; ``*_inputs.csv``
    through :func:`bench.io.read_inputs_csv`.
    """
    kind = file_kind(path.as_posix())
    if kind == "certify_inputs":
        read_inputs_csv(path)
        return
    data = read_json_object(path)
    if path.name.endswith(".progress.json"):  # a job's resume state beside its output, not rows
        return
    if kind in _ROW_KINDS or "rows" in data:
        check_result(data, path)


def _result_files(folder: Path) -> list[Path]:
    """Every JSON file under ``folder`` and every certification's per-input CSV."""
    found = [p for p in folder.rglob("*.json") if p.is_file()]
    found += [p for p in folder.rglob("*.csv") if p.is_file() and file_kind(p.as_posix()) == "certify_inputs"]
    return sorted(found)


def quarantine_corrupt(folder: Path) -> list[Path]:
    """Check every result file under ``folder`` (:func:`check_result_file`) and rename each
    corrupt one to ``<name>.corrupt`` (replacing an older one), with a warning naming it.
    Returns the paths moved aside (their old names); nothing when ``folder`` does not exist."""
    if not folder.is_dir():
        return []
    moved = []
    for path in _result_files(folder):
        try:
            check_result_file(path)
        except FileNotFoundError:  # gone since the listing (a job's progress file, say)
            continue
        except CorruptResult as exc:
            aside = path.with_name(path.name + CORRUPT_SUFFIX)
            os.replace(path, aside)
            log.warning("corrupt result file %s (%s): moved aside to %s, so that its job runs again",
                        path, exc.why, aside.name)
            moved.append(path)
    return moved


def option_values(args: Sequence[str], names: tuple[str, ...]) -> list[str]:
    """The values given to the long options ``names`` in Snakemake's command line ``args``
    (``--opt a b``, ``--opt=a``; Snakemake's list options take values up to the next option)."""
    values: list[str] = []
    taking = False
    for arg in args:
        if arg.startswith("-"):
            name, eq, value = arg.partition("=")
            taking = name in names
            if taking and eq:
                values.append(value)
                taking = False
        elif taking:
            values.append(arg)
    return values


def snakemake_workdir(snakemake_args: Sequence[str], workdir: Path = Path(".")) -> Path:
    """The folder a Snakemake command line started in ``workdir`` works in (``--directory``)."""
    directory = option_values(snakemake_args, ("--directory", "-d"))
    return workdir / directory[-1] if directory else workdir


def results_folder(snakemake_args: Sequence[str], workdir: Path = Path(".")) -> Path | None:
    """The results folder (``results/<run>``) of the config a Snakemake command line runs.

    The run name is the config's ``run`` key: of ``--config run=...`` if given, else of the last
    ``--configfile`` that sets it, else of Snakemake's default ``config/config.yaml``; the folder
    is under ``--directory`` if given. None when no run name can be read (Snakemake then fails
    on the config itself).
    """
    base = snakemake_workdir(snakemake_args, workdir)
    run = None
    for item in option_values(snakemake_args, ("--config", "-C")):
        key, _, value = item.partition("=")
        if key == "run" and value:
            run = value
    if run is None:
        given = option_values(snakemake_args, ("--configfile", "--configfiles"))
        # Snakemake reads a command line's config files from where it starts, its default one
        # (the Snakefile's configfile:) from its working directory
        for path in [workdir / f for f in given] or [base / DEFAULT_CONFIG]:
            try:
                config = yaml.safe_load(path.read_text())
            except (OSError, yaml.YAMLError):
                continue
            if isinstance(config, dict) and config.get("run"):
                run = str(config["run"])
    if run is None or not RUN_NAME.fullmatch(run):  # no config, or a name the schema refuses: nothing to scan
        return None
    return base / results_dir(run)
