"""Where a result came from: the code that can change it, the packages, the machine.

:func:`code_stamp` is the hash of the code of a set of modules and of every module of this
project they import, transitively (imports inside functions included: the closure is read
from the source with :mod:`ast`, not from what happens to be imported). Each DAG job passes the
stamp of the code its kind runs to Snakemake as a ``params:`` value, so that editing that code
reruns exactly the jobs whose result it can change: editing ``bench/evaluation/attacks.py`` reruns the
attacks but not the trainings; editing ``methods/ours.py`` reruns ``ours``'s jobs only. What is
hashed is what executes: each module's syntax tree without its docstrings, so editing a comment
or a docstring, or moving code to other lines, reruns nothing.

:func:`record` is the provenance block every job output carries: settings, code stamps, git
commit, package versions, device, seed, host and time.
"""
from __future__ import annotations

import ast
import functools
import hashlib
import importlib.util
import os
import platform
import socket
import subprocess
import sys
from datetime import datetime, timezone
from importlib import metadata
from pathlib import Path
from typing import Any

__all__ = ["PACKAGES", "code_stamp", "executed_digest", "git_commit", "module_closure", "package_versions", "record"]

#: the project's own top-level packages: their modules enter a stamp's closure
PROJECT = ("bench", "methods")
#: the packages whose versions can change a result, recorded in every output
PACKAGES = ("torch", "torchvision", "torchattacks", "auto_LiRPA", "numpy", "scipy", "pandas", "snakemake")


@functools.cache
def _origin(module: str) -> Path | None:
    """The source file of ``module``: a project module, or a plugin loaded from a file."""
    loaded = sys.modules.get(module)
    if loaded is not None and getattr(loaded, "__file__", None):
        return Path(loaded.__file__)
    try:
        spec = importlib.util.find_spec(module)
    except (ImportError, ValueError):
        return None
    return Path(spec.origin) if spec and spec.origin and spec.origin.endswith(".py") else None


_DOCUMENTED = (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)


@functools.lru_cache(maxsize=None)
def _analysed(source: bytes, filename: str = "<unknown>"
              ) -> tuple[bytes, tuple[tuple[int, str | None, tuple[str, ...]], ...]]:
    """The digest of what a module's ``source`` executes, and its import statements.

    The digest is SHA-256 of the syntax tree (:func:`ast.dump`, without line numbers) once the
    docstrings (the first statement of a module, class or function body, when it is a string
    constant) are removed; comments are never in the tree. So an edit of a comment or a
    docstring, or of layout, keeps the digest, and any other edit changes it. (A string
    statement elsewhere in a body is left in: it executes nothing either, but is rare.)
    The imports are ``(level, module, names)`` for each ``import``/``from ... import``
    statement, anywhere in the module. Cached on the content: a stamp parses each file once
    per process however many job kinds share it."""
    tree = ast.parse(source, filename=filename)
    imports = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imports.append((0, None, tuple(alias.name for alias in node.names)))
        elif isinstance(node, ast.ImportFrom):
            imports.append((node.level, node.module, tuple(alias.name for alias in node.names)))
        if isinstance(node, _DOCUMENTED) and node.body:
            first = node.body[0]
            if (isinstance(first, ast.Expr) and isinstance(first.value, ast.Constant)
                    and isinstance(first.value.value, str)):
                node.body = node.body[1:]  # ast.walk has already queued the old body: nothing is skipped
    digest = hashlib.sha256(ast.dump(tree, annotate_fields=True, include_attributes=False).encode()).digest()
    return digest, tuple(imports)


def executed_digest(path: Path) -> bytes:
    """The digest of what the Python file ``path`` executes (its syntax tree without docstrings:
    :func:`_analysed`), the unit of every code stamp."""
    return _analysed(path.read_bytes(), str(path))[0]


def _imports(path: Path, module: str) -> set[str]:
    """The project modules ``path`` imports (anywhere in it), as dotted names."""
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found: set[str] = set()
    for level, base, names in _analysed(path.read_bytes(), str(path))[1]:
        if base is None and not level:  # import a.b, c
            found.update(names)
            continue
        base = base or ""
        if level:  # relative import
            parent = package.split(".")[: len(package.split(".")) - level + 1]
            base = ".".join([*parent, base] if base else parent)
        found.add(base)
        found.update(f"{base}.{name}" for name in names)  # `from pkg import module`
    return {m for m in found if m.split(".")[0] in PROJECT and _origin(m) is not None}


def module_closure(modules: tuple[str, ...] | list[str]) -> dict[str, Path]:
    """Every project module reachable from ``modules`` by imports, with its source file."""
    todo, seen = list(modules), {}
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        path = _origin(name)
        if path is None:
            raise ValueError(f"cannot find the source of module '{name}' for its code stamp")
        seen[name] = path
        todo += sorted(_imports(path, name) - set(seen))
    return dict(sorted(seen.items()))


def code_stamp(*modules: str) -> str:
    """12 hex digits of SHA-256 over the code of ``modules`` and their project imports.

    Each module enters with its name and the digest of its syntax tree without docstrings
    (:func:`_analysed`), so a checkout elsewhere gives the same stamp, an edit of comments,
    docstrings or layout gives the same stamp, and any other change of a module in the closure
    gives another. (The tree's form is Python's: another Python version may give other stamps.)"""
    h = hashlib.sha256()
    for name, path in module_closure(tuple(modules)).items():
        h.update(name.encode() + b"\0" + _analysed(path.read_bytes(), str(path))[0] + b"\0")
    return h.hexdigest()[:12]


@functools.cache
def git_commit() -> str:
    """The repository's commit, ``+dirty`` when bench/ or methods/ differ from it."""
    root = Path(__file__).resolve().parents[2]
    try:
        commit = subprocess.run(["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True,
                                check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--", *PROJECT], cwd=root, capture_output=True,
                               text=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return commit + ("+dirty" if dirty else "")


@functools.cache
def package_versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for pkg in PACKAGES:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            out[pkg] = "not installed"
    return out


def record(settings: dict[str, Any], code: dict[str, str], device: Any = None, seed: int | None = None) -> dict:
    """The provenance block of one job output."""
    import torch

    dev = str(device) if device is not None else "none"
    gpu_peak = None
    if dev.startswith("cuda") and torch.cuda.is_available():
        dev += f" ({torch.cuda.get_device_name(torch.device(dev))})"
        # the job's peak so far (outputs are written at its end): what its memory budget must cover
        gpu_peak = round(torch.cuda.max_memory_allocated(torch.device(device)) / 2**20, 1)
    return {
        "settings": settings, "code": code, "git_commit": git_commit(), "packages": package_versions(),
        "device": dev, "gpu_peak_mib": gpu_peak, "torch_threads": torch.get_num_threads(), "seed": seed,
        "host": socket.gethostname(), "cpus": os.cpu_count(), "platform": platform.platform(),
        "created": datetime.now(timezone.utc).isoformat(timespec="seconds"),
    }
