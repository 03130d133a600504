"""The old flat module names of :mod:`bench` (before issue 23 put its modules into packages by
concept), kept importable: ``import bench.certify`` still works, gives the module at its new
name (``bench.certification.engine``) and warns once with a ``DeprecationWarning`` that names it.

Only names that moved are listed; ``bench.report`` is now a package, so its old module's
functions are at ``bench.report.html``.
"""
from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings

_MOVED = {
    "bench.claims": "bench.paper.claims",
    "bench.datalock": "bench.data.lock",
    "bench.safe_pickle": "bench.data.safe_pickle",
    "bench.synthetic": "bench.data.synthetic",
    "bench.device": "bench.compute.device",
    "bench.memory": "bench.compute.memory",
    "bench.precision": "bench.compute.precision",
    "bench.checkpoint": "bench.models.checkpoint",
    "bench.lirpa": "bench.models.lirpa",
    "bench.vicinity": "bench.certification.vicinity",
    "bench.streams": "bench.certification.streams",
    "bench.sequential": "bench.certification.sequential",
    "bench.certify": "bench.certification.engine",
    "bench.metrics": "bench.certification.metrics",
    "bench.simulation": "bench.certification.simulation",
    "bench.method": "bench.training",
    "bench.train": "bench.training.loop",
    "bench.optim": "bench.training.optim",
    "bench.augment": "bench.training.augment",
    "bench.external": "bench.training.external",
    "bench.attacks": "bench.evaluation.attacks",
    "bench.adaptive": "bench.evaluation.adaptive",
    "bench.masking": "bench.evaluation.masking",
    "bench.audit": "bench.evaluation.audit",
    "bench.native": "bench.evaluation.native",
    "bench.config": "bench.workflow.config",
    "bench.plan": "bench.workflow.plan",
    "bench.job_kinds": "bench.workflow.job_kinds",
    "bench.passes": "bench.workflow.passes",
    "bench.estimate": "bench.workflow.estimate",
    "bench.provenance": "bench.workflow.provenance",
    "bench.integrity": "bench.workflow.integrity",
    "bench.run_owner": "bench.workflow.run_owner",
    "bench.figures": "bench.report.figures",
    "bench.recipes": "bench.report.recipes",
}


class _MovedModules(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds an old name and loads it as the module at its new name (one object, two names)."""

    def find_spec(self, fullname, path=None, target=None):
        if fullname not in _MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self)

    def create_module(self, spec):
        new = _MOVED[spec.name]
        warnings.warn(f"{spec.name} moved to {new}; import it from there", DeprecationWarning, stacklevel=2)
        module = importlib.import_module(new)
        self._spec = module.__spec__  # the import system sets __spec__ to the old name's: undone below
        return module

    def exec_module(self, module) -> None:
        module.__spec__ = self._spec
        module.__loader__ = self._spec.loader


def install() -> None:
    if not any(isinstance(f, _MovedModules) for f in sys.meta_path):
        sys.meta_path.append(_MovedModules())
