"""The Snakemake DAG: dry runs of every config, lint, config validation, the smoke DAG end to end."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

from bench.evaluation.attacks import ATTACKS
from bench.training import available_methods, get_method
from bench.workflow import plan

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]


def package_methods() -> set[str]:
    """The methods of the ``methods`` package: what a fresh process (the DAG) registers.

    Other tests register plugin methods in this process; the DAG does not see those."""
    return {k for k in available_methods() if get_method(k).__module__.startswith("methods.")}


def snakemake(*args: str, cwd: Path = ROOT, timeout: int = 600) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def job_counts(config: Path, cwd: Path) -> dict[str, int]:
    out = snakemake("-n", "--configfile", str(config), cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    return {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout, re.M)}


@pytest.fixture
def workdir(tmp_path) -> Path:
    """An empty working directory, so that runs do not touch the repository's results/."""
    return tmp_path


@pytest.mark.parametrize("name,datasets", [("config", 1), ("paper", 4), ("smoke", 1)])
def test_dry_run_builds_every_method_attack_and_table(workdir, name, datasets):
    config = ROOT / "config" / f"{name}.yaml"
    cfg = yaml.safe_load(config.read_text())
    counts = job_counts(config, workdir)
    methods = len(package_methods())
    assert methods >= 9
    models = datasets * methods * len(cfg["seeds"])
    names = list(ATTACKS) if cfg["attacks"]["names"] == "all" else cfg["attacks"]["names"]
    votes = len([m for m in package_methods() if get_method(m).vote])
    checks = {"PGDMoreSteps", "PGDUnbounded", "FGSM", "PGD", "Square"} - set(names)
    adaptive = len(cfg["adaptive"]["attacks"]) + 1  # + AutoAttack's rand version
    assert counts["train"] == models
    if cfg["certify"].get("group") == "model":  # one job per model (bench.workflow.plan.grouped_certifications)
        assert counts["certifications"] == models and counts.get("certify", 0) == 0
        assert plan.grouped_certifications(cfg) == ["table1", "table2", "table10", "table11", "table12"]
    else:
        assert counts["certify"] == models * 5  # Tables 1, 2, 10, 11, 12
    per_model = len(names) + 1 + len(checks)  # Table 9's, AutoAttack, the masking checks
    if cfg["attacks"].get("group") == "model":  # one job per model for those (bench.workflow.plan.grouped_attacks)
        assert counts["attacks"] == models and len(plan.grouped_attacks(cfg)) == per_model
        per_model = 0
    assert counts["attack"] == models * per_model + datasets * votes * adaptive
    assert counts["transfer"] == models - datasets  # every model but erm's own
    if plan.grouped_audit(cfg):  # in the model's certification job, after its Table 1
        assert counts.get("audit", 0) == 0 and cfg["certify"].get("group") == "model"
    else:
        assert counts["audit"] == models
    assert counts["native"] == datasets * 2  # RS (CERTIFY) and IBP (bounds)
    lambdas = datasets * len(cfg["ablation"]["values"])
    assert counts["train_ablation"] == counts["certify_ablation"] == counts["attack_ablation"] == lambdas
    # one aggregate per table: the paper's 8, plus adaptive 3 and 9, audit, native, masking, ablation,
    # and the paper's claims judged on the run
    assert counts["aggregate"] == len(cfg["tables"]) + 7 == 15
    assert counts["publish"] == counts["aggregate"] + 5  # every table, the report, three figures, job times
    assert counts["report"] == counts["figures"] == counts["figure2"] == 1
    if name != "smoke":
        assert len(names) == 25
    if name == "paper":
        assert cfg["ablation"]["values"] == [i / 4 for i in range(21)]  # λ from 0 to 5 in steps of 0.25


def test_sweep_trains_every_compatible_architecture_and_selects_by_validation(workdir):
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["arch"] = "sweep"
    config = workdir / "sweep.yaml"
    config.write_text(yaml.safe_dump(cfg))
    counts = job_counts(config, workdir)
    candidates = sum(len(get_method(m).architectures) for m in package_methods())
    assert counts["train"] == counts["validation"] == candidates
    assert counts["select_arch"] == len(package_methods())  # checkpoints: the rest follows their choice


def test_lint_reports_nothing():
    out = snakemake("--lint")
    assert out.returncode == 0, out.stdout + out.stderr
    assert "Lints for" not in out.stdout + out.stderr


@pytest.mark.parametrize("edit,message", [
    (lambda c: c["certify"].update(budget=-5), r"-5 is less than the minimum of 1.*budget"),
    (lambda c: c.update(colour="red"), r"Additional properties are not allowed \('colour' was unexpected\)"),
    (lambda c: c.update(datasets=["imagenet"]), r"'imagenet' is not one of \['mnist', 'fashion_mnist'"),
    (lambda c: c["certify"].update(procedures=["bayes"]), r"'bayes' is not one of \['paper', 'sprt', 'mixture'\]"),
])
def test_bad_config_stops_with_key_value_and_allowed(workdir, edit, message):
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    edit(cfg)
    bad = workdir / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake("-n", "--configfile", str(bad), cwd=workdir)
    assert out.returncode != 0
    assert re.search(message, out.stdout + out.stderr, re.S), out.stdout + out.stderr


def test_unknown_method_in_config_lists_the_known(workdir):
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["methods"] = ["erm", "adamw"]
    bad = workdir / "bad.yaml"
    bad.write_text(yaml.safe_dump(cfg))
    out = snakemake("-n", "--configfile", str(bad), cwd=workdir)
    assert out.returncode != 0 and "unknown method 'adamw'; known:" in out.stdout + out.stderr


def test_smoke_dag_runs_end_to_end_with_every_method_and_column(smoke_run):
    workdir, out = smoke_run  # the session's one smoke run (tests/conftest.py), shared with test_browser.py
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    reports = workdir / "reports"
    methods = package_methods()
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    procedures = set(cfg["certify"]["procedures"])
    t1 = pd.read_csv(reports / "table1.csv")
    assert set(t1["method"]) == methods
    assert set(t1["metric"]) == {"standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy"}
    assert set(t1["procedure"]) == procedures
    assert len(t1) == len(methods) * 3 * len(procedures) and t1["value"].between(0, 100).all()
    assert t1["paper"].notna().all() and set(t1["paper_dataset"]) == {"mnist"}
    t11 = pd.read_csv(reports / "table11.csv")
    ibp0 = t11[(t11["method"] == "ibp") & (t11["kappa"] == 0)]
    assert len(ibp0) == 1 and ibp0["value"].notna().all()  # κ = 0: sound bounds, IBP only
    assert t11[(t11["method"] != "ibp") & (t11["kappa"] == 0)]["value"].isna().all()
    t9 = pd.read_csv(reports / "table9.csv")
    assert set(t9["method"]) == methods and set(t9["attack"]) == set(cfg["attacks"]["names"])
    assert set(t9.loc[t9["method"].isin(["ours", "rs"]), "inference"]) == {"vote"}
    assert set(t9.loc[~t9["method"].isin(["ours", "rs"]), "inference"]) == {"argmax"}
    for number in cfg["tables"]:
        table = pd.read_csv(reports / f"table{number}.csv")
        assert set(table["method"]) == methods, number
    votes = {m for m in methods if get_method(m).vote}
    for name in ("table3_adaptive", "table9_adaptive"):
        adaptive = pd.read_csv(reports / f"{name}.csv")
        assert set(adaptive["method"]) == votes and set(adaptive["protocol"]) == {"adaptive"}
        assert adaptive["value"].between(0, 100).all()
    audit = pd.read_csv(reports / "certificate_audit.csv")
    assert set(audit["method"]) <= methods and set(audit["procedure"]) <= procedures
    assert (audit["audited"] <= cfg["audit"]["inputs"]).all() and (audit["wrong"] <= audit["audited"]).all()
    native = pd.read_csv(reports / "native_certificates.csv")
    assert set(native["method"]) == {"rs", "ibp"}
    assert {"CERTIFY (Cohen et al. 2019)", "IBP bounds (auto_LiRPA), κ = 0",
            "CROWN-IBP bounds (auto_LiRPA), κ = 0"} <= set(native["certificate"])
    masking = pd.read_csv(reports / "masking.csv")
    assert set(masking["method"]) == methods and masking.groupby("method").size().eq(5).all()
    erm_checks = masking[masking["method"] == "erm"].set_index("check")
    assert pd.isna(erm_checks.loc["transfer_stronger", "flag"])  # no transfer from erm to itself
    ablation = pd.read_csv(reports / "ablation.csv")
    assert sorted(ablation["hparam_value"].unique()) == sorted(cfg["ablation"]["values"])
    assert {"standard_accuracy", "certified_robust_accuracy", "autoattack_defence_success_rate"} == set(ablation["metric"])
    html = (reports / "report.html").read_text()
    for number in (1, 2, 3, 4, 9, 10, 11, 12):
        assert f"Table {number}:" in html
    for title in ("adaptive", "Certificate audit", "Native certificates", "Gradient-masking", "Figure 2"):
        assert title in html, title
    assert html.count("data:image/png;base64,") == 3 and "git commit" in html
    claims = pd.read_csv(reports / "claims.csv")  # every claim the run can speak to, judged
    assert {"table1_cra_above_da", "table1_accuracy_within_1_of_erm", "table3_autoattack_above_da"} <= set(claims["claim"])
    assert set(claims["verdict"]) <= {"supported", "contradicted", "not decided", "not comparable"}
    # ours votes, DA takes the argmax: Table 3's claim on them is no comparison
    assert claims.set_index("claim").loc["table3_autoattack_above_da", "verdict"] == "not comparable"
    assert html.index("<h2>Summary") < html.index("claims on this run") < html.index("<h2>Table 1:")
    times = pd.read_csv(reports / "job_times.csv")
    attack_jobs = len(set(cfg["attacks"]["names"]) | {"FGSM", "PGD", "Square", "PGDMoreSteps", "PGDUnbounded"}) + 1
    per_model = 1 + 5 + attack_jobs + 1 + 1  # train, certify, attacks + AutoAttack, transfer, audit
    expected = (len(methods) * per_model - 1 + 2 + len(votes) * 2  # erm: no transfer; native RS, IBP
                + len(cfg["ablation"]["values"]) * 3)
    assert len(times) == expected


def test_the_estimate_names_every_job_the_smoke_run_timed(smoke_run):
    """``bench plan --estimate … --measured`` puts each measured job beside its estimate."""
    from bench.workflow import estimate

    workdir, out = smoke_run
    assert out.returncode == 0, out.stderr[-3000:]
    times = pd.read_csv(workdir / "reports" / "job_times.csv")
    frame = estimate.estimate(estimate.load_config(ROOT / "config" / "smoke.yaml"), "cpu",
                              ROOT / "reports" / "bench" / "throughput.csv")
    both = estimate.compare(frame, times)
    assert set(both["job"]) == set(times["job"])
    assert (both["estimated_s"] > 0).all() and (both["ratio"] > 0).all()


def test_same_config_and_seed_give_the_same_tables(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg.update(methods=["erm", "ours"], tables=[1])
    config = tmp_path / "small.yaml"
    config.write_text(yaml.safe_dump(cfg))
    tables = []
    for run in ("a", "b"):
        work = tmp_path / run
        work.mkdir()
        out = snakemake("reports/table1.csv", "--cores", "2", "--configfile", str(config), cwd=work)
        assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
        tables.append(pd.read_csv(work / "reports" / "table1.csv"))
    pd.testing.assert_frame_equal(tables[0], tables[1])


def test_sweep_reports_each_method_on_its_best_validation_architecture(workdir):
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg.update(arch="sweep", methods=["rs"], tables=[1])
    config = workdir / "sweep.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = snakemake("reports/table1.csv", "reports/arch_selection.csv", "--cores", "2", "--configfile", str(config),
                    cwd=workdir)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    chosen = pd.read_csv(workdir / "reports" / "arch_selection.csv")
    assert len(chosen) == 1 and chosen["method"].item() == "rs"
    scores = yaml.safe_load(chosen["candidates"].item())  # JSON is YAML
    assert set(scores) == set(get_method("rs").architectures)
    best = max(scores.values(), key=lambda s: (s["certified_robust_accuracy"], s["standard_accuracy"]))
    assert scores[chosen["arch"].item()] == best
    table1 = pd.read_csv(workdir / "reports" / "table1.csv")
    assert set(table1["arch"]) == {chosen["arch"].item()}


@pytest.mark.slow
def test_grouped_attacks_are_one_job_per_model_with_the_same_results(smoke_run, tmp_path):
    """``attacks.group: model``: a model's attacks run in one job (one Python start instead of
    one per attack), and each attack's output holds the rows its own job writes in the smoke run."""
    smoke_dir, smoke = smoke_run
    assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-2000:]
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["attacks"]["group"] = "model"
    config = tmp_path / "grouped.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    work.mkdir()
    grouped = plan.grouped_attacks(cfg)
    assert {"AutoAttack", *cfg["attacks"]["names"], "PGDMoreSteps"} <= set(grouped)
    assert not any(a.startswith("Vote") or a.startswith("Transfer") for a in grouped)
    ungrouped, together = job_counts(ROOT / "config" / "smoke.yaml", work), job_counts(config, work)
    models = ungrouped["train"]
    assert together["attacks"] == models
    assert together["attack"] == ungrouped["attack"] - len(grouped) * models  # the Vote* attacks keep theirs
    model = "fashion_mnist/erm/convnet/seed0"
    out = snakemake(f"results/smoke/{model}/attacks/PGD.json", "--cores", "2", "--configfile", str(config), cwd=work)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (work / "results" / "smoke" / "benchmarks" / model / "attacks.tsv").is_file()
    assert "1 of 2 steps" in out.stdout + out.stderr  # train, then one attack job for all six
    for name in grouped:
        rows = [json.loads((d / "results" / "smoke" / model / "attacks" / f"{name}.json").read_text())["rows"][0]
                for d in (smoke_dir, work)]
        for row in rows:
            row.pop("seconds")
        assert rows[0] == rows[1], name


@pytest.mark.slow
def test_grouped_certifications_are_one_job_per_model_with_the_same_results(smoke_run, tmp_path):
    """``certify.group: model``: a model's certification tables run in one job (one Python start
    instead of five), and each table's outputs hold the rows and per-input outcomes its own job
    writes in the smoke run, while the tables certifying on one vicinity draw its samples once;
    the job then audits its Table 1 certificates, with the audit job's rows."""
    smoke_dir, smoke = smoke_run
    assert smoke.returncode == 0, smoke.stdout[-2000:] + smoke.stderr[-2000:]
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg["certify"]["group"] = "model"
    config = tmp_path / "grouped.yaml"
    config.write_text(yaml.safe_dump(cfg))
    work = tmp_path / "work"
    work.mkdir()
    grouped = plan.grouped_certifications(cfg)
    assert grouped == ["table1", "table2", "table10", "table11", "table12"]
    ungrouped, together = job_counts(ROOT / "config" / "smoke.yaml", work), job_counts(config, work)
    assert together["certifications"] == ungrouped["train"] and "certify" not in together
    assert together["certify_ablation"] == ungrouped["certify_ablation"]  # the ablation's keep a job each
    model = "fashion_mnist/ibp/cnn7/seed0"  # Table 11's κ = 0 from sound bounds runs for IBP only
    out = snakemake(f"results/smoke/{model}/certify/table11.json", "--cores", "2", "--configfile", str(config), cwd=work)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    assert (work / "results" / "smoke" / "benchmarks" / model / "certifications.tsv").is_file()
    assert "1 of 2 steps" in out.stdout + out.stderr  # train, then one certification job for all five
    drawn = [{}, {}]  # samples predicted per distinct setting, ungrouped and grouped
    for table in grouped:
        rows = [json.loads((d / "results" / "smoke" / model / "certify" / f"{table}.json").read_text())["rows"]
                for d in (smoke_dir, work)]
        for i, row in [(i, row) for i in (0, 1) for row in rows[i]]:  # the cost columns say what was shared
            if row.get("samples_drawn") is not None:  # ungrouped: per table; grouped: per setting
                key = (table if i == 0 else "", row["spec"], row["procedure"], row["kappa"], row["alpha"])
                drawn[i][key] = row["samples_drawn"]
            for cost in ("seconds", "samples_drawn", "stream"):
                row.pop(cost, None)
        assert rows[0] == rows[1], table
        inputs = [pd.read_csv(d / "results" / "smoke" / model / "certify" / f"{table}_inputs.csv")
                  for d in (smoke_dir, work)]
        pd.testing.assert_frame_equal(*inputs, obj=table)
    assert sum(drawn[1].values()) < sum(drawn[0].values())  # Tables 1, 11, 12 read one stream of the main vicinity
    # the same job audited its Table 1 certificates (bench.workflow.plan.grouped_audit), as the audit job does
    assert plan.grouped_audit(cfg) and "audit" not in together
    audits = [json.loads((d / "results" / "smoke" / model / "audit.json").read_text())["rows"] for d in (smoke_dir, work)]
    assert audits[0] == audits[1] and audits[0]
