"""Where the registered methods come from: the package ``methods`` (every module of it,
imported once on the first lookup) and plugins a config or a user names (a dotted module name or
a ``.py`` file), and the lookup of a method by key."""
from __future__ import annotations

import importlib
import importlib.util
import pkgutil
import sys
from pathlib import Path
from types import ModuleType

from bench.training.method import METHODS, Method

__all__ = ["available_methods", "get_method", "load_plugin"]

_discovered = False


def _discover() -> None:
    """Import every module of the ``methods`` package once, so that each registers itself."""
    global _discovered
    if _discovered:
        return
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"methods.{info.name}")
    _discovered = True


def load_plugin(spec: str) -> ModuleType:
    """Import user code, a dotted module name or a path to a ``.py`` file, and return the module:
    a method plugin (its ``@register_method`` classes register themselves on import) or the
    module of a user's model (``python -m bench certify --model file.py:name``)."""
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.exists():
            raise FileNotFoundError(f"plugin file not found: {path}")
        name = f"bench_plugin_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
        return module
    return importlib.import_module(spec)


def available_methods() -> list[str]:
    """Keys of the declared methods (the package ``methods`` plus loaded plugins). Not the
    methods a config derives (a vote of ``vote:``, a checkpoint of ``models:``): they are
    registered when a config is read and stay in the process, where a second config's
    ``methods: all`` or a recipe table would otherwise inherit the first config's."""
    _discover()
    return [k for k, cls in METHODS.items()
            if not getattr(cls, "voted_from", None) and not getattr(cls, "external", None)]


def get_method(key: str) -> type[Method]:
    """The method class registered as ``key``; an unknown key lists the known ones."""
    _discover()
    return METHODS[key]
