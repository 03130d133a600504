"""A restricted unpickler for the CIFAR-10/100 python format: data only, never code.

The CIFAR batches are pickles, and a plain ``pickle.load`` runs whatever callable a file names:
a crafted ``data_batch_1`` in a data root (one marked ``SYNTHETIC``, whose files are loaded
without the official checksums; or any root a job is pointed at) would run its payload in every
job that decodes it. :func:`load_restricted` admits only what the format holds (dicts, lists,
strings, numbers, and numpy arrays and scalars rebuilt by numpy's own reconstructors) and
refuses any other global with :class:`UnsafePickleError`, naming the file and what it asked for.
"""
from __future__ import annotations

import builtins
import codecs
import io
import pickle
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RestrictedUnpickler", "UnsafePickleError", "allowed_globals", "load_restricted"]


class UnsafePickleError(pickle.UnpicklingError):
    """A pickle asked for a global outside the data-only allow-list (a crafted file, most likely).

    Not a RuntimeError on purpose: :mod:`bench.data` reads torchvision's RuntimeError as
    "dataset missing" and would try to download over the file instead of stopping.
    """


_LATIN1 = {"latin1", "latin-1", "iso-8859-1", "iso8859-1", "l1"}


def _encode_latin1(text: str, encoding: str = "utf-8") -> bytes:
    """``_codecs.encode`` as protocol-2 pickles of ``bytes`` use it, for Latin-1 only (a codec
    name is looked up by import, so arbitrary names are refused)."""
    if str(encoding).lower() not in _LATIN1:
        raise UnsafePickleError(f"_codecs.encode with encoding {encoding!r} is not allowed (only latin1)")
    return codecs.encode(text, "latin1")


def allowed_globals() -> dict[tuple[str, str], Callable[..., Any] | type]:
    """The (module, name) pairs a CIFAR-format pickle may name, and the objects they resolve to.

    numpy moved its core to ``numpy._core`` in 2.0; pickles written by numpy 1 (the official
    CIFAR release among them) say ``numpy.core``: both spellings resolve to the same objects.
    The objects are taken from numpy here, never imported by the name a file gives.
    """
    try:
        from numpy._core import multiarray, numeric
    except ImportError:  # numpy 1
        from numpy.core import multiarray, numeric  # type: ignore[no-redef]
    allowed: dict[tuple[str, str], Callable[..., Any] | type] = {("numpy", "ndarray"): np.ndarray,
                                                                 ("numpy", "dtype"): np.dtype}
    for package in ("numpy.core", "numpy._core"):
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        if hasattr(numeric, "_frombuffer"):  # protocol 5 pickles of arrays
            allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    allowed[("_codecs", "encode")] = _encode_latin1
    for name in ("bytearray", "bytes", "complex", "dict", "float", "frozenset", "int", "list", "set", "str", "tuple"):
        allowed[("builtins", name)] = getattr(builtins, name)
    return allowed


class RestrictedUnpickler(pickle.Unpickler):
    """``pickle.Unpickler`` whose ``find_class`` admits only :func:`allowed_globals`.

    ``source`` names the file in the error raised for anything else.
    """

    def __init__(self, file: io.BufferedIOBase, *, source: str | Path = "<pickle>", encoding: str = "latin1"):
        super().__init__(file, encoding=encoding)
        self.source = str(source)
        self._allowed = allowed_globals()

    def find_class(self, module: str, name: str) -> Any:
        # Python 2 pickles spell the builtins module "__builtin__"
        module = "builtins" if module == "__builtin__" else module
        found = self._allowed.get((module, name))
        if found is None:
            raise UnsafePickleError(
                f"refusing to unpickle {self.source}: it asks for {module}.{name}, which the CIFAR python format "
                "never holds (only dicts, lists, strings, numbers and numpy arrays are allowed). The file is not "
                "a CIFAR batch and may be crafted to run code: delete it and stage the dataset again "
                "(python -m bench data fetch)")
        return found

    def persistent_load(self, pid: Any) -> Any:
        raise UnsafePickleError(f"refusing to unpickle {self.source}: it holds a persistent id, which the CIFAR "
                                "python format never holds")


def load_restricted(path: str | Path, *, encoding: str = "latin1") -> Any:
    """The object pickled in the file at ``path``, read with :class:`RestrictedUnpickler`
    (``encoding`` decodes Python 2 strings, as torchvision's CIFAR reader does)."""
    with open(path, "rb") as f:
        return RestrictedUnpickler(f, source=path, encoding=encoding).load()
