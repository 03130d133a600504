"""The audit job: a fresh-sample audit of one model's Table 1 certificates (:mod:`bench.evaluation.audit`)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import torch

from bench.certification.streams import classifier
from bench.certification.vicinity import parse_vicinity
from bench.data import load_split
from bench.jobs.common import Context, Job, evaluated_model

__all__ = ["audit_model", "run"]


def run(smk) -> None:
    """The ``audit`` rule: :func:`audit_model` on its declared files."""
    audit_model(smk.input.model, smk.input.certified, smk.output.result, smk.params.settings, smk.params.code,
                Context.of(smk))


def audit_model(model_file: str, certified: str, output: str, settings: dict, code: dict, context: Context) -> None:
    """Audit the certificates of ``certified`` (a certify job's per-input CSV) of the model at
    ``model_file`` with fresh samples; one row per (procedure, κ, vicinity) in ``output``."""
    from bench.evaluation.audit import audit

    job = Job(settings, code, context)
    s = job.settings
    a = s["audit"]
    model = evaluated_model(Path(model_file).parent, job)
    test = load_split(s["dataset"], "test", s["data_root"], subset_per_class=s["test_per_class"]).to(job.device)
    inputs = pd.read_csv(certified)
    rows = []
    for (procedure, kappa, spec_name), group in inputs[inputs["outcome"].eq("certified")].groupby(
            ["procedure", "kappa", "vicinity"]):
        # a seeded random sample of the certified inputs: an unbiased estimate of the wrong rate
        chosen = group.sample(n=min(int(a["inputs"]), len(group)), random_state=job.seed).sort_values("input")
        idx = torch.as_tensor(chosen["input"].to_numpy())
        frame = audit(classifier(model), test.images[idx.to(job.device)],
                      torch.as_tensor(chosen["prediction"].to_numpy()), parse_vicinity(s["vicinities"][spec_name]),
                      float(kappa), samples=int(a["samples"]), confidence=float(a["confidence"]), seed=job.seed + 1000)
        rows.append({**job.identity, "procedure": procedure, "kappa": float(kappa), "vicinity": spec_name,
                     "certified": int(len(group)), "audited": int(len(chosen)), "wrong": int(frame["wrong"].sum()),
                     "min_rate": float(frame["rate"].min()) if len(frame) else None,
                     "samples": int(a["samples"]), "confidence": float(a["confidence"])})
    job.write(rows, output, Path(model_file).parent)
