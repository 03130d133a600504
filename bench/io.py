"""Atomic writes: a result file is either complete or absent, never half-written."""
from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path

import pandas as pd

__all__ = ["atomic_path", "update_csv", "write_csv", "write_json"]


def atomic_path(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, then rename it into place."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def write_csv(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write ``frame`` to CSV atomically (no index column)."""
    return atomic_path(path, lambda tmp: frame.to_csv(tmp, index=False))


def update_csv(frame: pd.DataFrame, path: str | Path, keys: tuple[str, ...] = ("device",)) -> pd.DataFrame:
    """Write ``frame`` into the CSV at ``path`` (atomically), replacing the rows whose ``keys``
    match one of ``frame``'s and keeping the others: one file holds every device (and, with
    more keys, every procedure) a benchmark has measured, each measured where it could be. A
    file without one of the key columns, of an earlier format, is replaced. Returns what it wrote."""
    path = Path(path)
    if path.exists():
        old = pd.read_csv(path)
        if all(k in old for k in keys):
            measured = pd.MultiIndex.from_frame(old[list(keys)]).isin(pd.MultiIndex.from_frame(frame[list(keys)]))
            frame = pd.concat([old[~measured], frame], ignore_index=True)
    write_csv(frame, path)
    return frame


def write_json(obj, path: str | Path) -> Path:
    """Write ``obj`` as indented JSON atomically."""
    return atomic_path(path, lambda tmp: tmp.write_text(json.dumps(obj, indent=2, default=str) + "\n"))
