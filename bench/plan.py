"""What the DAG builds for a config: runs, their architectures, paths, and each job's settings.

The Snakefile asks this module for its targets, so that a new method or table module appears in
the DAG without touching the Snakefile (methods: the registry's unless the config names some;
tables: :data:`bench.tables.TABLES`).

Isolation: every config has a name (``run:``) and its results live under ``results/<run>/`` and
``reports/<run>/``; two configs never share a model or a certificate.

Invalidation: each job receives, as Snakemake ``params``, the slice of the config it reads
(:func:`job_settings`, hyperparameters resolved) and the stamps of the code it runs
(:func:`code_version`); jobs read their settings from there and nowhere else. Changing a
setting or that code reruns exactly the jobs whose result it can change.

Architectures: with ``arch: paper`` each method is reported on the architecture of Appendix
C.1 (:func:`best_arch`); with ``arch: sweep`` every compatible architecture is trained
(:func:`candidate_runs`), scored on the validation split, and a Snakemake checkpoint records the
best per method and dataset; the functions below then take ``arch_of`` to read that choice.
"""
from __future__ import annotations

import functools
from collections.abc import Callable, Iterable
from typing import Any

from bench.data import dataset_info
from bench.external import external_models
from bench.method import available_methods, get_method, shape_group

__all__ = ["ablation_runs", "attack_names", "benchmark_of", "best_arch", "candidate_runs", "code_version",
           "external_models", "grouped_attacks", "grouped_certifications", "train_epochs",
           "job_settings", "methods", "numerics", "reports_dir", "result_dir", "runs", "selection_file", "vicinities"]

#: Appendix C.1: the architecture each method is reported on
PAPER_ARCH = {
    "28x28": {"default": "convnet", "ibp": "cnn7"},
    "32x32": {"default": "resnet18", "ibp": "wrn8", "rs": "cifar_resnet110"},
}
RESULTS = "results/{run}/{dataset}/{method}/{arch}/seed{seed}"
ABLATION = "results/{run}/ablation/{dataset}/{method}/{arch}/{hparam}-{value}/seed{seed}"
#: the modules each kind of job runs: their import closure is the job's code stamp
JOB_MODULES = {
    "train": ("bench.jobs.train",),
    "certify": ("bench.jobs.certify",),
    "import": ("bench.jobs.external",),
    "attack": ("bench.jobs.attack",),
    "attacks": ("bench.jobs.attacks",),  # attacks.group: model
    "certifications": ("bench.jobs.certify", "bench.jobs.audit"),  # certify.group: model, with the audit
    "audit": ("bench.jobs.audit",),
    "native": ("bench.jobs.native",),
    "validation": ("bench.jobs.validation",),
    "aggregate": ("bench.tables",),
}
#: the kinds whose result depends on the method's module (training, and predicting by its rule)
USES_METHOD = {"train", "attack", "attacks", "native"}
ArchOf = Callable[[str, str, int], str]


def methods(config: dict) -> list[str]:
    """The config's methods, or every registered method when it says ``all``; with ``arch:
    timm:<name>``, those whose Table 7 entry allows any network (``all`` keeps only those, a
    listed method that cannot is refused)."""
    from bench.paper import any_architecture

    chosen = config["methods"]
    timm = str(config.get("arch", "paper")).startswith("timm:")
    external = list(external_models(config))
    if chosen == "all":
        return [k for k in available_methods() if k not in external
                and (not timm or any_architecture(get_method(k).architectures))] + external
    for key in chosen:
        cls = get_method(key)  # refuses unknown keys, listing the known
        if timm and not any_architecture(cls.architectures):
            raise ValueError(f"arch: {config['arch']}: method '{key}' cannot train an arbitrary network (Table 7 "
                             f"allows {', '.join(cls.architectures)}); remove it or use arch: paper")
    return list(chosen) + [k for k in external if k not in chosen]


def best_arch(method: str, dataset: str, config: dict | None = None) -> str:
    """The paper's choice (Appendix C.1); for a method the mapping does not cover, the mapped
    default if the method can train it, else the first architecture it declares. With a
    ``config`` whose ``arch`` is ``timm:<name>``, that model."""
    if config is not None and method in external_models(config):
        return str(external_models(config)[method]["arch"]).replace("timm:", "timm-")
    if config is not None and str(config.get("arch", "paper")).startswith("timm:"):
        return "timm-" + config["arch"][len("timm:"):]  # a path component: no colon
    group = PAPER_ARCH[shape_group(dataset_info(dataset))]
    declared = get_method(method).architectures
    arch = group.get(method, group["default"])
    return arch if arch in declared else declared[0]


def _paper_arch(dataset: str, method: str, seed: int) -> str:
    return best_arch(method, dataset)


def candidate_runs(config: dict) -> list[dict]:
    """``arch: sweep``: one run per compatible architecture (Table 7) of every method."""
    return [{"dataset": d, "method": m, "arch": a, "seed": s}
            for d in config["datasets"] for m in methods(config)
            for a in get_method(m).architectures for s in config["seeds"]]


def runs(config: dict, arch_of: ArchOf | None = None) -> list[dict]:
    """One dict per reported training run: dataset, method, arch, seed.

    ``arch_of(dataset, method, seed)`` gives the architecture; it is required with
    ``arch: sweep`` (the Snakefile passes the checkpoint's choice) and defaults to the paper's.
    """
    if config.get("arch", "paper") == "sweep" and arch_of is None:
        raise ValueError("arch: sweep needs the selected architectures (arch_of); they exist only after "
                         "the select_arch checkpoint has run")
    arch_of = arch_of or (lambda d, m, s: best_arch(m, d, config))
    external = external_models(config)
    trained = [{"dataset": d, "method": m, "arch": arch_of(d, m, s), "seed": s}
               for d in config["datasets"] for m in methods(config) if m not in external for s in config["seeds"]]
    # an external checkpoint is one model of one dataset: seed 0 names it
    return trained + [{"dataset": e["dataset"], "method": k, "arch": best_arch(k, e["dataset"], config), "seed": 0}
                      for k, e in external.items() if e["dataset"] in config["datasets"]]


def ablation_runs(config: dict) -> list[dict]:
    """Figure 2's runs: the ablated method with each value of its varied hyperparameter."""
    ab = config.get("ablation")
    if not ab:
        return []
    get_method(ab["method"])
    return [{"dataset": d, "method": ab["method"], "arch": best_arch(ab["method"], d, config), "hparam": ab["hparam"],
             "value": _value(v), "seed": s}
            for d in config["datasets"] for v in ab["values"] for s in config["seeds"]]


def _value(v: float) -> str:
    """A hyperparameter value as a path component: 0.25 -> '0.25', 1 -> '1.0'."""
    return repr(float(v))


def result_dir(config: dict, run: dict) -> str:
    """``results/<config's run name>/<dataset>/<method>/<arch>/seed<seed>`` (ablation runs add
    ``ablation/`` and ``<hparam>-<value>``)."""
    return (ABLATION if "hparam" in run else RESULTS).format(run=config["run"], **run)


def reports_dir(config: dict) -> str:
    """Where the config's aggregates live; ``reports/<name>`` at the top is the current config's copy."""
    return f"reports/{config['run']}"


def selection_file(config: dict, dataset: str, method: str, seed: int) -> str:
    """The ``arch: sweep`` checkpoint's record of one method's chosen architecture."""
    return f"results/{config['run']}/{dataset}/{method}/seed{seed}/arch.json"


def attack_names(config: dict) -> list[str]:
    from bench.attacks import ATTACKS

    names = config["attacks"]["names"]
    return list(ATTACKS) if names == "all" else list(names)


def train_epochs(config: dict, method: str) -> int:
    """A method's training epochs: ``train.method_epochs.<method>`` if set, else ``train.epochs``."""
    t = config["train"]
    return int((t.get("method_epochs") or {}).get(method, t["epochs"]))


def grouped_attacks(config: dict) -> list[str]:
    """The attacks one job per model runs together (``attacks.group: model``); none by default
    (one job per attack and model).

    They are the attacks that the enabled tables ask of every model (Table 9's, AutoAttack, the
    gradient-masking checks), in the tables' order. The adaptive ``Vote*`` attacks (some models
    only, and the long ones) and the transfer attack (crafted on another model) keep a job each."""
    if config["attacks"].get("group", "attack") != "model":
        return []
    from bench.masking import TRANSFER_ATTACK

    return [a for a in _every_model_needs(config, "attacks") if a != TRANSFER_ATTACK]


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
    from bench.tables import enabled_tables

    return "table1" in grouped_certifications(config) and any(t.config_key == "audit" for t in enabled_tables(config))


def _every_model_needs(config: dict, folder: str) -> list[str]:
    """The names of the ``<model>/<folder>/<name>.json`` outputs that the enabled tables ask of
    every (non-ablation) model, in the tables' order."""
    from bench.tables import enabled_tables

    per_model: dict[str, list[str]] = {}
    for table in enabled_tables(config):
        for path in table.inputs(config):  # the paper's architectures: output names do not depend on them
            model, found, name = path.rpartition(f"/{folder}/")
            if found and "/ablation/" not in model and name.endswith(".json"):
                per_model.setdefault(model, []).append(name[: -len(".json")])
    if not per_model:
        return []
    common = set.intersection(*(set(v) for v in per_model.values()))
    return [a for a in dict.fromkeys(a for v in per_model.values() for a in v) if a in common]


def vicinities(config: dict, dataset: str) -> dict[str, str]:
    """The config's vicinity specs for a dataset by name (``main``, ``small``, each transform):
    ``vicinities.all``, then its shape group (``28x28``, ``32x32``), then the dataset's own key
    (``vicinities.fashion_mnist``), later winning."""
    group = shape_group(dataset_info(dataset))
    v = config["vicinities"]
    return {**v["all"], **v.get(group, {}), **(v.get(dataset) or {})}


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
    """The precision a job runs at (config block ``numerics``, :mod:`bench.precision`): training
    at ``numerics.train``, every evaluation of a model at ``numerics.evaluate`` (one precision
    per table), channels_last for both. A method whose loss or certificate uses sound bounds
    (IBP) trains in fp32 whatever the config says: bounds must be IEEE fp32."""
    n = {"train": "fp32", "evaluate": "fp32", "channels_last": False, **(config.get("numerics") or {})}
    dtype = n["train"] if kind == "train" else n["evaluate"]
    if kind == "train" and get_method(method).native_certificate == "bounds":
        dtype = "fp32"
    return {"precision": dtype, "channels_last": bool(n["channels_last"])}


def job_settings(kind: str, config: dict, w, **extra: Any) -> dict:
    """The slice of ``config`` a job of ``kind`` reads, for the model named by wildcards ``w``.

    ``train``: the training block, the main vicinity and the method's resolved hyperparameters
    (an ablation run's value included); ``certify`` (``table=`` the table key): that table's
    settings, budget and test subset; ``attack`` (``attack=`` its name): the attack block, the
    L∞ eps, and the adaptive or masking block when the attack is one of theirs; ``audit``,
    ``native``, ``validation``: their blocks and the vicinities they use.
    """
    from bench.tables import get_table

    s = _common(config, w)
    s.update(numerics(config, kind, w.method))
    vic = vicinities(config, w.dataset)
    if kind == "train":
        t = config["train"]
        overrides = {**config.get("hparams", {}).get(w.method, {}),
                     **({w.hparam: float(w.value)} if "hparam" in w.keys() else {})}
        batch = t["batch_size"]
        if batch == "recipe":  # the method's own (bench.method.Method.batch_size)
            batch = get_method(w.method).batch_size[shape_group(dataset_info(w.dataset))]
        s.update(augment=t.get("augment", "recipe"), epochs=train_epochs(config, w.method), batch_size=int(batch), train_per_class=t.get("train_per_class"),
                 val_per_class=t.get("val_per_class"), vicinity=vic["main"],
                 activation_memory_mb=config["resources"].get("activation_memory_mb"),
                 hparams=get_method(w.method).resolve_hparams(dataset_info(w.dataset), overrides))
    elif kind == "certify":
        table = get_table(extra["table"])
        s.update(table=table.key, settings=table.settings(config, vic), budget=int(config["certify"]["budget"]),
                 test_per_class=config["certify"].get("test_per_class"),
                 block_inputs=config["certify"].get("block_inputs"),
                 deterministic=vic["main"] if table.deterministic(config) else None)
    elif kind == "attack":
        a, name = config["attacks"], extra["attack"]
        s.update(attack=name, linf=vic["main"], test_per_class=a.get("test_per_class"),
                 batch_size=int(a["batch_size"]), autoattack_steps=int(a["autoattack_steps"]),
                 square_queries=int(a["square_queries"]))
        if name.startswith("Vote"):
            s["adaptive"] = dict(config["adaptive"])
        from bench.masking import CHECK_ATTACKS

        if name in CHECK_ATTACKS:
            s["masking"] = {k: config["masking"][k] for k in ("more_steps", "unbounded_steps")}
    elif kind == "audit":
        c = config["certify"]
        s.update(audit=dict(config["audit"]), test_per_class=c.get("test_per_class"), vicinities=vic)
    elif kind == "native":
        s.update(native=dict(config["native"]), linf=vic["main"])
    elif kind == "validation":
        c = config["certify"]
        s.update(kappa=c["kappa"], alpha=c["alpha"], procedure=c["procedures"][0], budget=int(c["budget"]),
                 val_per_class=config["train"].get("val_per_class"), vicinity=vic["main"])
    else:
        raise ValueError(f"no such job kind: {kind}; known: {', '.join(JOB_MODULES)}")
    return _canonical(s)


@functools.cache
def _stamp(modules: tuple[str, ...]) -> str:
    from bench.provenance import code_stamp

    return code_stamp(*modules)


def code_version(kind: str, method: str | None = None) -> dict[str, str]:
    """The code stamps of a job (:func:`bench.provenance.code_stamp`): ``engine``, the import
    closure of the job's module; ``method``, the method's own module where the result depends on it."""
    out = {"engine": _stamp(JOB_MODULES[kind])}
    if method is not None and kind in USES_METHOD:
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
    parts = path.split("/")
    seed = next((i for i, part in enumerate(parts) if part.startswith("seed")), None)
    if parts[0] != "results" or seed is None or seed == len(parts) - 1 or len(parts) < 3:
        return None
    name_of_run, model, tail = parts[1], "/".join(parts[2 : seed + 1]), parts[seed + 1 :]
    if tail == ["model.json"]:
        name = "train"
    elif tail[0] == "certify" and tail[1].endswith(".json"):
        stem = tail[1][: -len(".json")]
        if stem == "validation":
            name = "validation"
        else:
            name = "certifications" if stem in grouped_tables and "ablation" not in parts else f"certify_{stem}"
    elif tail[0] == "attacks":
        attack = tail[1][: -len(".json")]
        name = "attacks" if attack in grouped and "ablation" not in parts else "attack_" + attack
    elif tail == ["audit.json"] and audit_grouped and "ablation" not in parts:
        name = "certifications"
    elif tail[0] in ("audit.json", "native.json"):
        name = tail[0][: -len(".json")]
    else:
        return None
    return f"results/{name_of_run}/benchmarks/{model}/{name}.tsv"
