"""The owner record of ``python -m bench run``, and whether a Snakemake lock may be cleared.

A hard-killed run (``kill -9``, a power cut) leaves Snakemake's lock in ``.snakemake/locks``;
``bench run`` clears it only when it can know that the run holding it is dead. Process tables
say so only for this host, and a working directory on a shared file system can be used from
several hosts. So ``bench run`` records itself (host, pid, the process's start time) in
:data:`OWNER_FILE` before it starts Snakemake and removes the record when Snakemake ends; a
lock is cleared only when that record names this host and its process is gone
(:func:`lock_refusal`). A lock of another host's run, or of a plain ``snakemake`` (no record),
is left to the user, with the command that clears it.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

from bench.io import CorruptResult, read_json_object, write_json

__all__ = ["OWNER_FILE", "Owner", "lock_refusal", "read_owner", "record_owner", "release_owner"]

log = logging.getLogger(__name__)

#: the record, relative to the working directory (beside Snakemake's own lock folder)
OWNER_FILE = Path(".snakemake") / "bench-run-owner.json"
_UNLOCK_HINT = ("If you are sure that run is dead, clear the lock by hand: `snakemake --unlock` with the same "
                "--snakefile/--configfile arguments, then run `python -m bench run` again.")


@dataclass(frozen=True)
class Owner:
    """A ``bench run`` process: its host, its pid and its start time (seconds since the epoch,
    as ``psutil`` gives it: with the pid it tells the process from a later one given that pid)."""

    host: str
    pid: int
    started: float

    @classmethod
    def this_process(cls) -> "Owner":
        return cls(socket.gethostname(), os.getpid(), psutil.Process().create_time())

    def on_this_host(self) -> bool:
        return self.host == socket.gethostname()

    def alive(self) -> bool:
        """Whether this owner's process still runs (asked of this host's process table: only
        meaningful when :meth:`on_this_host`)."""
        try:
            return abs(psutil.Process(self.pid).create_time() - self.started) < 1.0
        except (psutil.NoSuchProcess, psutil.AccessDenied):
            return False

    def describe(self) -> str:
        started = time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(self.started))
        return f"host {self.host}, pid {self.pid}, started {started}"


def read_owner(workdir: Path) -> Owner | None:
    """The owner record in ``workdir``; None when there is none or it cannot be read."""
    path = workdir / OWNER_FILE
    if not path.is_file():
        return None
    try:
        data = read_json_object(path)
        return Owner(str(data["host"]), int(data["pid"]), float(data["started"]))
    except (CorruptResult, OSError, KeyError, TypeError, ValueError):
        log.warning("unreadable bench run owner record %s: ignored", path)
        return None


def record_owner(workdir: Path) -> Owner:
    """Record this process as the owner of the run in ``workdir`` (atomically) and return it."""
    owner = Owner.this_process()
    write_json(asdict(owner), workdir / OWNER_FILE)
    return owner


def release_owner(workdir: Path, owner: Owner) -> None:
    """Remove the record of ``owner`` from ``workdir``, unless another run has replaced it."""
    if read_owner(workdir) == owner:
        (workdir / OWNER_FILE).unlink(missing_ok=True)


def lock_refusal(workdir: Path) -> str | None:
    """Why the Snakemake lock in ``workdir`` must not be cleared, or None when it may be: the
    owner record names this host and its process is gone. (The caller has checked already that
    no Snakemake process of this host works in ``workdir``.)"""
    owner = read_owner(workdir)
    if owner is None:
        return (f"Snakemake's lock in {workdir.resolve()} was not left by `python -m bench run` (there is no "
                f"{OWNER_FILE}): a plain `snakemake` holds it or left it, perhaps on another host sharing this "
                f"file system, and this host cannot tell whether that run is dead. {_UNLOCK_HINT}")
    if not owner.on_this_host():
        return (f"Snakemake's lock in {workdir.resolve()} belongs to a `python -m bench run` on {owner.describe()}; "
                f"it may still be running there, and this host ({socket.gethostname()}) cannot tell. {_UNLOCK_HINT}")
    if owner.alive() and owner.pid != os.getpid():
        return (f"a `python -m bench run` ({owner.describe()}) is still running in {workdir.resolve()}; "
                "wait for it to finish or stop it")
    return None
