"""What a config's DAG will cost before it runs: jobs per kind, and each job's time and peak
memory on a named device (``python -m bench plan --estimate CONFIG``).

Each job's **work**, in image passes and network calls, is counted by :mod:`bench.workflow.passes`; this
module prices it on a device.

**Time** is, per job, the device's measured start-up (``job_start_s``: a job process importing
torch and the engine), plus the passes divided by the architecture's measured images per second,
plus the job's *calls* (network invocations, counted by the same stand-in network) times the
measured latency of one call at batch 1 (``latency_ms``): a call of ``B`` images costs
``latency + B × t``, where ``t`` is the per-image time of the measured batch with its one
latency taken out (a training step's optimiser update is in ``t``: the latency is measured
on an attack's gradient call). The latency term is what bounds an iterative attack on a few images
(Square's 5,000 queries are 5,000 sequential forwards, whatever the batch); certification, audits
and votes run thousands of samples per call and are counted by throughput alone. All three come
from ``reports/bench/throughput.csv``, written by ``benchmarks/throughput.py`` on each device; a
device measured before the latency and start-up columns existed gets neither, with a warning
(its estimate is then a lower bound for latency-bound jobs);
**peak memory** is the weights (with gradients and momentum when training) plus the
activations of the largest single forward, capped by the activation budget when the config
sets ``resources.activation_memory_mb`` and the forward is chunked (:mod:`bench.compute.memory`: the
vicinal losses, votes, certification; an attack's own batch is not). A job that runs several
parts in turn (a model's grouped attacks) starts once, adds up its parts' time and peaks at its
largest part's memory.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from bench.data import dataset_info
from bench.training import shape_group
from bench.workflow import passes
from bench.workflow.extensions import load_extensions

__all__ = ["THROUGHPUT", "compare", "compare_by_kind", "estimate", "load_config", "peak_gib", "summary", "throughput"]

log = logging.getLogger("bench.workflow.estimate")

THROUGHPUT = Path("reports/bench/throughput.csv")


def throughput(device: str, path: Path = THROUGHPUT) -> pd.DataFrame:
    """The measured rows of ``device`` (a substring of the ``device`` column, case-insensitive)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/throughput.py` on the device first")
    table = pd.read_csv(path)
    rows = table[table["device"].str.contains(device, case=False, regex=False)]
    if rows.empty:
        raise ValueError(f"no throughput measured on a device matching {device!r}; measured: "
                         f"{', '.join(sorted(table['device'].unique()))}. Run `python benchmarks/throughput.py` "
                         "on it and pass its name")
    if rows["device"].nunique() > 1:
        raise ValueError(f"{device!r} matches several devices: {', '.join(sorted(rows['device'].unique()))}")
    return rows


def estimate(config: dict, device: str, path: Path = THROUGHPUT) -> pd.DataFrame:
    """One row per job of the DAG (:func:`bench.workflow.passes.jobs`: a model's grouped attacks, or its
    grouped certifications and audit, are one job): its kind, model, work, estimated hours
    (typical and worst case), peak memory (GiB) and the time limit it runs under (minutes, from
    ``resources``).

    ``hours`` = ``start_hours`` (the device's ``job_start_s``, once per job) + passes × the
    per-image time (:func:`_per_image`: the measured batch's time less its one latency) +
    ``latency_hours`` (the job's ``calls`` at the measured per-call ``latency_ms``), summed over
    the parts a job runs in turn (:func:`bench.workflow.passes.parts`)."""
    measured = throughput(device, path)
    device_name = measured["device"].iloc[0]
    for column in ("latency_ms", "job_start_s"):
        if column not in measured or measured[column].isna().any():
            log.warning("%s has no measured %s: it counts as 0, so the estimate is too low for %s; run "
                        "`python benchmarks/throughput.py` there", device_name, column,
                        "latency-bound jobs (iterative attacks on a few images)" if column == "latency_ms" else "small jobs")
            measured = measured.assign(**{column: measured[column].fillna(0.0) if column in measured else 0.0})
    start_hours = float(measured["job_start_s"].max()) / 3600
    rates = measured.set_index(["arch", "shape", "phase"])
    rows = []
    for job in passes.jobs(config):
        priced = pd.DataFrame([_price(passes.work(part, config), part, rates) for part in passes.parts(job)])
        limit = config["resources"]["train_minutes" if job["kind"] == "train" else "eval_minutes"]
        rows.append({**{k: job.get(k) for k in ("kind", "name", "dataset", "method", "arch")},
                     **priced[["forwards", "gradient_passes", "calls", "latency_hours", "hours", "worst_hours"]].sum(),
                     **priced[["weights_gib", "activations_gib", "image_gib"]].max(),
                     "chunked": bool(priced["chunked"].any()), "limit_minutes": limit, "device": device_name,
                     "job": job["job"]})
    frame = pd.DataFrame(rows)
    # every job starts a process: Python, torch, the engine, CUDA
    frame["start_hours"] = start_hours
    frame["hours"] += frame["start_hours"]
    frame["worst_hours"] += frame["start_hours"]
    return frame


def _price(w: passes.Work, job: dict, rates: pd.DataFrame) -> dict[str, float]:
    """One part's hours (without the job's start-up) and memory, from the device's ``rates``."""
    shape = shape_group(dataset_info(job["dataset"]))
    fwd, grad = rates.loc[(job["arch"], shape, "forward")], rates.loc[(job["arch"], shape, "train")]
    latency = (w.forward_calls * fwd["latency_ms"] + w.gradient_calls * grad["latency_ms"]) / 1000
    seconds = w.forwards * _per_image(fwd) + w.gradient * _per_image(grad) + latency
    worst = seconds if w.worst_forwards is None else w.worst_forwards * _per_image(fwd) + latency
    per_image = (grad if w.train else fwd)["activation_mib_per_image"]
    weights = fwd["parameters"] * 4 / 2**20 * (3 if w.train else 1)  # + gradients and momentum
    return {"forwards": w.forwards, "gradient_passes": w.gradient, "calls": w.forward_calls + w.gradient_calls,
            "latency_hours": latency / 3600, "hours": seconds / 3600, "worst_hours": worst / 3600,
            "weights_gib": weights / 1024, "activations_gib": w.largest_call * per_image / 1024,
            "image_gib": per_image / 1024, "chunked": w.chunked}


def _per_image(rate: pd.Series) -> float:
    """Seconds per image beyond a call's latency: the throughput's batch time less one latency,
    over its batch (``images_per_s`` was measured at ``batch_size`` and includes one latency)."""
    batch_s = rate["batch_size"] / rate["images_per_s"]
    return max(batch_s - rate["latency_ms"] / 1000, 0.0) / rate["batch_size"]


def compare(frame: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """The estimate beside the measurement: one row per job of ``frame`` (:func:`estimate`) that
    ``times`` (``reports/job_times.csv``: ``job``, ``seconds``) measured, with ``estimated_s``
    (typical), ``measured_s`` and ``ratio`` = measured / estimated."""
    out = frame.dropna(subset=["job"]).merge(times[["job", "seconds"]], on="job", how="inner")
    unmatched = sorted(set(times["job"]) - set(out["job"]))
    if unmatched:  # e.g. a run with one certification job per table, compared under certify.group: model
        log.warning("%d measured jobs have no estimate under this config (grouped otherwise?), left out: %s%s",
                    len(unmatched), ", ".join(unmatched[:5]), ", ..." if len(unmatched) > 5 else "")
    out = out.assign(estimated_s=out["hours"] * 3600, measured_s=out["seconds"]).drop(columns="seconds")
    return out.assign(ratio=out["measured_s"] / out["estimated_s"])


def compare_by_kind(both: pd.DataFrame) -> pd.DataFrame:
    """Per job kind of a :func:`compare` frame: estimated and measured seconds, and their ratio."""
    by_kind = both.groupby("kind")[["estimated_s", "measured_s"]].sum()
    return by_kind.assign(ratio=by_kind["measured_s"] / by_kind["estimated_s"])


def peak_gib(frame: pd.DataFrame, budget_mb: int | str | None, memory_gib: float) -> pd.Series:
    """Each job's peak memory on a device of ``memory_gib``: weights plus the largest forward's
    activations, cut to the activation budget (``resources.activation_memory_mb``: MiB, or
    ``auto``, 80 % of what the weights leave free; never below one image per chunk)."""
    activations = frame["activations_gib"]
    if budget_mb == "auto":
        capped = activations.clip(upper=0.8 * (memory_gib - frame["weights_gib"]))
    elif budget_mb:
        capped = activations.clip(upper=float(budget_mb) / 1024)
    else:
        capped = activations
    activations = capped.where(frame["chunked"], activations)
    return frame["weights_gib"] + activations.clip(lower=frame["image_gib"])


def summary(frame: pd.DataFrame, budget_mb: int | str | None = None, retries: int = 1,
            memories: tuple[float, ...] = (11, 80)) -> pd.DataFrame:
    """Per job kind: jobs, total and largest hours (typical and worst case), whether every job
    fits ``retries + 1`` runs of its time limit (the jobs resume: a killed certification or
    attack job restarts after its last saved block or batch), the largest unchunked memory
    (``peak_gib``) and, per device memory (GiB), the largest peak under ``budget_mb`` and
    whether it fits."""
    out = []
    peaks = {m: peak_gib(frame, budget_mb, m) for m in memories}
    unchunked = frame["weights_gib"] + frame["activations_gib"]
    for kind, g in frame.groupby("kind", sort=False):
        limit_h = g["limit_minutes"].iloc[0] / 60
        row = {"kind": kind, "jobs": len(g), "forwards": g["forwards"].sum(), "gradient_passes": g["gradient_passes"].sum(),
               "hours": g["hours"].sum(), "worst_hours": g["worst_hours"].sum(),
               "longest_job_hours": g["worst_hours"].max(), "limit_hours": limit_h,
               "fits_limit": bool((g["worst_hours"] <= limit_h * (retries + 1)).all()),
               "peak_gib": unchunked[g.index].max()}
        for m in memories:
            row[f"peak_gib_{m:g}gb"] = peaks[m][g.index].max()
            row[f"fits_{m:g}gb"] = bool((peaks[m][g.index] <= m).all())
        out.append(row)
    out.append({"kind": "all", "jobs": len(frame), "forwards": frame["forwards"].sum(),
                "gradient_passes": frame["gradient_passes"].sum(), "hours": frame["hours"].sum(),
                "worst_hours": frame["worst_hours"].sum(), "longest_job_hours": frame["worst_hours"].max(),
                "peak_gib": unchunked.max()})
    return pd.DataFrame(out)


def load_config(path: str | Path) -> dict[str, Any]:
    """A config file read and validated as the Snakefile does (schema defaults filled in)."""
    import yaml
    from snakemake.utils import validate

    config = yaml.safe_load(Path(path).read_text())
    validate(config, str(Path(__file__).resolve().parents[2] / "config" / "schema.yaml"))
    load_extensions(config)  # plugins and external models, as in the Snakefile
    return config

