"""The exclusive per-dataset lock under a data root, around downloads, staging and decoding.

Whatever writes under a data root for a dataset (a torchvision download, the copy from the
Debian package, the decoded cache: :mod:`bench.data`) holds ``fcntl.flock`` on
``<root>/.<dataset>.lock``, so DAG jobs that start together never download or stage the same
dataset at once: the first does it, the others log that they wait and for whom, then find the
files in place. The wait is logged every minute and bounded by ``$BENCH_DATA_LOCK_TIMEOUT``
seconds (default two hours; 0 waits forever), after which :class:`DatasetLockTimeout` is raised.
"""
from __future__ import annotations

import contextlib
import errno
import fcntl
import logging
import os
import socket
import threading
import time
from pathlib import Path

log = logging.getLogger(__name__)

__all__ = ["DatasetLockTimeout", "dataset_lock"]


class DatasetLockTimeout(TimeoutError):
    """Waiting for another process's download or staging of a dataset took too long."""



#: seconds between attempts to take a held lock, and between "still waiting" log lines
LOCK_POLL_S = 0.5
LOCK_LOG_EVERY_S = 60.0
#: default bound on the wait for a lock; ``$BENCH_DATA_LOCK_TIMEOUT`` (seconds, 0 = no bound) overrides
DEFAULT_LOCK_TIMEOUT_S = 2 * 3600.0

_held = threading.local()  # lock files this thread holds: re-entering the lock does not block


def _lock_timeout() -> float:
    raw = os.environ.get("BENCH_DATA_LOCK_TIMEOUT", "").strip()
    if not raw:
        return DEFAULT_LOCK_TIMEOUT_S
    try:
        return float(raw)
    except ValueError:
        log.warning("BENCH_DATA_LOCK_TIMEOUT=%r is not a number of seconds; using %.0f s", raw, DEFAULT_LOCK_TIMEOUT_S)
        return DEFAULT_LOCK_TIMEOUT_S


def _lock_path(name: str, root: Path) -> Path:
    return Path(root) / f".{name}.lock"


def _holder(path: Path) -> str:
    """Who holds a lock, as its holder wrote it into the lock file ("another process" if unknown)."""
    try:
        text = path.read_text().strip()
    except OSError:
        text = ""
    return text or "another process"


def _note(fd: int, what: str) -> None:
    """Write who holds the lock and what it does into the lock file, for the waiters' log lines."""
    text = f"pid {os.getpid()} on {socket.gethostname()}, {what} since {time.strftime('%H:%M:%S')}\n"
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, text.encode(), 0)
    except OSError:
        pass


def _flock(fd: int) -> bool | None:
    """Try to take the lock: True if taken, False if held elsewhere, None if locks are unsupported."""
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        return True
    except BlockingIOError:
        return False
    except OSError as exc:
        if exc.errno in (errno.ENOLCK, errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):
            return None
        raise


@contextlib.contextmanager
def dataset_lock(name: str, root: str | Path, what: str = "staging", timeout: float | None = None):
    """Hold the exclusive lock of dataset ``name`` under ``root`` (``<root>/.<name>.lock``).

    ``fcntl.flock`` on the lock file: it excludes other processes (on this node and, on NFSv4 and
    most cluster file systems, on others) and other threads (each opens the file anew), and it
    dies with its holder, so a killed job leaves no stale lock. Re-entrant within a thread. A
    process that finds the lock held logs that it waits, for which dataset and for whom, logs
    again every :data:`LOCK_LOG_EVERY_S` seconds and gives up after ``timeout`` seconds
    (default ``$BENCH_DATA_LOCK_TIMEOUT`` or two hours; 0 or less waits forever) with
    :class:`DatasetLockTimeout`. Where no lock file can be created (a read-only root) or the
    file system has no locks, it warns and goes on without the lock.
    """
    root = Path(root)
    path = _lock_path(name, root)
    held: dict = _held.__dict__.setdefault("fds", {})
    key = os.path.abspath(path)
    if key in held:  # this thread holds it already
        _note(held[key], what)
        yield path
        return
    try:
        root.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        log.warning("cannot create the lock file %s (%s); going on without the lock", path, exc)
        yield path
        return
    try:
        got = _flock(fd)
        if got is False:
            limit = _lock_timeout() if timeout is None else timeout
            start = time.monotonic()
            log.info("dataset '%s' under %s is being downloaded or staged by %s; waiting for it to finish "
                     "(lock %s, %s)", name, root, _holder(path), path,
                     f"for at most {limit:.0f} s" if limit > 0 else "without a time limit")
            next_log = start + LOCK_LOG_EVERY_S
            while got is False:
                time.sleep(LOCK_POLL_S)
                got = _flock(fd)
                now = time.monotonic()
                if got is False and limit > 0 and now - start >= limit:
                    raise DatasetLockTimeout(
                        f"gave up on dataset '{name}' under {root} after waiting {now - start:.0f} s for "
                        f"{_holder(path)} to finish downloading or staging it (lock {path}). The lock dies with "
                        "its holder, so that process is alive (possibly on another node); let it finish, or "
                        "stop it, or raise $BENCH_DATA_LOCK_TIMEOUT (seconds, 0 = no limit)")
                if got is False and now >= next_log:
                    log.info("still waiting for dataset '%s' under %s: %s holds lock %s (%.0f s so far)",
                             name, root, _holder(path), path, now - start)
                    next_log += LOCK_LOG_EVERY_S
            log.info("dataset '%s' under %s: lock taken after waiting %.1f s", name, root, time.monotonic() - start)
        if got is None:
            log.warning("the file system of %s does not support flock; going on without the lock", path)
            yield path
            return
        held[key] = fd
        try:
            _note(fd, what)
            yield path
        finally:
            del held[key]
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)
