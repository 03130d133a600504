"""What people read: the self-contained HTML report (:mod:`~bench.report.html`), its figures
(:mod:`~bench.report.figures`) and the recipes' table with sources (:mod:`~bench.report.recipes`).
It reads only the aggregated tables (:mod:`bench.tables`)."""

import importlib
import warnings


def __getattr__(name: str):
    """The old module ``bench.report``'s names (``html_report``, ``job_times`` …), now in
    :mod:`bench.report.html`: still importable, with a DeprecationWarning naming the new place."""
    if name.startswith("_"):
        raise AttributeError(name)
    html = importlib.import_module("bench.report.html")
    if not hasattr(html, name):
        raise AttributeError(f"module 'bench.report' has no attribute '{name}'")
    warnings.warn(f"bench.report.{name} moved to bench.report.html.{name}", DeprecationWarning, stacklevel=2)
    return getattr(html, name)
