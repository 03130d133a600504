"""What the DAG builds for a config: runs, their architectures, and each output's inputs.

The Snakefile asks this module for its targets, so that a new method module appears in the DAG
without touching the Snakefile (the method list is the registry's unless the config names some).

Architectures: with ``arch: paper`` each method is reported on the architecture of Appendix
C.1 (:func:`best_arch`); with ``arch: sweep`` every compatible architecture is trained
(:func:`candidate_runs`), scored on the validation split, and a Snakemake checkpoint records the
best per method and dataset; the functions below then take ``arch_of`` to read that choice.
"""
from __future__ import annotations

from collections.abc import Callable

from bench.data import dataset_info
from bench.method import available_methods, get_method, shape_group

__all__ = ["ATTACK_TABLES", "CERTIFY_TABLES", "EXTRA_TABLES", "ablation_runs", "attack_names", "best_arch",
           "benchmark_of", "candidate_runs", "extra_inputs", "extra_tables", "methods", "result_dir", "runs", "table_inputs"]

CERTIFY_TABLES = (1, 2, 10, 11, 12)
ATTACK_TABLES = (3, 9)
#: the outputs beyond the paper (issue 5) and the selection record, by the config key enabling them
EXTRA_TABLES = {
    "adaptive": ["table3_adaptive", "table9_adaptive"],
    "audit": ["certificate_audit"],
    "native": ["native_certificates"],
    "masking": ["masking"],
}
#: Appendix C.1: the architecture each method is reported on
PAPER_ARCH = {
    "28x28": {"default": "convnet", "ibp": "cnn7"},
    "32x32": {"default": "resnet18", "ibp": "wrn8", "rs": "cifar_resnet110"},
}
RESULTS = "results/{dataset}/{method}/{arch}/seed{seed}"
ABLATION = "results/ablation/{dataset}/{method}/{arch}/{hparam}-{value}/seed{seed}"
ArchOf = Callable[[str, str, int], str]


def methods(config: dict) -> list[str]:
    """The config's methods, or every registered method when it says ``all``."""
    chosen = config["methods"]
    if chosen == "all":
        return available_methods()
    for key in chosen:
        get_method(key)  # refuses unknown keys, listing the known
    return list(chosen)


def best_arch(method: str, dataset: str) -> str:
    """The paper's choice (Appendix C.1); for a method the mapping does not cover, the mapped
    default if the method can train it, else the first architecture it declares."""
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
    arch_of = arch_of or _paper_arch
    return [{"dataset": d, "method": m, "arch": arch_of(d, m, s), "seed": s}
            for d in config["datasets"] for m in methods(config) for s in config["seeds"]]


def ablation_runs(config: dict) -> list[dict]:
    """Figure 2's runs: the ablated method with each value of its varied hyperparameter."""
    ab = config.get("ablation")
    if not ab:
        return []
    get_method(ab["method"])
    return [{"dataset": d, "method": ab["method"], "arch": best_arch(ab["method"], d), "hparam": ab["hparam"],
             "value": _value(v), "seed": s}
            for d in config["datasets"] for v in ab["values"] for s in config["seeds"]]


def _value(v: float) -> str:
    """A hyperparameter value as a path component: 0.25 -> '0.25', 1 -> '1.0'."""
    return repr(float(v))


def result_dir(run: dict) -> str:
    return (ABLATION if "hparam" in run else RESULTS).format(**run)


def attack_names(config: dict) -> list[str]:
    from bench.attacks import ATTACKS

    names = config["attacks"]["names"]
    return list(ATTACKS) if names == "all" else list(names)


def table_inputs(config: dict, table: int, arch_of: ArchOf | None = None) -> list[str]:
    """The job outputs a paper table is aggregated from."""
    out = []
    for run in runs(config, arch_of):
        base = result_dir(run)
        if table in CERTIFY_TABLES:
            out.append(f"{base}/certify/table{table}.json")
        elif table == 3:
            out.append(f"{base}/attacks/AutoAttack.json")
        elif table == 9:
            out += [f"{base}/attacks/{a}.json" for a in attack_names(config)]
        elif table == 4:
            out += [f"{base}/model.json", f"{base}/certify/table1.json"]
        else:
            raise ValueError(f"no such table: {table}")
    return out


def extra_tables(config: dict) -> list[str]:
    """Names of the beyond-the-paper outputs the config enables (``reports/<name>.csv``)."""
    out = [name for key, names in EXTRA_TABLES.items() if config.get(key) for name in names]
    if config.get("ablation"):
        out.append("ablation")
    if config.get("arch") == "sweep":
        out.append("arch_selection")
    return out


def _vote_methods(config: dict) -> list[str]:
    return [m for m in methods(config) if get_method(m).vote]


def extra_inputs(config: dict, name: str, arch_of: ArchOf | None = None) -> list[str]:
    """The job outputs ``reports/<name>.csv`` is aggregated from."""
    from bench.masking import NEEDED, TRANSFER_ATTACK, TRANSFER_SOURCE

    if name == "arch_selection":  # the checkpoints' own outputs: listed without reading them
        return [f"results/{d}/{m}/seed{s}/arch.json"
                for d in config["datasets"] for m in methods(config) for s in config["seeds"]]
    out = []
    reported = runs(config, arch_of)
    if name in ("table3_adaptive", "table9_adaptive"):
        attacks = ["AutoAttack"] if name == "table3_adaptive" else list(config["adaptive"]["attacks"])
        out += [f"{result_dir(r)}/attacks/Vote{a}.json" for r in reported if r["method"] in _vote_methods(config)
                for a in attacks]
    elif name == "certificate_audit":
        out += [f"{result_dir(r)}/audit.json" for r in reported]
    elif name == "native_certificates":
        for r in reported:
            if get_method(r["method"]).native_certificate:
                out += [f"{result_dir(r)}/native.json", f"{result_dir(r)}/certify/table1.json"]
    elif name == "masking":
        for r in reported:
            # the transfer is crafted on erm's model: none for erm itself, none without erm
            no_transfer = r["method"] == TRANSFER_SOURCE or TRANSFER_SOURCE not in methods(config)
            needed = [a for a in NEEDED if not (a == TRANSFER_ATTACK and no_transfer)]
            out += [f"{result_dir(r)}/attacks/{a}.json" for a in needed]
    elif name == "ablation":
        for r in ablation_runs(config):
            out += [f"{result_dir(r)}/certify/table1.json", f"{result_dir(r)}/attacks/AutoAttack.json"]
    else:
        raise ValueError(f"no such output: {name}; known: {', '.join(sum(EXTRA_TABLES.values(), []))}, "
                         "ablation, arch_selection")
    return out


def benchmark_of(path: str) -> str | None:
    """The Snakemake ``benchmark:`` file of the job that wrote ``path`` (None for aggregates).

    ``results/<run>/certify/table1.json`` -> ``results/benchmarks/<run>/certify1.tsv``, and
    likewise ``model.json`` -> ``train.tsv``, ``attacks/<A>.json`` -> ``attack_<A>.tsv``,
    ``audit.json``, ``native.json``, ``certify/validation.json`` -> ``<name>.tsv``.
    """
    parts = path.split("/")
    seed = next((i for i, part in enumerate(parts) if part.startswith("seed")), None)
    if parts[0] != "results" or seed is None or seed == len(parts) - 1:
        return None
    run, tail = "/".join(parts[1 : seed + 1]), parts[seed + 1 :]
    if tail == ["model.json"]:
        name = "train"
    elif tail[0] == "certify" and tail[1].endswith(".json"):
        name = tail[1][: -len(".json")].replace("table", "certify")
    elif tail[0] == "attacks":
        name = "attack_" + tail[1][: -len(".json")]
    elif tail[0] in ("audit.json", "native.json"):
        name = tail[0][: -len(".json")]
    else:
        return None
    return f"results/benchmarks/{run}/{name}.tsv"
