# Targets and paths, from bench.plan (the method list is the registry's unless the config names some).
import json

import bench.plan as plan
from bench.method import load_plugin

for _plugin in config.get("plugins", []):
    load_plugin(_plugin)

RUN = "results/{dataset}/{method}/{arch}/seed{seed}"
ABLATION = "results/ablation/{dataset}/{method}/{arch}/{hparam}-{value}/seed{seed}"
BENCH = "results/benchmarks/{dataset}/{method}/{arch}/seed{seed}"
LOGS = "results/logs/{dataset}/{method}/{arch}/seed{seed}"
ABLATION_BENCH = "results/benchmarks/ablation/{dataset}/{method}/{arch}/{hparam}-{value}/seed{seed}"
ABLATION_LOGS = "results/logs/ablation/{dataset}/{method}/{arch}/{hparam}-{value}/seed{seed}"
TABLES = [int(t) for t in config["tables"]]
EXTRAS = plan.extra_tables(config)
SWEEP = config["arch"] == "sweep"


wildcard_constraints:
    dataset="[a-z0-9_]+",
    method="[A-Za-z0-9_]+",
    arch="[a-z0-9_]+",
    seed=r"\d+",
    table="|".join(str(t) for t in plan.CERTIFY_TABLES),
    attack="[A-Za-z0-9]+",
    hparam="[A-Za-z_]+",
    value=r"-?[0-9.]+(e-?[0-9]+)?",


def arch_of(dataset, method, seed):
    """The architecture a method is reported on: the paper's, or the sweep checkpoint's choice."""
    if not SWEEP:
        return plan.best_arch(method, dataset)
    chosen = checkpoints.select_arch.get(dataset=dataset, method=method, seed=seed).output[0]
    return json.loads(open(chosen).read())["arch"]


def transfer_source(wildcards):
    """erm's model on the same dataset and seed: the transfer attack is crafted on it."""
    arch = arch_of(wildcards.dataset, "erm", wildcards.seed)
    return f"results/{wildcards.dataset}/erm/{arch}/seed{wildcards.seed}/model.json"


def table_inputs(wildcards):
    return plan.table_inputs(config, int(wildcards.table), arch_of)


def extra_inputs(wildcards):
    return plan.extra_inputs(config, wildcards.name, arch_of)


def run_logs(wildcards=None):
    return [f"{plan.result_dir(r)}/log.csv" for r in plan.runs(config, arch_of)]


def job_benchmarks(wildcards=None):
    """Every job's benchmark file, for the report's table of wall times."""
    outputs = [f"{plan.result_dir(r)}/model.json" for r in plan.runs(config, arch_of)]
    for t in TABLES:
        outputs += plan.table_inputs(config, t, arch_of)
    for name in EXTRAS:
        outputs += plan.extra_inputs(config, name, arch_of)
    outputs += [f"{plan.result_dir(r)}/model.json" for r in plan.ablation_runs(config)]
    if SWEEP:
        outputs += [f"{plan.result_dir(r)}/{f}" for r in plan.candidate_runs(config)
                    for f in ("model.json", "certify/validation.json")]
    return sorted({b for b in map(plan.benchmark_of, outputs) if b})
