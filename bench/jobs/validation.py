"""The validation job (``arch: sweep``): certified robust accuracy on the validation split (main
vicinity, first procedure), the score by which each method's architecture is picked."""
from __future__ import annotations

from pathlib import Path

from bench.certification.engine import CertifyConfig, certify, classifier, summarize
from bench.certification.vicinity import parse_vicinity
from bench.data import load_split
from bench.jobs.common import Context, Job, evaluated_model

__all__ = ["run"]


def run(smk) -> None:
    """The ``validation`` rule (``arch: sweep``)."""
    job = Job(smk.params.settings, smk.params.code, Context.of(smk))
    s = job.settings
    model = evaluated_model(Path(smk.input.model).parent, job)
    val = load_split(s["dataset"], "val", s["data_root"], subset_per_class=s["val_per_class"]).to(job.device)
    conf = CertifyConfig(kappa=s["kappa"], alpha=s["alpha"], procedure=s["procedure"], budget=s["budget"])
    result, clean = certify(classifier(model), val.images, parse_vicinity(s["vicinity"]), val.info.num_classes, conf,
                            seed=job.seed, progress=False)
    job.write([{**job.identity, "split": "val", "procedure": conf.procedure,
                **summarize(result.frame(val.labels, clean))}], smk.output.result, Path(smk.input.model).parent)
