"""The training job: one model per (dataset, method, architecture, seed) (:func:`bench.training.loop.train`)."""
from __future__ import annotations

from pathlib import Path

from bench.jobs.common import Context, Job
from bench.training.loop import TrainSpec, train

__all__ = ["run"]


def run(smk) -> None:
    """The ``train`` rule: one model into its declared files' folder."""
    context = Context.of(smk)
    job = Job(smk.params.settings, smk.params.code, context)
    s = job.settings
    spec = TrainSpec(dataset=s["dataset"], method=s["method"], arch=s["arch"], seed=job.seed, epochs=s["epochs"],
                     batch_size=s["batch_size"], vicinity=s["vicinity"], hparams=s["hparams"],
                     train_per_class=s["train_per_class"], val_per_class=s["val_per_class"], device=str(job.device),
                     data_root=s["data_root"], plugins=list(context.plugins), precision=s["precision"],
                     channels_last=s["channels_last"], augment=s.get("augment", "recipe"))
    # Snakemake reruns this job exactly when its settings or code changed: a checkpoint left from
    # before is of the old ones, so it is discarded rather than resumed
    train(spec, Path(smk.output.model).parent, progress=False, provenance=job.provenance(),
          stale_checkpoint="restart")
