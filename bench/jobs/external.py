"""The import job: an external checkpoint (config ``models:``) written as a finished training
run's model, after checking that it fits its architecture (:func:`bench.training.external.import_checkpoint`)."""
from __future__ import annotations

from pathlib import Path

from bench.jobs.common import Context, Job
from bench.training.external import import_checkpoint

__all__ = ["run"]


def run(smk) -> None:
    """The ``import_model`` rule: the checkpoint written where its model's files go."""
    job = Job(smk.params.settings, smk.params.code, Context.of(smk))
    s = job.settings
    entry = {"name": s["method"], "dataset": s["dataset"], "arch": s["arch"], **s["external"]}
    import_checkpoint(entry, Path(smk.output.model).parent, s["hparams"], s["vicinity"], job.provenance())
