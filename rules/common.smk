# Targets and paths, from bench.plan (the method list is the registry's unless the config names some).
import bench.plan as plan
from bench.method import load_plugin

for _plugin in config.get("plugins", []):
    load_plugin(_plugin)

RUN = "results/{dataset}/{method}/{arch}/seed{seed}"
BENCH = "results/benchmarks/{dataset}/{method}/{arch}/seed{seed}"
LOGS = "results/logs/{dataset}/{method}/{arch}/seed{seed}"
TABLES = [int(t) for t in config["tables"]]


wildcard_constraints:
    dataset="[a-z0-9_]+",
    method="[A-Za-z0-9_]+",
    arch="[a-z0-9_]+",
    seed=r"\d+",
    table="|".join(str(t) for t in plan.CERTIFY_TABLES),
    attack="[A-Za-z0-9]+",


def table_inputs(wildcards):
    return plan.table_inputs(config, int(wildcards.table))


def run_logs(wildcards=None):
    return [f"{plan.result_dir(r)}/log.csv" for r in plan.runs(config)]


def job_benchmarks(wildcards=None):
    """Every job's benchmark file, for the report's table of wall times."""
    out = []
    for r in plan.runs(config):
        b = BENCH.format(**r)
        out.append(f"{b}/train.tsv")
        out += [f"{b}/certify{t}.tsv" for t in TABLES if t in plan.CERTIFY_TABLES]
        if 3 in TABLES:
            out.append(f"{b}/attack_AutoAttack.tsv")
        if 9 in TABLES:
            out += [f"{b}/attack_{a}.tsv" for a in plan.attack_names(config)]
    return out
