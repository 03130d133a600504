"""The certification job: every setting of one table for one model, certifying the base
classifier h (argmax of the network) by the sequential tests of :mod:`bench.certification.engine`.

Settings on one vicinity read the same sample stream of each input
(:class:`bench.certification.streams.SampleTape`), seeded by the model's seed and the vicinity's spec: an
input's stream depends on those and its index only. The test inputs are certified in blocks of
``certify.block_inputs``; after each block the job saves its outcomes
(:class:`bench.jobs.resume.Units`), and a rerun of a job killed by its time limit resumes after
the last finished block. The block size changes no outcome: blocked, unblocked and resumed runs
write the same rows.

:func:`run_group` is the job of ``certify.group: model``: every table of
:func:`bench.workflow.plan.grouped_certifications` for one model in one process (one Python and torch
start instead of one per table), the settings of all its tables on one vicinity reading one
stream (Tables 1, 11 and 12 all certify on the main vicinity), so the group costs each
vicinity's longest run rather than the sum of its tables'. Each setting's outcomes are what
its table's own job certifies: grouped and ungrouped runs write the same outcomes (on the CPU,
tested; on a GPU, cuDNN may pick another algorithm for another batch shape and flip a
prediction at a near-tie); only the cost columns (``seconds``, ``samples_drawn``, ``stream``)
say what was shared. Where the audit is enabled (:func:`bench.workflow.plan.grouped_audit`), the job then
audits the Table 1 certificates it wrote, as the audit job would (:mod:`bench.jobs.audit`)."""
from __future__ import annotations

import time
import zlib
from collections.abc import Callable
from pathlib import Path

import pandas as pd

from bench.certification.engine import CertifyConfig, certify_many, classifier, summarize
from bench.certification.vicinity import parse_vicinity
from bench.data import load_split
from bench.io import write_csv
from bench.jobs.common import Context, Job, evaluated_model
from bench.jobs.resume import Units
from bench.models.checkpoint import load_model
from bench.paths import Output

__all__ = ["certify_model", "run", "run_group", "stream_seed"]

SETTING = ("vicinity", "kappa", "alpha", "procedure")


def stream_seed(seed: int, spec: str) -> int:
    """The seed of a model's sample streams on vicinity ``spec``: the same in every table."""
    return (int(seed) << 32) + zlib.crc32(spec.encode())


def run(smk) -> None:
    """Every setting of one table for one model (outputs ``smk.output.summary`` and
    ``smk.output.inputs``)."""
    certify_model(smk.input.model, {smk.params.settings["table"]: (smk.params.settings, smk.output.summary,
                                                                    smk.output.inputs)}, smk.params.code, Context.of(smk))


def run_group(smk) -> None:
    """Every table of ``params.settings`` (table key -> that table's job settings) for one model,
    each written to its ``certify/<table>.json`` and ``certify/<table>_inputs.csv`` outputs; then,
    with an ``audit.json`` output (:func:`bench.workflow.plan.grouped_audit`), the audit of the Table 1
    certificates just written, as the audit job would run it (``params.audit``: its settings)."""
    outputs = {(out.kind, out.name): str(p) for p in smk.output for out in [Output.parse(str(p))]}
    context, after = Context.of(smk), None
    if ("audit", "") in outputs:
        from bench.jobs.audit import audit_model

        after = lambda: audit_model(smk.input.model, outputs["certify_inputs", "table1"],  # noqa: E731
                                    outputs["audit", ""], smk.params.audit, smk.params.code, context)
    certify_model(smk.input.model, {t: (s, outputs["certify", t], outputs["certify_inputs", t])
                                    for t, s in smk.params.settings.items()}, smk.params.code, context, after)


def certify_model(model_file: str, tables: dict[str, tuple[dict, str, str]], code: dict, context: Context,
                  after: Callable[[], None] | None = None) -> None:
    """Certify ``tables`` (table -> its settings, summary output, per-input output) of the model
    at ``model_file``, then run ``after`` (the grouped audit).

    The progress file sits beside the first table's summary and stays until ``after`` is done:
    Snakemake deletes all outputs of a job that failed or was killed, and its rerun reads the
    finished blocks back."""
    jobs = {t: Job(settings, code, context) for t, (settings, _, _) in tables.items()}
    job = next(iter(jobs.values()))
    s = job.settings
    model = evaluated_model(Path(model_file).parent, job)
    test = load_split(s["dataset"], "test", s["data_root"], subset_per_class=s["test_per_class"]).to(job.device)
    # One run per vicinity over the settings of every table, each distinct setting once. Table
    # order is kept and the paper's procedure leads each table, so Table 1's paper settings
    # draw their streams first: their `seconds` is their cost alone (Table 4).
    shared: dict[str, list[dict]] = {}
    for j in jobs.values():
        for g in sorted(j.settings["settings"], key=lambda x: x["procedure"] != "paper"):
            runs = shared.setdefault(g["spec"], [])
            if _setting(g) not in map(_setting, runs):
                runs.append(g)
    block = int(s.get("block_inputs") or len(test))
    first_output = next(iter(tables.values()))[1]
    units = Units(first_output, {"settings": {t: j.settings for t, j in jobs.items()}, "code": job.code})
    done: dict[tuple, dict] = {}
    for spec, runs in shared.items():
        confs = [CertifyConfig(kappa=g["kappa"], alpha=g["alpha"], procedure=g["procedure"], budget=s["budget"])
                 for g in runs]
        parts = [_block(units, f"{spec}/{start}", model, test, start, block, spec, confs,
                        seed=stream_seed(job.seed, spec)) for start in range(0, len(test), block)]
        for k, g in enumerate(runs):
            done[(spec, _setting(g))] = {
                "frame": pd.concat([pd.DataFrame(p["frames"][k]) for p in parts], ignore_index=True),
                "seconds": sum(p["seconds"][k] for p in parts), "samples_drawn": sum(p["drawn"][k] for p in parts),
                "stream": f"shared by {len(runs)} settings", "blocks": len(parts)}
    bare = None
    for t, j in jobs.items():
        rows, frames = [], []
        for g in j.settings["settings"]:
            d = done[(g["spec"], _setting(g))]
            rows.append({**j.identity, "table": j.settings["table"], **g, **summarize(d["frame"]),
                         **{k: d[k] for k in ("seconds", "samples_drawn", "stream", "blocks")}})
            frames.append(d["frame"].assign(**j.identity, **{k: g[k] for k in SETTING}))
        if j.settings["deterministic"]:
            if bare is None:  # sound bounds: IEEE fp32, no wrapper
                bare = load_model(Path(model_file).parent, j.device)
            row, frame = _deterministic(j, bare, test, j.settings["deterministic"])
            rows.append({**j.identity, "table": j.settings["table"], **row})
            if frame is not None:
                frames.append(frame.assign(**j.identity, **{k: row[k] for k in SETTING}))
        _, summary, inputs = tables[t]
        write_csv(pd.concat(frames, ignore_index=True), inputs)
        j.write(rows, summary, Path(model_file).parent)
    if after is not None:
        after()
    units.done()


def _setting(g: dict) -> tuple:
    """What makes two settings one run: the test (procedure, κ, α) on a vicinity."""
    return g["procedure"], float(g["kappa"]), float(g["alpha"])


def _block(units: Units, name: str, model, test, start: int, size: int, spec: str, confs: list[CertifyConfig],
           seed: int) -> dict:
    """Certify test inputs ``start`` to ``start + size`` under every config of one vicinity, or
    read the result a killed run of this job saved for this block."""
    if (done := units.get(name)) is not None:
        return done
    images, labels = test.images[start : start + size], test.labels[start : start + size]
    results, clean = certify_many(classifier(model), images, parse_vicinity(spec), test.info.num_classes, confs,
                                  seed=seed, progress=False, first_index=start)
    frames = []
    for result in results:
        frame = result.frame(labels, clean)
        frame["input"] += start  # the position in the whole test subset
        frames.append(frame.to_dict(orient="list"))
    out = {"frames": frames, "seconds": [r.seconds for r in results], "drawn": [r.drawn for r in results]}
    units.put(name, out)
    return out


def _deterministic(job: Job, model, test, spec: str) -> tuple[dict, pd.DataFrame | None]:
    """κ = 0 (Table 11's first column): certified only by sound IBP bounds, for the models of a
    method whose native certificate is bounds (the setting ``sound_bounds``, from
    ``Method.native_certificate``: IBP's; :func:`bench.evaluation.native.bound_certify`); other methods get no
    value ("–")."""
    from bench.evaluation.native import bound_certify_inputs

    base = {"vicinity": "main", "spec": spec, "kappa": 0.0, "alpha": 0.0, "procedure": "ibp_bounds",
            "inputs": len(test), "precision": "fp32 (IEEE: sound bounds)"}
    if not job.settings.get("sound_bounds"):
        return {**base, "standard_accuracy": None, "certified_robustness_rate": None,
                "certified_robust_accuracy": None}, None
    start = time.perf_counter()
    frame = bound_certify_inputs(model, test.images, test.labels, parse_vicinity(spec).eps, "IBP")
    return {**base, **summarize(frame), "seconds": time.perf_counter() - start}, frame
