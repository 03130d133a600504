"""One registry style for the declarative objects a plugin may add (job kinds, claims): register
under a key, list the keys, get by key with an error that names the known ones (as timm's
``register_model`` / ``list_models`` / ``create_model``)."""
from __future__ import annotations

from typing import Generic, TypeVar

__all__ = ["Registry"]

T = TypeVar("T")


class Registry(Generic[T]):
    """Objects of one kind by key; ``what`` names the kind in errors (``"job kind"``)."""

    def __init__(self, what: str):
        self.what = what
        self.items: dict[str, T] = {}

    def add(self, key: str, item: T) -> T:
        """Register ``item`` under ``key``; the same key for another object is refused."""
        if key in self.items and self.items[key] != item:
            raise ValueError(f"{self.what} '{key}' is registered twice")
        self.items[key] = item
        return item

    def keys(self) -> list[str]:
        return list(self.items)

    def get(self, key: str) -> T:
        try:
            return self.items[key]
        except KeyError:
            raise ValueError(f"no such {self.what}: '{key}'; known: {', '.join(self.items)}") from None
