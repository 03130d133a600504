"""What a config adds to the registries, loaded by one function in every process that reads a
config: the Snakefile, each job, each aggregate, recipe and report script, and the estimate.

A config adds three things: the modules its ``plugins:`` names (each registers methods, tables,
job kinds or claims as it is imported), its ``models:`` (external checkpoints, each a method
of its own name, :mod:`bench.training.external`) and its ``vote:`` (methods also scored by the
vote rule, each as ``<method>_vote``, :mod:`bench.training.voting`). The config check reports a plugin that fails
to load with the config's other problems (:mod:`bench.workflow.config`); the training API's own
``TrainSpec.plugins`` goes through the same :func:`bench.training.load_plugin`.
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

__all__ = ["load_extensions"]


def load_extensions(config: Mapping[str, Any]) -> None:
    """Import every plugin of ``config``, register its external models and its vote methods
    (idempotent)."""
    plugins, models, votes = config.get("plugins") or [], config.get("models") or [], config.get("vote") or []
    if not plugins and not models and not votes:
        return  # an aggregate job without any imports no torch (bench.training does)
    # Imported here, not at the top: an aggregate or report job that has no plugin starts
    # without torch.
    from bench.training import load_plugin
    from bench.training.external import register
    from bench.training.voting import register_votes

    for spec in plugins:
        load_plugin(spec)
    register({"models": list(models)})
    register_votes({"vote": list(votes)})  # after both: a plugin's or an external method may be voted
