"""Result files: atomic writes (a file is either complete or absent, never half-written, even
across a power cut) and the readers that check a job's result before anything uses it."""
from __future__ import annotations

import json
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import pandas as pd

__all__ = ["CorruptResult", "atomic_path", "check_result", "read_inputs_csv", "read_json_object", "read_result",
           "update_csv", "write_csv", "write_json"]


def atomic_path(path: str | Path, write: Callable[[Path], None]) -> Path:
    """Call ``write(tmp)`` on a temporary file beside ``path``, flush it to the disk, rename it
    into place, then flush the folder (the rename) where the file system allows."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(Path(tmp))
        _fsync_file(Path(tmp))  # the data on disk before the name: a crash never leaves a named empty file
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)
    return path


def _fsync_file(path: Path) -> None:
    """Flush ``path``'s data to the disk."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(folder: Path) -> None:
    """Flush ``folder``'s entries (the rename) to the disk, where the file system allows it
    (some network file systems refuse to open or sync a folder: the rename stands anyway)."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


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


# --- reading results back --------------------------------------------------------------------

_RECOMPUTE = "delete it or run `python -m bench run`, which recomputes it"


class CorruptResult(ValueError):
    """A job's result file that cannot be what the job wrote (truncated, emptied, overwritten);
    the message names the file and how to get it recomputed."""

    def __init__(self, path: str | Path, why: str):
        super().__init__(f"corrupt result file {path}: {why}; {_RECOMPUTE}")
        self.path, self.why = Path(path), why


def read_result(path: str | Path) -> dict:
    """A job's JSON result (``{"rows": [{...}, ...], "provenance": {...}}``, as
    :meth:`bench.jobs.common.Job.write` writes it), checked: it parses, it is an object, its
    ``rows`` is a list of objects and its ``provenance`` an object. Anything else raises
    :class:`CorruptResult` naming the file."""
    return check_result(read_json_object(path), path)


def check_result(data: dict, path: str | Path) -> dict:
    """``data``, the parsed JSON of the result file ``path``, if it has a job result's shape
    (:func:`read_result`); else :class:`CorruptResult`."""
    if not isinstance(data.get("rows"), list) or not all(isinstance(r, dict) for r in data["rows"]):
        raise CorruptResult(path, "no 'rows' list of records")
    if not isinstance(data.get("provenance"), dict):
        raise CorruptResult(path, "no 'provenance' record")
    return data


def read_json_object(path: str | Path) -> dict:
    """The JSON object in the file at ``path``; :class:`CorruptResult` if it does not parse or
    is not an object (every JSON file the jobs write is one)."""
    try:
        data = json.loads(Path(path).read_text())
    except UnicodeDecodeError as exc:
        raise CorruptResult(path, f"not text ({exc.reason})") from None
    except json.JSONDecodeError as exc:
        raise CorruptResult(path, f"not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno})") from None
    if not isinstance(data, dict):
        raise CorruptResult(path, f"a JSON {type(data).__name__}, not an object")
    return data


def read_inputs_csv(path: str | Path, columns: tuple[str, ...] = ()) -> pd.DataFrame:
    """A job's per-input CSV (``certify/<table>_inputs.csv``), checked: it ends with a newline
    (pandas ends every row with one: a file cut mid-row does not), its header is not empty, it
    parses with every row of the header's width, and it holds ``columns``. Anything else raises
    :class:`CorruptResult` naming the file."""
    path = Path(path)
    with open(path, "rb") as f:
        f.seek(0, os.SEEK_END)
        if f.tell() == 0:
            raise CorruptResult(path, "empty file")
        f.seek(-1, os.SEEK_END)
        if f.read(1) != b"\n":
            raise CorruptResult(path, "the last row is cut short (no final newline)")
    try:
        with warnings.catch_warnings():
            # a row wider than the header: pandas would take its first field for an index
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(path, index_col=False)
    except (pd.errors.ParserError, pd.errors.ParserWarning, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        first = str(exc).strip().splitlines()
        raise CorruptResult(path, f"not a valid CSV ({first[0] if first else type(exc).__name__})") from None
    if not len(frame.columns) or any(str(c).startswith("Unnamed: ") for c in frame.columns):
        raise CorruptResult(path, "an empty or partial header")
    missing = [c for c in columns if c not in frame.columns]
    if missing:
        raise CorruptResult(path, f"no column {', '.join(missing)}")
    return frame
