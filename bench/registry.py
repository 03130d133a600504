"""One registry style for every declarative object a plugin may add: methods, architectures,
datasets, vicinities' tests (procedures), attacks, tables, job kinds and claims.

Each concept keeps one :class:`Registry` (``METHODS``, ``MODELS``, ``TABLES`` …) and the trio of
functions timm made familiar (``register_model`` / ``list_models`` / ``create_model``): a
``register_*`` decorator or call, a ``list_*`` / ``available_*`` of the keys, and a ``get_*`` /
``create_*`` whose error for an unknown key names the known ones. A registry reads as a
read-only mapping (``key in METHODS``, ``METHODS.items()``, ``METHODS.get(key)``); only
:meth:`Registry.add` and :meth:`Registry.remove` change it.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import TypeVar

__all__ = ["Registry", "UnknownKey"]

T = TypeVar("T")


class UnknownKey(KeyError, ValueError):
    """A key no object is registered under; a ``ValueError`` (what callers catch) and a
    ``KeyError`` (what a mapping raises), whose message names the known keys."""

    def __str__(self) -> str:
        return str(self.args[0])


class Registry(Mapping[str, T]):
    """Objects of one kind by key; ``what`` names the kind in errors (``"job kind"``), ``hint``
    ends the unknown-key error (``", or timm:<name> …"``)."""

    def __init__(self, what: str, hint: str = ""):
        self.what = what
        self.hint = hint
        self._items: dict[str, T] = {}

    def add(self, key: str, item: T, *, replace: bool = False) -> T:
        """Register ``item`` under ``key``. The same key for another object is refused, unless
        ``replace`` (a plugin's object defined anew, as an external model's method on each
        config), or unless both are one definition imported twice (same module and name)."""
        old = self._items.get(key)
        if old is not None and old != item and not replace and not _same_definition(old, item):
            raise ValueError(f"{self.what} '{key}' is registered twice ({_where(old)}, {_where(item)})")
        self._items[key] = item
        return item

    def remove(self, key: str) -> T:
        """Unregister ``key`` (a test's or a plugin's temporary object) and return its object."""
        item = self[key]
        del self._items[key]
        return item

    def __getitem__(self, key: str) -> T:
        try:
            return self._items[key]
        except (KeyError, TypeError):
            raise UnknownKey(f"unknown {self.what} '{key}'; known: {', '.join(self._items)}{self.hint}") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}: {', '.join(self._items)})"


def _where(item: object) -> str:
    return getattr(item, "__module__", None) or type(item).__module__


def _same_definition(old: object, new: object) -> bool:
    """Whether two classes or functions are one definition imported twice (a module run as a
    script and imported, a plugin loaded again): same module, same qualified name."""
    if not (callable(old) and callable(new) and hasattr(old, "__qualname__") and hasattr(new, "__qualname__")):
        return False
    return (old.__module__, old.__qualname__) == (new.__module__, new.__qualname__)
