# Names, paths and each job's params, from bench.workflow.plan and the table registry (bench.tables).
import json

import bench.workflow.job_kinds as job_kinds
import bench.workflow.plan as plan
from bench.workflow.extensions import load_extensions
from bench.evaluation.masking import TRANSFER_ATTACK, TRANSFER_SOURCE
from bench.paths import ModelRun, Output, reports_dir, run_log, selection_file, selection_log
from bench.tables import TABLES, CertificationTable, enabled_tables, get_table

load_extensions(config)  # the config's plugins and external models (bench.workflow.extensions)

# Every config has a name; its results and aggregates live under it, so configs never share a
# model or a certificate. reports/<file> at the top is a copy of the current config's.
NAME = config["run"]
# A model's folder as Snakemake wildcards (bench.paths: the one place that knows the layout);
# rules name their files through it: MODEL.output("model"), MODEL.log("train"), MODEL.benchmark(...).
MODEL = ModelRun.pattern(NAME)
ABLATION = ModelRun.pattern(NAME, ablation=True)
REPORTS = reports_dir(NAME)
# external checkpoints (config models:): the import_model rule, not training, makes their model
EXTERNAL_PATTERN = "|".join(plan.external_models(config)) or "(?!)"
VOTE_PATTERN = "|".join(plan.voted(config)) or "(?!)"  # methods scored by the vote (config vote:)
TRAINED_PATTERN = f"(?!(?:{EXTERNAL_PATTERN}|{VOTE_PATTERN})/)[A-Za-z0-9_]+"
ENABLED = [t.key for t in enabled_tables(config)]
CERTIFY_TABLES = [k for k, cls in TABLES.items() if issubclass(cls, CertificationTable)]
SWEEP = config["arch"] == "sweep"
GROUPED_ATTACKS = plan.grouped_attacks(config)  # attacks.group: model (one attack job per model)
GROUPED_TABLES = plan.grouped_certifications(config)  # certify.group: model (one certification job per model)
GROUPED_AUDIT = plan.grouped_audit(config)  # ... which audits its Table 1 certificates too


wildcard_constraints:
    dataset="[a-z0-9_]+",
    method="[A-Za-z0-9_]+",
    arch="[a-z0-9_]+|timm-[A-Za-z0-9_.]+",
    seed=r"\d+",
    attack="[A-Za-z0-9]+",
    hparam="[A-Za-z_]+",
    value=r"-?[0-9.]+(e-?[0-9]+)?",


def kind_resources(kind):
    """resources: of a job of ``kind`` (bench.workflow.job_kinds.resources: GPUs, minutes, memory, the activation budget)."""
    return job_kinds.resources(kind, config)


def kind_threads(kind):
    return job_kinds.threads(kind, config)


def settings(kind, **fixed):
    """params.settings of a job: the slice of the config it reads (bench.workflow.plan.job_settings)."""

    def of(wildcards):
        extra = {k: getattr(wildcards, k) for k in ("table", "attack") if k in wildcards.keys()}
        return plan.job_settings(kind, config, wildcards, **extra, **fixed)

    return of


def code(kind):
    """params.code of a job: the stamps of the code it runs (bench.workflow.plan.code_version)."""
    return lambda wildcards: plan.code_version(kind, wildcards.method)


def arch_of(dataset, method, seed):
    """The architecture a method is reported on: the paper's, or the sweep checkpoint's choice."""
    if not SWEEP:
        return plan.best_arch(method, dataset, config)
    chosen = checkpoints.select_arch.get(dataset=dataset, method=method, seed=seed).output[0]
    return json.loads(open(chosen).read())["arch"]


def transfer_source(wildcards):
    """The source method's model (erm) on the same dataset and seed: the transfer attack is crafted on it."""
    arch = arch_of(wildcards.dataset, TRANSFER_SOURCE, wildcards.seed)
    return ModelRun(NAME, wildcards.dataset, TRANSFER_SOURCE, arch, wildcards.seed).output("model")


def table_inputs(wildcards):
    return get_table(wildcards.table).inputs(config, arch_of)


def run_logs(wildcards=None):
    return [ModelRun.of(config, r).output("log") for r in plan.runs(config, arch_of, votes=False)]


def _copied_model(path):
    """Whether ``path`` is the model of a vote method (config vote:) or an external one (models:),
    which a local job copies: no benchmarked job wrote it."""
    try:
        out = Output.parse(path)
    except ValueError:  # not a model's output (a sweep's arch.json, say)
        return False
    return out.kind == "model" and (out.model.method in plan.voted(config) or out.model.method in plan.external_models(config))


def job_benchmarks(wildcards=None):
    """Every job's benchmark file, for the report's table of wall times."""
    outputs = [ModelRun.of(config, r).output("model") for r in plan.runs(config, arch_of)
               if r["method"] not in plan.external_models(config) and r["method"] not in plan.voted(config)]
    # an import or a vote method's model is no benchmarked job
    for key in ENABLED:  # a vote or external model is no job's benchmarked output (its job is local)
        outputs += [o for o in get_table(key).inputs(config, arch_of) if not _copied_model(o)]
    outputs += [ModelRun.of(config, r).output("model") for r in plan.ablation_runs(config)]
    if SWEEP:
        outputs += [ModelRun.of(config, r).output(kind) for r in plan.candidate_runs(config)
                    for kind in ("model", "validation")]
    return sorted({b for b in (plan.benchmark_of(o, GROUPED_ATTACKS, GROUPED_TABLES, GROUPED_AUDIT) for o in outputs) if b})
