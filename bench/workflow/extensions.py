"""What a config adds to the registries, loaded by one function in every process that reads a
config: the Snakefile, each job, each aggregate, recipe and report script, and the estimate.

A config adds two things: the modules its ``plugins:`` names (each registers methods, tables,
job kinds or claims as it is imported) and its ``models:`` (external checkpoints, each a method
of its own name, :mod:`bench.training.external`). The config check reports a plugin that fails
to load with the config's other problems (:mod:`bench.workflow.config`); the training API's own
``TrainSpec.plugins`` goes through the same :func:`bench.training.load_plugin`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["load_extensions"]


def load_extensions(config: Mapping[str, Any]) -> None:
    """Import every plugin of ``config`` and register its external models (idempotent)."""
    plugins, models = config.get("plugins") or [], config.get("models") or []
    if not plugins and not models:
        return  # an aggregate job without either imports no torch (bench.training does)
    # Imported here, not at the top: an aggregate or report job that has no plugin starts
    # without torch.
    from bench.training import load_plugin
    from bench.training.external import register

    for spec in plugins:
        load_plugin(spec)
    register({"models": list(models)})
