"""``reports/<file>``: the paths users open (``snakemake --cores 8 reports/table1.csv``), copies
of one run's ``reports/<run>/<file>``. The top level never mixes runs: publishing a file of
another run than the one there first removes every file the earlier run published, and
``reports/RUN.json`` names the run the top-level files are from (its name and its folder).

Every publish holds an exclusive lock on ``reports/.publish.lock`` (``fcntl.flock``; it dies with
its holder), so the publish jobs of one DAG, run side by side, never race on the switch."""
from __future__ import annotations

import argparse
import contextlib
import fcntl
import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from bench.io import atomic_path, write_json

__all__ = ["STAMP", "current_run", "publish"]

#: the file naming the run whose reports the top level holds
STAMP = "RUN.json"
#: the names the publish rule writes (rules/report.smk): nothing else at the top is ever removed
PUBLISHED = re.compile(r"[^/]+\.(csv|html|png|svg)")


@contextlib.contextmanager
def _locked(folder: Path) -> Iterator[None]:
    folder.mkdir(parents=True, exist_ok=True)
    fd = os.open(folder / ".publish.lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def current_run(top: str | Path) -> dict | None:
    """The stamp of the run whose files ``top`` holds (``{"run", "folder", "files"}``), or None."""
    path = Path(top) / STAMP
    try:
        stamp = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return stamp if isinstance(stamp, dict) and isinstance(stamp.get("files"), list) else None


def publish(source: str | Path, target: str | Path, run: str) -> Path:
    """Copy ``source`` (a file of ``reports/<run>/``) to ``target`` (``reports/<file>``).

    When the top level holds another run's files, they are removed first, all of them (those its
    stamp lists, or, with no stamp, every top-level table, page or figure that has a namesake in a
    folder below: copies from before the stamp existed), so the top level holds one run's files
    only; a file of another kind (a README) is never removed."""
    source, target = Path(source), Path(target)
    top = target.parent
    with _locked(top):
        stamp = current_run(top)
        if stamp is None or stamp["run"] != run:
            if stamp is not None:
                stale = [top / name for name in stamp["files"]]
            else:
                stale = [f for f in top.iterdir() if f.is_file() and PUBLISHED.fullmatch(f.name)
                         and any((d / f.name).is_file() for d in top.iterdir() if d.is_dir())]
            for path in stale:
                if path.name != STAMP and path.parent == top:
                    path.unlink(missing_ok=True)
            stamp = {"run": run, "folder": str(source.parent), "files": []}
        atomic_path(target, lambda tmp: shutil.copyfile(source, tmp))
        stamp["files"] = sorted({*stamp["files"], target.name})
        write_json(stamp, top / STAMP)
    return target


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("source", type=Path)
    p.add_argument("target", type=Path)
    p.add_argument("--run", required=True)
    args = p.parse_args(argv)
    publish(args.source, args.target, args.run)


if __name__ == "__main__":
    main()
