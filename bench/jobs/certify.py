"""The certification job: every setting of one table for one model, certifying the base
classifier h (argmax of the network) by the sequential tests of :mod:`bench.certify`.

The test inputs are certified in blocks of ``certify.block_inputs`` (each block with its own
seed, so a block's result does not depend on the others); after each block the job saves its
outcomes (:class:`bench.jobs.resume.Units`), and a rerun of a job killed by its time limit
resumes after the last finished block, with the result of an uninterrupted run.

:func:`run_group` is the job of ``certify.group: model``: every table of
:func:`bench.plan.grouped_certifications` for one model, one after another in one process (one
Python and torch start instead of one per table); each table runs exactly as its own job would,
so grouped and ungrouped runs write the same rows."""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pandas as pd

from bench.certify import CertifyConfig, certify_many, classifier, summarize
from bench.checkpoint import load_model
from bench.data import load_split
from bench.io import write_csv
from bench.jobs.common import Job, evaluated_model
from bench.jobs.resume import Units
from bench.vicinity import parse_vicinity

__all__ = ["run", "run_group"]

SETTING = ("vicinity", "kappa", "alpha", "procedure")
BLOCK_SEED = 7919  # block b of group i draws from seed + i + 7919 b: block 0 keeps the unblocked seed


def run(smk, finish: bool = True) -> Callable[[], None]:
    """Every setting of one table for one model (outputs ``smk.output.summary`` and
    ``smk.output.inputs``). ``finish=False`` keeps the progress file after the outputs are
    written and returns its remover, for :func:`run_group`."""
    job = Job(smk)
    s = job.settings
    model = evaluated_model(Path(smk.input.model).parent, job)
    test = load_split(s["dataset"], "test", s["data_root"], subset_per_class=s["test_per_class"]).to(job.device)
    # Settings on one vicinity share its sample streams (bench.certify.SampleTape); the paper's
    # procedure runs first in each group, so its `seconds` is its cost alone (Table 4).
    groups: dict[str, list[dict]] = {}
    for setting in sorted(s["settings"], key=lambda x: x["procedure"] != "paper"):
        groups.setdefault(setting["spec"], []).append(setting)
    block = int(s.get("block_inputs") or len(test))
    units = Units(smk.output.summary, {"settings": s, "code": job.code})
    rows, frames = [], []
    for i, (spec, group) in enumerate(groups.items()):
        confs = [CertifyConfig(kappa=g["kappa"], alpha=g["alpha"], procedure=g["procedure"], budget=s["budget"])
                 for g in group]
        parts = [_block(units, f"{spec}/{start}", model, test, start, block, spec, confs,
                        seed=job.seed + i + BLOCK_SEED * b) for b, start in enumerate(range(0, len(test), block))]
        for j, g in enumerate(group):
            frame = pd.concat([pd.DataFrame(p["frames"][j]) for p in parts], ignore_index=True)
            rows.append({**job.identity, "table": s["table"], **g, **summarize(frame),
                         "seconds": sum(p["seconds"][j] for p in parts),
                         "samples_drawn": sum(p["drawn"][j] for p in parts),
                         "stream": f"shared by {len(group)} settings", "blocks": len(parts)})
            frames.append(frame.assign(**job.identity, **{k: g[k] for k in SETTING}))
    if s["deterministic"]:
        bare = load_model(Path(smk.input.model).parent, job.device)  # sound bounds: IEEE fp32, no wrapper
        row, frame = _deterministic(job, bare, test, s["deterministic"])
        rows.append({**job.identity, "table": s["table"], **row})
        if frame is not None:
            frames.append(frame.assign(**job.identity, **{k: row[k] for k in SETTING}))
    write_csv(pd.concat(frames, ignore_index=True), smk.output.inputs)
    job.write(rows, smk.output.summary, Path(smk.input.model).parent)
    if finish:
        units.done()
    return units.done


def run_group(smk) -> None:
    """Every table of ``params.settings`` (table key -> that table's job settings) for one model,
    each written to its ``certify/<table>.json`` and ``certify/<table>_inputs.csv`` outputs.

    Every table's progress file stays until the last output is written: Snakemake deletes all
    outputs of a job that failed or was killed, and its rerun reads the finished tables back."""
    outputs = {Path(p).name: p for p in smk.output}
    finish = [run(SimpleNamespace(input=smk.input, log=smk.log, threads=smk.threads, resources=smk.resources,
                                  config=smk.config, params=SimpleNamespace(settings=settings, code=smk.params.code),
                                  output=SimpleNamespace(summary=outputs[f"{table}.json"],
                                                         inputs=outputs[f"{table}_inputs.csv"])), finish=False)
              for table, settings in smk.params.settings.items()]
    for remove_progress in finish:
        remove_progress()


def _block(units: Units, name: str, model, test, start: int, size: int, spec: str, confs: list[CertifyConfig],
           seed: int) -> dict:
    """Certify test inputs ``start`` to ``start + size`` under every config of one vicinity, or
    read the result a killed run of this job saved for this block."""
    if (done := units.get(name)) is not None:
        return done
    images, labels = test.images[start : start + size], test.labels[start : start + size]
    results, clean = certify_many(classifier(model), images, parse_vicinity(spec), test.info.num_classes, confs,
                                  seed=seed, progress=False)
    frames = []
    for result in results:
        frame = result.frame(labels, clean)
        frame["input"] += start  # the position in the whole test subset
        frames.append(frame.to_dict(orient="list"))
    out = {"frames": frames, "seconds": [r.seconds for r in results], "drawn": [r.drawn for r in results]}
    units.put(name, out)
    return out


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
