"""The vote job: a method scored by the vote rule (config ``vote:``, :mod:`bench.training.voting`)
gets its own model folder, holding its method's trained model unchanged: the same weights (a
copy, hash-checked), the same training record and provenance (so its evaluations carry the
training's code stamp, as the method's own do), under its own method key and with its
hyperparameters (``vote_samples`` added). No training runs; its log has no epochs."""
from __future__ import annotations

import json
import shutil
from pathlib import Path

from bench.io import atomic_path, write_json
from bench.jobs.common import Context, Job
from bench.models.checkpoint import sha256
from bench.paths import model_file

__all__ = ["derive_vote_model", "run"]


def derive_vote_model(source_dir: str | Path, out_dir: str | Path, method: str, name: str,
                      vote_samples: int, job_provenance: dict | None = None) -> dict:
    """Write ``model.safetensors``, ``model.json`` and ``log.csv`` of the derived vote method
    ``method`` into ``out_dir`` from the finished run in ``source_dir``: its hyperparameters are
    the ones the model was trained with, and the vote's ``vote_samples``."""
    source_dir, out = Path(source_dir), Path(out_dir)
    meta = json.loads(model_file(source_dir, "model").read_text())
    weights = model_file(source_dir, "weights")
    if sha256(weights) != meta["weights_sha256"]:
        raise ValueError(f"{weights} does not match the hash recorded in {model_file(source_dir, 'model')}")
    out.mkdir(parents=True, exist_ok=True)
    atomic_path(model_file(out, "weights"), lambda tmp: shutil.copyfile(weights, tmp))
    model_file(out, "log").write_text("epoch,loss,train_accuracy,val_accuracy,seconds\n")  # its training is the source's
    result = {**meta, "spec": {**meta["spec"], "method": method},
              "hparams": {**meta["hparams"], "vote_samples": int(vote_samples)},
              "method": {"key": method, "name": name, "voted_from": meta["spec"]["method"]},
              "source": {"model": str(model_file(source_dir, "weights")), "sha256": meta["weights_sha256"]},
              **({"vote_job": job_provenance} if job_provenance is not None else {})}
    write_json(result, model_file(out, "model"))
    return result


def run(smk) -> None:
    """The ``vote_model`` rule: the method's trained files written as the derived method's."""
    from bench.training import get_method

    job = Job(smk.params.settings, smk.params.code, Context.of(smk))
    s = job.settings
    cls = get_method(s["method"])
    derive_vote_model(Path(smk.input.weights).parent, Path(smk.output.model).parent, s["method"], cls.name,
                      s["hparams"]["vote_samples"], job.provenance())
