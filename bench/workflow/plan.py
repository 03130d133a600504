"""What the DAG builds for a config: each job's settings and code stamps, and how jobs group.

The Snakefile asks this module (and :mod:`bench.runs`, the models a config asks for) for its
targets, so that a new method or table module appears in the DAG without touching the
Snakefile (methods: the registry's unless the config names some; tables:
:data:`bench.tables.TABLES`). Every path goes through :mod:`bench.paths`.

Isolation: every config has a name (``run:``) and its results live under ``results/<run>/`` and
``reports/<run>/``; two configs never share a model or a certificate.

Invalidation: each job receives, as Snakemake ``params``, the slice of the config it reads
(:func:`job_settings`, hyperparameters resolved) and the stamps of the code it runs
(:func:`code_version`); jobs read their settings from there and nowhere else. Changing a
setting or that code reruns exactly the jobs whose result it can change.
"""
from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Iterable
from typing import Any

from bench import paths
from bench.paths import ModelRun, Output
from bench.runs import ablation_runs, attack_names, best_arch, candidate_runs, methods, runs, train_epochs, vicinities
from bench.tables import enabled_tables
from bench.training import get_method
from bench.training.external import external_models
from bench.training.voting import voted
from bench.workflow.job_kinds import JOB_KINDS, get_job_kind

# ablation_runs ... vicinities: bench.runs' names, still importable from here (the Snakefile and
# older plugins read them as plan.<name>)
__all__ = ["ablation_runs", "attack_names", "benchmark_of", "best_arch",
           "candidate_runs", "code_version", "external_models", "voted", "voted_model", "grouped_attacks", "grouped_audit",
           "grouped_certifications", "job_settings", "methods", "numerics", "runs", "train_epochs", "vicinities"]


#: names that left this module with the path contract (bench.paths): still served, with a
#: DeprecationWarning naming what replaces each, so that a user's table plugin keeps working
_MOVED: dict[str, tuple[Callable[..., str], str]] = {
    "result_dir": (lambda config, run: paths.ModelRun.of(config, run).path(),
                   "bench.paths.ModelRun.of(config, run).path(), or .output(kind, name) for a file in it"),
    "selection_file": (lambda config, dataset, method, seed: paths.selection_file(config["run"], dataset, method, seed),
                       "bench.paths.selection_file(config['run'], dataset, method, seed)"),
    "reports_dir": (lambda config: paths.reports_dir(config["run"]), "bench.paths.reports_dir(config['run'])"),
}


def __getattr__(name: str) -> Any:
    """``JOB_MODULES`` (kind -> the modules it runs) and ``USES_METHOD`` (the kinds whose result
    depends on the method's module): views of the job-kind registry (:mod:`bench.workflow.job_kinds`),
    read when asked, so that a kind a plugin registers is in them."""
    if name == "JOB_MODULES":
        return {k: kind.modules for k, kind in JOB_KINDS.items()}
    if name == "USES_METHOD":
        return {k for k, kind in JOB_KINDS.items() if kind.uses_method}
    if name in _MOVED:
        function, instead = _MOVED[name]
        warnings.warn(f"bench.workflow.plan.{name} moved with the results layout to bench.paths: use {instead}",
                      DeprecationWarning, stacklevel=2)
        return function
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


def grouped_attacks(config: dict) -> list[str]:
    """The attacks one job per model runs together (``attacks.group: model``); none by default
    (one job per attack and model).

    They are the attacks that the enabled tables ask of every model (Table 9's, AutoAttack, the
    gradient-masking checks), in the tables' order. The adaptive ``Vote*`` attacks (some models
    only, and the long ones) and the transfer attack (crafted on another model) keep a job each."""
    if config["attacks"].get("group", "attack") != "model":
        return []
    from bench.evaluation.masking import TRANSFER_ATTACK  # local: bench.evaluation.masking imports torch

    return [a for a in _every_model_needs(config, "attack") if a != TRANSFER_ATTACK]


def grouped_certifications(config: dict) -> list[str]:
    """The certification tables one job per model runs together (``certify.group: model``);
    none by default (one job per table and model).

    They are the tables (1, 2, 10, 11, 12 when enabled) that every model is certified for, in
    the tables' order; the ablation's models and an ``arch: sweep``'s validation keep a job each."""
    if config["certify"].get("group", "table") != "model":
        return []
    return _every_model_needs(config, "certify")


def grouped_audit(config: dict) -> bool:
    """Whether each model's certificate audit runs in its certification job (``certify.group:
    model`` with Table 1 grouped and the audit enabled): it audits the Table 1 certificates that
    job has just written, saving a job start per model."""
    return "table1" in grouped_certifications(config) and any(t.config_key == "audit" for t in enabled_tables(config))


def _every_model_needs(config: dict, kind: str) -> list[str]:
    """The names of the ``kind`` outputs (``certify``: tables, ``attack``: attacks) that the
    enabled tables ask of every (non-ablation) model, in the tables' order."""
    per_model: dict[ModelRun, list[str]] = {}
    for table in enabled_tables(config):
        for path in table.inputs(config):  # the paper's architectures: output names do not depend on them
            try:
                out = Output.parse(path)
            except ValueError:
                continue
            if out.kind == kind and not out.model.ablation:
                per_model.setdefault(out.model, []).append(out.name)
    if not per_model:
        return []
    common = set.intersection(*(set(v) for v in per_model.values()))
    return [a for a in dict.fromkeys(a for v in per_model.values() for a in v) if a in common]


def voted_model(config: dict, w, output: str) -> str:
    """The ``output`` file of the model a vote method scores (``da_vote``: DA's model of the same
    dataset, architecture and seed): the vote job's input."""
    return ModelRun.of(config, {"dataset": w.dataset, "method": voted(config)[w.method], "arch": w.arch,
                                "seed": int(w.seed)}).output(output)


# --- each job's settings and code: its Snakemake params ------------------------------------------


def _canonical(obj: Any) -> Any:
    """Dicts with sorted keys, recursively, so that the params' text is stable across runs."""
    if isinstance(obj, dict):
        return {str(k): _canonical(obj[k]) for k in sorted(obj, key=str)}
    if isinstance(obj, (list, tuple)):
        return [_canonical(v) for v in obj]
    return obj


def _common(config: dict, w) -> dict:
    out = {"run": config["run"], "dataset": w.dataset, "method": w.method, "arch": w.arch, "seed": int(w.seed),
           "device": config.get("device"), "gpus": int(config["resources"]["gpus"]),
           "data_root": config["data"]["root"]}
    if w.method in external_models(config):  # what the rows of an external checkpoint say about it
        e = external_models(config)[w.method]
        out["external"] = {"weights": str(e["weights"]), "predict_as": e.get("predict_as", "erm"),
                           "claims": e.get("claims")}
    if "hparam" in w.keys():
        out.update(hparam=w.hparam, value=float(w.value))
    return out


def numerics(config: dict, kind: str, method: str) -> dict:
    """The precision a job runs at (config block ``numerics``, :mod:`bench.compute.precision`): training
    at ``numerics.train``, every evaluation of a model at ``numerics.evaluate`` (one precision
    per table), channels_last for both. A method whose loss or certificate uses sound bounds
    (IBP) trains in fp32 whatever the config says: bounds must be IEEE fp32."""
    n = {"train": "fp32", "evaluate": "fp32", "channels_last": False, **(config.get("numerics") or {})}
    dtype = n["train"] if kind == "train" else n["evaluate"]
    if kind == "train" and get_method(method).native_certificate == "bounds":
        dtype = "fp32"
    return {"precision": dtype, "channels_last": bool(n["channels_last"])}


def job_settings(kind: str, config: dict, w, **extra: Any) -> dict:
    """The slice of ``config`` a job of ``kind`` reads, for the model named by wildcards ``w``:
    the keys every job has (the model, device, data root, precision) and the kind's own
    (:attr:`bench.workflow.job_kinds.JobKind.settings`; ``table=`` for ``certify``, ``attack=`` for
    ``attack``), with sorted keys."""
    job = get_job_kind(kind)
    if job.settings is None:
        raise ValueError(f"job kind '{kind}' has no settings of its own"
                         + (f": each of its '{job.parts}' parts has" if job.parts else ""))
    s = _common(config, w)
    s.update(numerics(config, kind, w.method))
    s.update(job.settings(config, w, vicinities(config, w.dataset), **extra))
    return _canonical(s)


@functools.cache
def _stamp(modules: tuple[str, ...]) -> str:
    from bench.workflow.provenance import code_stamp

    return code_stamp(*modules)


def code_version(kind: str, method: str | None = None) -> dict[str, str]:
    """The code stamps of a job (:func:`bench.workflow.provenance.code_stamp`): ``engine``, the import
    closure of the job's module; ``method``, the method's own module where the result depends on it."""
    job = get_job_kind(kind)
    out = {"engine": _stamp(job.modules)}
    if method is not None and job.uses_method:
        out["method"] = _stamp((get_method(method).__module__,))
    return out


def benchmark_of(path: str, grouped: Iterable[str] = (), grouped_tables: Iterable[str] = (),
                 audit_grouped: bool = False) -> str | None:
    """The Snakemake ``benchmark:`` file of the job that wrote ``path`` (None for aggregates).

    ``results/<run>/<model>/certify/table1.json`` -> ``results/<run>/benchmarks/<model>/certify_table1.tsv``
    (or ``certifications.tsv``, the model's one certification job, when ``table1`` is in
    ``grouped_tables``: :func:`grouped_certifications`), and likewise ``model.json`` ->
    ``train.tsv``, ``attacks/<A>.json`` -> ``attack_<A>.tsv`` (or ``attacks.tsv``, the model's one
    attack job, when ``A`` is in ``grouped``: :func:`grouped_attacks`), ``audit.json`` (or
    ``certifications.tsv`` when ``audit_grouped``: :func:`grouped_audit`),
    ``native.json``, ``certify/validation.json`` -> ``<name>.tsv``.
    """
    try:
        out = Output.parse(path)
    except ValueError:
        return None
    ablation = out.model.ablation
    if out.kind == "model":
        name = "train"
    elif out.kind == "validation":
        name = "validation"
    elif out.kind == "certify":
        name = "certifications" if out.name in grouped_tables and not ablation else f"certify_{out.name}"
    elif out.kind == "attack":
        name = "attacks" if out.name in grouped and not ablation else f"attack_{out.name}"
    elif out.kind == "audit":
        name = "certifications" if audit_grouped and not ablation else "audit"
    elif out.kind == "native":
        name = "native"
    else:  # a kind registered beyond these: the one whose first (primary) output this is
        owners = [k for k in JOB_KINDS.values() if k.outputs[:1] == (out.kind,) and k.settings is not None]
        if not owners:
            return None
        name = owners[0].name + (f"_{out.name}" if out.name else "")
    return out.model.benchmark(name)
