"""The certification job: every setting of one table for one model, certifying the base
classifier h (argmax of the network) by the sequential tests of :mod:`bench.certify`."""
from __future__ import annotations

import time
from pathlib import Path

import pandas as pd

from bench.certify import CertifyConfig, certify_many, classifier, summarize
from bench.checkpoint import load_model
from bench.data import load_split
from bench.io import write_csv
from bench.jobs.common import Job, evaluated_model
from bench.vicinity import parse_vicinity

__all__ = ["run"]

SETTING = ("vicinity", "kappa", "alpha", "procedure")


def run(smk) -> None:
    job = Job(smk)
    s = job.settings
    model = evaluated_model(Path(smk.input.model).parent, job)
    test = load_split(s["dataset"], "test", s["data_root"], subset_per_class=s["test_per_class"]).to(job.device)
    rows, frames = [], []
    # Settings on one vicinity share its sample streams (bench.certify.SampleTape); the paper's
    # procedure runs first in each group, so its `seconds` is its cost alone (Table 4).
    groups: dict[str, list[dict]] = {}
    for setting in sorted(s["settings"], key=lambda x: x["procedure"] != "paper"):
        groups.setdefault(setting["spec"], []).append(setting)
    for i, (spec, group) in enumerate(groups.items()):
        confs = [CertifyConfig(kappa=g["kappa"], alpha=g["alpha"], procedure=g["procedure"], budget=s["budget"])
                 for g in group]
        results, clean = certify_many(classifier(model), test.images, parse_vicinity(spec), test.info.num_classes,
                                      confs, seed=job.seed + i, progress=False)
        for g, result in zip(group, results):
            frame = result.frame(test.labels, clean)
            rows.append({**job.identity, "table": s["table"], **g, **summarize(frame), "seconds": result.seconds,
                         "samples_drawn": result.drawn, "stream": f"shared by {len(group)} settings"})
            frames.append(frame.assign(**job.identity, **{k: g[k] for k in SETTING}))
    if s["deterministic"]:
        bare = load_model(Path(smk.input.model).parent, job.device)  # sound bounds: IEEE fp32, no wrapper
        row, frame = _deterministic(job, bare, test, s["deterministic"])
        rows.append({**job.identity, "table": s["table"], **row})
        if frame is not None:
            frames.append(frame.assign(**job.identity, **{k: row[k] for k in SETTING}))
    write_csv(pd.concat(frames, ignore_index=True), smk.output.inputs)
    job.write(rows, smk.output.summary, Path(smk.input.model).parent)


def _deterministic(job: Job, model, test, spec: str) -> tuple[dict, pd.DataFrame | None]:
    """κ = 0 (Table 11's first column): certified only by sound IBP bounds, for IBP-trained
    models (:func:`bench.native.bound_certify`); other methods get no value ("–")."""
    from bench.native import bound_certify_inputs

    base = {"vicinity": "main", "spec": spec, "kappa": 0.0, "alpha": 0.0, "procedure": "ibp_bounds",
            "inputs": len(test), "precision": "fp32 (IEEE: sound bounds)"}
    if job.settings["method"] != "ibp":
        return {**base, "standard_accuracy": None, "certified_robustness_rate": None,
                "certified_robust_accuracy": None}, None
    start = time.perf_counter()
    frame = bound_certify_inputs(model, test.images, test.labels, parse_vicinity(spec).eps, "IBP")
    return {**base, **summarize(frame), "seconds": time.perf_counter() - start}, frame
