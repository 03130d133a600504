"""What the DAG builds for a config: runs, their architectures, and each table's inputs.

The Snakefile asks this module for its targets, so that a new method module appears in the DAG
without touching the Snakefile (the method list is the registry's unless the config names some).
"""
from __future__ import annotations

from bench.data import dataset_info
from bench.method import available_methods, get_method, shape_group

__all__ = ["CERTIFY_TABLES", "ATTACK_TABLES", "attack_names", "best_arch", "methods", "result_dir", "runs",
           "table_inputs"]

CERTIFY_TABLES = (1, 2, 10, 11, 12)
ATTACK_TABLES = (3, 9)
#: Appendix C.1: the architecture each method is reported on
PAPER_ARCH = {
    "28x28": {"default": "convnet", "ibp": "cnn7"},
    "32x32": {"default": "resnet18", "ibp": "wrn8", "rs": "cifar_resnet110"},
}
RESULTS = "results/{dataset}/{method}/{arch}/seed{seed}"


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


def runs(config: dict) -> list[dict]:
    """One dict per training run: dataset, method, arch, seed."""
    if config.get("arch", "paper") != "paper":
        raise NotImplementedError("arch: sweep is not implemented yet; use arch: paper")
    return [{"dataset": d, "method": m, "arch": best_arch(m, d), "seed": s}
            for d in config["datasets"] for m in methods(config) for s in config["seeds"]]


def result_dir(run: dict) -> str:
    return RESULTS.format(**run)


def attack_names(config: dict) -> list[str]:
    from bench.attacks import ATTACKS

    names = config["attacks"]["names"]
    return list(ATTACKS) if names == "all" else list(names)


def table_inputs(config: dict, table: int) -> list[str]:
    """The job outputs a paper table is aggregated from."""
    out = []
    for run in runs(config):
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
