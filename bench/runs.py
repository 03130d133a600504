"""The models a config asks for: its methods, each one's architecture, and its runs.

A run is one model: a dict with ``dataset``, ``method``, ``arch``, ``seed`` (and, for Figure 2's
ablation, ``hparam`` and ``value``); :class:`bench.paths.ModelRun` gives its folder. The DAG
(:mod:`bench.workflow.plan`), the tables (:mod:`bench.tables`) and the estimate (:mod:`bench.workflow.passes`)
enumerate models through here, so none of them needs another to know what a config trains.

Architectures: with ``arch: paper`` each method is reported on the architecture of Appendix
C.1 (:func:`best_arch`); with ``arch: sweep`` every compatible architecture is trained
(:func:`candidate_runs`), scored on the validation split, and a Snakemake checkpoint records the
best per method and dataset; the functions below then take ``arch_of`` to read that choice.
"""
from __future__ import annotations

from collections.abc import Callable

from bench.data import dataset_info
from bench.paper import any_architecture
from bench.training import available_methods, get_method, shape_group
from bench.training.external import arch_name, external_models
from bench.training.voting import voted

__all__ = ["ArchOf", "PAPER_ARCH", "ablation_runs", "attack_names", "best_arch", "candidate_runs", "methods",
           "runs", "train_epochs", "vicinities"]

#: Appendix C.1: the architecture each method is reported on
PAPER_ARCH = {
    "28x28": {"default": "convnet", "ibp": "cnn7"},
    "32x32": {"default": "resnet18", "ibp": "wrn8", "rs": "cifar_resnet110"},
}
#: ``arch_of(dataset, method, seed)``: the architecture a method is reported on
ArchOf = Callable[[str, str, int], str]


def methods(config: dict) -> list[str]:
    """The config's methods, or every registered method when it says ``all``; with ``arch:
    timm:<name>``, those whose Table 7 entry allows any network (``all`` keeps only those, a
    listed method that cannot is refused)."""
    chosen = config["methods"]
    timm = str(config.get("arch", "paper")).startswith("timm:")
    external, votes = list(external_models(config)), list(voted(config))
    if chosen == "all":  # the registered methods, not what another config registered (an external, a vote)
        return [k for k in available_methods()
                if not timm or any_architecture(get_method(k).architectures)] + external + votes
    for key in chosen:
        cls = get_method(key)  # refuses unknown keys, listing the known
        if timm and not any_architecture(cls.architectures):
            raise ValueError(f"arch: {config['arch']}: method '{key}' cannot train an arbitrary network (Table 7 "
                             f"allows {', '.join(cls.architectures)}); remove it or use arch: paper")
    return list(chosen) + [k for k in external + votes if k not in chosen]


def best_arch(method: str, dataset: str, config: dict | None = None) -> str:
    """The paper's choice (Appendix C.1); for a method the mapping does not cover, the mapped
    default if the method can train it, else the first architecture it declares. With a
    ``config`` whose ``arch`` is ``timm:<name>``, that model."""
    if config is not None and method in voted(config):  # its method's model
        return best_arch(voted(config)[method], dataset, config)
    if config is not None and method in external_models(config):
        return arch_name(external_models(config)[method]["arch"])  # a path component: no colon, no '/'
    if config is not None and str(config.get("arch", "paper")).startswith("timm:"):
        return arch_name(config["arch"])
    group = PAPER_ARCH[shape_group(dataset_info(dataset))]
    declared = get_method(method).architectures
    arch = group.get(method, group["default"])
    return arch if arch in declared else declared[0]


def candidate_runs(config: dict) -> list[dict]:
    """``arch: sweep``: one run per compatible architecture (Table 7) of every method."""
    return [{"dataset": d, "method": m, "arch": a, "seed": s}
            for d in config["datasets"] for m in methods(config) if m not in voted(config)
            for a in get_method(m).architectures for s in config["seeds"]]


def runs(config: dict, arch_of: ArchOf | None = None, votes: bool = True) -> list[dict]:
    """One dict per reported model: dataset, method, arch, seed.

    ``arch_of(dataset, method, seed)`` gives the architecture; it is required with
    ``arch: sweep`` (the Snakefile passes the checkpoint's choice) and defaults to the paper's.
    ``votes``: with the vote methods of ``vote:`` (one per run of its method: the same model),
    which the attack tables score; the certification tables leave them out (their certificates
    are their methods').
    """
    if config.get("arch", "paper") == "sweep" and arch_of is None:
        raise ValueError("arch: sweep needs the selected architectures (arch_of); they exist only after "
                         "the select_arch checkpoint has run")
    arch_of = arch_of or (lambda d, m, s: best_arch(m, d, config))
    external, derived = external_models(config), voted(config)
    trained = [{"dataset": d, "method": m, "arch": arch_of(d, m, s), "seed": s}
               for d in config["datasets"] for m in methods(config) if m not in external and m not in derived
               for s in config["seeds"]]
    # an external checkpoint is one model of one dataset: seed 0 names it
    found = trained + [{"dataset": e["dataset"], "method": k, "arch": best_arch(k, e["dataset"], config), "seed": 0}
                       for k, e in external.items() if e["dataset"] in config["datasets"]]
    if not votes:
        return found
    # a vote method's models are its method's (bench.training.voting): one per run of it
    sources = {m: key for key, m in derived.items()}
    return found + [{**r, "method": sources[r["method"]]} for r in found if r["method"] in sources]


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


def train_epochs(config: dict, method: str) -> int:
    """A method's training epochs: ``train.method_epochs.<method>`` if set, else ``train.epochs``."""
    t = config["train"]
    return int((t.get("method_epochs") or {}).get(method, t["epochs"]))


def attack_names(config: dict) -> list[str]:
    """The config's attacks (``attacks.names``), or every attack of Table 9 when it says ``all``."""
    from bench.evaluation.attacks import ATTACKS  # local: torchattacks' import would slow every parse of the Snakefile

    names = config["attacks"]["names"]
    return list(ATTACKS) if names == "all" else list(names)


def vicinities(config: dict, dataset: str) -> dict[str, str]:
    """The config's vicinity specs for a dataset by name (``main``, ``small``, each transform):
    ``vicinities.all``, then its shape group (``28x28``, ``32x32``), then the dataset's own key
    (``vicinities.fashion_mnist``), later winning."""
    group = shape_group(dataset_info(dataset))
    v = config["vicinities"]
    return {**v["all"], **v.get(group, {}), **(v.get(dataset) or {})}
