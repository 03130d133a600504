"""The kinds of job the DAG runs, each one declarative object in one registry.

A job kind declares what every part of the workflow needs to know of it:

- ``modules``: the job modules it runs (``bench.jobs.<kind>``); their import closure is its code
  stamp (:func:`bench.workflow.plan.code_version`), so editing that code reruns exactly its jobs;
- ``uses_method``: whether its result depends on the method's own module (training, and
  predicting by the method's rule), whose stamp then joins the job's;
- ``outputs``: the files it writes in a model's folder (:data:`bench.paths.OUTPUT_KINDS`), the
  primary one first (a job's benchmark file is named after it: :func:`bench.workflow.plan.benchmark_of`);
- ``resources``: ``train`` or ``eval``, the config's ``resources`` block it runs under
  (:func:`resources`, :func:`threads`: the rules read them from here);
- ``settings``: the slice of the config its jobs read, beyond the keys every job has
  (:func:`bench.workflow.plan.job_settings` adds those); ``parts``: for a kind that runs several jobs of
  another kind in one process (``attacks``, ``certifications``), that kind;
- ``cost``: the function of :mod:`bench.workflow.passes` that counts its work for the estimate
  (``"module:function"``, imported only when the estimate runs: the Snakefile's parse stays light).

Adding a kind is one :func:`register_job_kind` call here (or in a plugin) and one rule that
names its files through :mod:`bench.paths` (docs/extending.md, "Adding a job kind"). The
registry's style is the one of methods and tables (:func:`list_job_kinds`,
:func:`get_job_kind`: a clear error naming the known kinds).
"""
from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from bench.data import dataset_info
from bench.registry import Registry
from bench.runs import train_epochs
from bench.tables import get_table
from bench.training import get_method, shape_group

__all__ = ["JOB_KINDS", "JobKind", "get_job_kind", "list_job_kinds", "register_job_kind", "resources", "threads"]

#: ``settings(config, wildcards, vicinities, **extra) -> dict``: a kind's own slice of the config
Settings = Callable[..., dict]


@dataclass(frozen=True)
class JobKind:
    """One kind of job (see the module docstring for each field)."""

    name: str
    modules: tuple[str, ...]
    outputs: tuple[str, ...] = ()
    uses_method: bool = False
    resources: str | None = "eval"
    settings: Settings | None = None
    parts: str | None = None
    cost: str | None = None
    summary: str = ""

    def count(self, job: dict, config: dict) -> Any:
        """The work of one job of this kind (:class:`bench.workflow.passes.Work`), by its ``cost`` function."""
        if self.cost is None:
            raise ValueError(f"no cost model for job kind '{self.name}'")
        module, _, function = self.cost.partition(":")
        return getattr(importlib.import_module(module), function)(job, config)


JOB_KINDS: Registry[JobKind] = Registry("job kind")


def register_job_kind(kind: JobKind) -> JobKind:
    """Add ``kind`` to :data:`JOB_KINDS` (a name registered twice by different objects is refused)."""
    if "_" in kind.name:  # a job's benchmark file is <kind>_<name>.tsv: the kind is what precedes the first "_"
        raise ValueError(f"job kind '{kind.name}': a kind's name has no '_'")
    if kind.resources not in (None, "train", "eval"):
        raise ValueError(f"job kind '{kind.name}': resources must be 'train', 'eval' or None, not {kind.resources!r}")
    return JOB_KINDS.add(kind.name, kind)


def list_job_kinds() -> list[str]:
    return list(JOB_KINDS)


def get_job_kind(name: str) -> JobKind:
    return JOB_KINDS[name]


def threads(kind: str, config: dict) -> int:
    """The threads a job of ``kind`` runs with (``resources.train_threads`` / ``eval_threads``)."""
    return int(config["resources"][f"{get_job_kind(kind).resources}_threads"])


def resources(kind: str, config: dict) -> dict[str, Any]:
    """The Snakemake ``resources:`` of a job of ``kind``: its GPUs, time limit (minutes) and
    memory, and for an evaluation the activation-memory budget its forwards chunk to
    (:mod:`bench.compute.memory`; chunked and unchunked results are identical, tests/test_chunking.py,
    so it is a resource, not a param: changing it reruns nothing; 0: no chunking)."""
    r, which = config["resources"], get_job_kind(kind).resources
    out = {"gpu": r["gpus"], "runtime": r[f"{which}_minutes"], "mem_mb": r["mem_mb"]}
    if which == "eval":
        out["activation_memory_mb"] = r.get("activation_memory_mb") or 0
    return out


# --- the kinds --------------------------------------------------------------------------------------


def _train(config: dict, w, vic: dict[str, str], **extra: Any) -> dict:
    """The training block, the main vicinity and the method's resolved hyperparameters (an
    ablation run's value included)."""
    t = config["train"]
    overrides = {**config.get("hparams", {}).get(w.method, {}),
                 **({w.hparam: float(w.value)} if "hparam" in w.keys() else {})}
    batch = t["batch_size"]
    if batch == "recipe":  # the method's own (bench.training.method.Method.batch_size)
        batch = get_method(w.method).batch_size[shape_group(dataset_info(w.dataset))]
    return dict(augment=t.get("augment", "recipe"), epochs=train_epochs(config, w.method), batch_size=int(batch),
                train_per_class=t.get("train_per_class"), val_per_class=t.get("val_per_class"), vicinity=vic["main"],
                activation_memory_mb=config["resources"].get("activation_memory_mb"),
                hparams=get_method(w.method).resolve_hparams(dataset_info(w.dataset), overrides))


def _certify(config: dict, w, vic: dict[str, str], table: str, **extra: Any) -> dict:
    """That table's settings, the budget and the test subset; with a κ = 0 column, whether the
    method's own certificate is sound bounds (``Method.native_certificate``: only then is κ = 0
    certified, by IBP bounds), a property of the method carried as a setting so that a change of
    it reruns the job."""
    t = get_table(table)
    deterministic = t.deterministic(config)
    return dict(table=t.key, settings=t.settings(config, vic), budget=int(config["certify"]["budget"]),
                test_per_class=config["certify"].get("test_per_class"),
                block_inputs=config["certify"].get("block_inputs"),
                deterministic=vic["main"] if deterministic else None,
                **({"sound_bounds": get_method(w.method).native_certificate == "bounds"} if deterministic else {}))


def _attack(config: dict, w, vic: dict[str, str], attack: str, **extra: Any) -> dict:
    """The attack block, the L∞ eps, and the adaptive or masking block when the attack is one of theirs."""
    from bench.evaluation.masking import (
        CHECK_ATTACKS,  # local: bench.evaluation.masking imports torch (the Snakefile's parse)
    )

    a = config["attacks"]
    out = dict(attack=attack, linf=vic["main"], test_per_class=a.get("test_per_class"),
               batch_size=int(a["batch_size"]), autoattack_steps=int(a["autoattack_steps"]),
               square_queries=int(a["square_queries"]))
    if attack.startswith("Vote"):
        out["adaptive"] = dict(config["adaptive"])
    if attack in CHECK_ATTACKS:
        out["masking"] = {k: config["masking"][k] for k in ("more_steps", "unbounded_steps")}
    return out


def _audit(config: dict, w, vic: dict[str, str], **extra: Any) -> dict:
    """The audit block and the vicinities of the certificates it audits (Table 1's) only, so
    that a change of another table's vicinity (Table 2's transforms) reruns no audit."""
    audited = {g["vicinity"] for g in get_table("table1").settings(config, vic)}
    return dict(audit=dict(config["audit"]), test_per_class=config["certify"].get("test_per_class"),
                vicinities={name: spec for name, spec in vic.items() if name in audited})


def _native(config: dict, w, vic: dict[str, str], **extra: Any) -> dict:
    return dict(native=dict(config["native"]), linf=vic["main"])


def _validation(config: dict, w, vic: dict[str, str], **extra: Any) -> dict:
    c = config["certify"]
    return dict(kappa=c["kappa"], alpha=c["alpha"], procedure=c["procedures"][0], budget=int(c["budget"]),
                val_per_class=config["train"].get("val_per_class"), vicinity=vic["main"])


for _kind in (
    JobKind("train", ("bench.jobs.train",), ("model", "weights", "log"), uses_method=True, resources="train",
            settings=_train, cost="bench.workflow.passes:train_work", summary="one model per dataset, method, arch and seed"),
    # uses_method: an external model's class lives in its architecture's file when that is the user's
    # (models: arch: FILE:FUNCTION): an edit of that file reruns the import, and all that reads it
    JobKind("import", ("bench.jobs.external",), ("model", "weights", "log"), uses_method=True, resources=None, settings=_train,
            cost="bench.workflow.passes:import_work", summary="an external checkpoint (config models:) where training would be"),
    JobKind("vote", ("bench.jobs.vote",), ("model", "weights", "log"), resources=None, settings=_train,
            cost="bench.workflow.passes:import_work",
            summary="config vote: a method's trained model under its vote method's name (no training)"),
    JobKind("certify", ("bench.jobs.certify",), ("certify", "certify_inputs"), settings=_certify,
            cost="bench.workflow.passes:certify_job_work", summary="the certification settings of one table for one model"),
    JobKind("certifications", ("bench.jobs.certify", "bench.jobs.audit"), ("certify", "certify_inputs", "audit"),
            parts="certify", cost="bench.workflow.passes:certify_job_work",
            summary="certify.group: model: every table a model needs, and its audit, in one job"),
    JobKind("attack", ("bench.jobs.attack",), ("attack",), uses_method=True, settings=_attack,
            cost="bench.workflow.passes:attack_work", summary="one attack on one model, under the method's own prediction"),
    JobKind("attacks", ("bench.jobs.attacks",), ("attack",), uses_method=True, parts="attack",
            summary="attacks.group: model: the attacks every model needs, in one job (priced by its parts)"),
    JobKind("audit", ("bench.jobs.audit",), ("audit",), settings=_audit, cost="bench.workflow.passes:audit_work",
            summary="a fresh-sample audit of one model's Table 1 certificates"),
    JobKind("native", ("bench.jobs.native",), ("native",), uses_method=True, settings=_native,
            cost="bench.workflow.passes:native_work", summary="the method's own certificate (CERTIFY for RS, bounds for IBP)"),
    JobKind("validation", ("bench.jobs.validation",), ("validation",), settings=_validation,
            cost="bench.workflow.passes:validation_work", summary="arch: sweep: validation certified robust accuracy"),
    JobKind("aggregate", ("bench.tables",), resources=None, summary="one table from its jobs' outputs"),
):
    register_job_kind(_kind)
