"""Results a user can trust: a setting or code change reruns exactly what it affects, configs
never share results, every output carries its provenance, every rate its interval, and a
hard-killed DAG finishes with the same tables."""
from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.stats import clopper_pearson, mcnemar_exact
from bench.workflow import provenance

ROOT = Path(__file__).resolve().parents[1]
SNAKEMAKE = [sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile")]
TARGETS = ["reports/table1.csv", "reports/table12.csv"]


def snakemake(*args: str, cwd: Path, timeout: int = 900) -> subprocess.CompletedProcess:
    return subprocess.run([*SNAKEMAKE, *args], cwd=cwd, capture_output=True, text=True, timeout=timeout)


def small_config(path: Path, run: str = "a", **edits) -> Path:
    """The smoke config with two methods and two tables, no extra outputs: a DAG of seconds."""
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    for key in ("adaptive", "audit", "native", "masking", "ablation"):
        cfg.pop(key)
    cfg.update(run=run, methods=["erm", "ours"], tables=[1, 12])
    for key, value in edits.items():
        section, _, name = key.partition(".")
        if name:
            cfg.setdefault(section, {})[name] = value
        else:
            cfg[section] = value
    path.write_text(yaml.safe_dump(cfg))
    return path


def planned(config: Path, cwd: Path, *targets: str) -> dict[str, int]:
    """The jobs a dry run would run, by rule (empty when there is nothing to do)."""
    out = snakemake(*(targets or TARGETS), "-n", "--configfile", str(config), cwd=cwd)
    assert out.returncode == 0, out.stdout + out.stderr
    stats = out.stdout.split("Job stats:")[-1] if "Job stats:" in out.stdout else ""
    jobs = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", stats, re.M)}
    jobs.pop("total", None)
    return jobs


def run(config: Path, cwd: Path, *targets: str) -> None:
    out = snakemake(*(targets or TARGETS), "--cores", "2", "--configfile", str(config), cwd=cwd)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]


@pytest.fixture(scope="module")
def built(tmp_path_factory) -> Path:
    """A workdir in which the small config's Tables 1 and 12 have been built once."""
    work = tmp_path_factory.mktemp("trust")
    run(small_config(work / "a.yaml"), work)
    return work


def test_an_unchanged_config_has_nothing_to_do(built):
    assert planned(small_config(built / "a.yaml"), built) == {}


def test_a_certification_setting_reruns_only_that_tables_certification(built):
    config = small_config(built / "edit.yaml", **{"certify.confidences": [0.9, 0.99]})
    # Table 12's certify job of each model, its aggregate and its published copy; no training, no Table 1
    assert planned(config, built) == {"certify": 2, "aggregate": 1, "publish": 1}


def test_a_budget_change_reruns_every_certification_but_no_training(built):
    config = small_config(built / "edit.yaml", **{"certify.budget": 300})
    assert planned(config, built) == {"certify": 4, "aggregate": 2, "publish": 2}


def test_a_method_hyperparameter_reruns_only_that_methods_jobs(built):
    cfg_path = small_config(built / "edit.yaml")
    cfg = yaml.safe_load(cfg_path.read_text())
    cfg["hparams"]["ours"]["lam"] = 0.5
    cfg_path.write_text(yaml.safe_dump(cfg))
    assert planned(cfg_path, built) == {"train": 1, "certify": 2, "aggregate": 2, "publish": 2}


def test_configs_never_share_results_and_switching_back_recomputes_nothing(built):
    other = small_config(built / "b.yaml", run="b", **{"certify.kappa": 0.2})
    run(other, built)
    for name in ("a", "b"):
        assert (built / "results" / name / "fashion_mnist" / "erm" / "convnet" / "seed0" / "model.json").exists()
    t1_b = pd.read_csv(built / "reports" / "table1.csv")
    assert set(t1_b["code"].dropna()) and (built / "reports" / "b" / "table1.csv").exists()
    # back to the first config: its models and certificates are still there; only the top-level copies change
    back = small_config(built / "a.yaml")
    assert planned(back, built) == {"publish": 2}
    run(back, built)
    a = pd.read_csv(built / "reports" / "table1.csv")
    pd.testing.assert_frame_equal(a, pd.read_csv(built / "reports" / "a" / "table1.csv"))
    assert not a.equals(t1_b)


def test_every_job_output_records_its_provenance(built):
    model = json.loads((built / "results/a/fashion_mnist/ours/convnet/seed0/model.json").read_text())
    cert = json.loads((built / "results/a/fashion_mnist/ours/convnet/seed0/certify/table1.json").read_text())
    for prov in (model["provenance"], cert["provenance"]):
        assert set(prov) >= {"settings", "code", "git_commit", "packages", "device", "seed", "host", "created"}
        assert prov["packages"]["torch"] and prov["device"] == "cpu" and prov["seed"] == 0
    assert model["provenance"]["settings"]["hparams"]["n_samples"] == 2  # resolved hyperparameters
    assert cert["provenance"]["settings"]["budget"] == 200
    assert cert["provenance"]["model_code"] == model["provenance"]["code"]["engine"]
    assert model["provenance"]["code"]["method"] != cert["provenance"]["code"].get("method")


def test_every_rate_carries_its_exact_interval_and_the_best_is_tested(built):
    t1 = pd.read_csv(built / "reports" / "a" / "table1.csv")
    assert {"successes", "inputs", "ci_low", "ci_high", "best", "vs_best", "vs_best_p"} <= set(t1.columns)
    for r in t1.to_dict("records"):
        assert r["successes"] == round(r["value"] * r["inputs"] / 100)
        assert (r["ci_low"], r["ci_high"]) == pytest.approx(clopper_pearson(r["successes"], r["inputs"]))
        assert r["ci_low"] <= r["value"] <= r["ci_high"]
    for _, column in t1.groupby(["dataset", "procedure", "metric"]):
        assert column["best"].any()
        assert set(column["vs_best"].dropna()) <= {"best", "tie", "worse"}


def test_clopper_pearson_and_mcnemar_match_known_values():
    # scipy's exact interval for 0 of 10 is [0, 1 − 0.025^(1/10)]
    low, high = clopper_pearson(0, 10)
    assert low == 0 and high == pytest.approx(100 * (1 - 0.025 ** 0.1))
    assert clopper_pearson(10, 10)[1] == 100
    # 8 discordant pairs all one way: p = 2 · 0.5^8
    a, b = np.array([1] * 8 + [0, 1]), np.array([0] * 8 + [0, 1])
    assert mcnemar_exact(a, b)["p"] == pytest.approx(2 * 0.5 ** 8)
    assert mcnemar_exact(a, b, alternative="greater")["p"] == pytest.approx(0.5 ** 8)
    assert mcnemar_exact(a, a)["p"] == 1.0


def test_code_stamp_covers_what_a_job_runs_and_changes_with_it(tmp_path, monkeypatch):
    train = provenance.module_closure(("bench.jobs.train",))
    attack = provenance.module_closure(("bench.jobs.attack",))
    certify = provenance.module_closure(("bench.jobs.certify",))
    assert "bench.training.loop" in train and "bench.training.loop" not in attack and "bench.training.loop" not in certify
    assert "bench.evaluation.attacks" in attack and "bench.evaluation.attacks" not in train  # a lazy import counts
    assert "bench.certification.sequential" in certify and "methods.ours" not in certify
    assert "bench.certification.streams" in certify  # the sample streams, imported by bench.certification.engine
    assert "bench.certification.sequential" not in train
    before, train_before = provenance.code_stamp("bench.jobs.certify"), provenance.code_stamp("bench.jobs.train")
    copy = tmp_path / "sequential.py"
    copy.write_text(Path(certify["bench.certification.sequential"]).read_text() + "\n_EDIT = 1  # an edit that executes\n")
    real = provenance._origin

    def origin(name):
        return copy if name == "bench.certification.sequential" else real(name)

    monkeypatch.setattr(provenance, "_origin", origin)
    assert provenance.code_stamp("bench.jobs.certify") != before  # the certification jobs rerun
    assert provenance.code_stamp("bench.jobs.train") == train_before  # the trainings do not


def test_a_hard_killed_dag_resumes_to_the_same_tables(tmp_path):
    """kill -9 of a `python -m bench run` DAG mid-way (a power cut), then `python -m bench run`
    again: the lock's owner record names this host and a dead process, so it clears the stale
    lock, reruns the incomplete jobs and ends with the tables of an uninterrupted run."""
    config = small_config(tmp_path / "k.yaml", run="k")
    clean, killed = tmp_path / "clean", tmp_path / "killed"
    clean.mkdir()
    killed.mkdir()
    run(config, clean)
    bench_run = [sys.executable, "-m", "bench", "run", "--snakefile", str(ROOT / "Snakefile"), "--cores", "2",
                 *TARGETS, "--configfile", str(config)]
    proc = subprocess.Popen(bench_run, cwd=killed, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)
    models = killed / "results" / "k" / "fashion_mnist"
    deadline = time.time() + 300
    while time.time() < deadline and not list(models.glob("*/*/seed0/model.json")):
        time.sleep(0.5)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    assert list((killed / ".snakemake" / "locks").glob("*")), "the kill should leave Snakemake's lock behind"
    assert (killed / ".snakemake" / "bench-run-owner.json").is_file(), "and bench run's owner record"
    plain = snakemake(*TARGETS, "--cores", "2", "--configfile", str(config), cwd=killed)
    said = (plain.stdout + plain.stderr).lower()
    assert plain.returncode != 0 and ("lock" in said or "incomplete" in said)  # a plain rerun stops
    resumed = subprocess.run(bench_run, cwd=killed, capture_output=True, text=True, timeout=900)
    assert resumed.returncode == 0, resumed.stdout[-3000:] + resumed.stderr[-3000:]
    assert "stale lock" in resumed.stdout + resumed.stderr
    for table in ("table1", "table12"):
        a, b = (pd.read_csv(w / "reports" / f"{table}.csv") for w in (clean, killed))
        pd.testing.assert_frame_equal(a.drop(columns=["code", "model_code", "git_commit"], errors="ignore"),
                                      b.drop(columns=["code", "model_code", "git_commit"], errors="ignore"))


def test_a_table_defined_in_one_outside_module_enters_the_dag_and_the_report(built):
    plugin = str(ROOT / "examples" / "mean_samples.py")
    config = small_config(built / "plugin.yaml", plugins=[plugin], tables=[1, 12, "mean_samples"])
    assert planned(config, built, "reports/mean_samples.csv") == {"aggregate": 1, "publish": 1}
    run(config, built, "reports/mean_samples.csv", "reports/report.html")
    table = pd.read_csv(built / "reports" / "mean_samples.csv")
    assert set(table["method"]) == {"erm", "ours"} and (table["value"] > 0).all()
    html = (built / "reports" / "report.html").read_text()
    assert "Mean vicinity samples per input" in html and "Clopper–Pearson interval" in html


def test_a_local_run_starts_snakemake_without_probing_slurm(tmp_path):
    """``bench run``: a local run points the SLURM clients at an empty config (the executor
    plugin's ``scontrol`` probe then fails at once instead of waiting up to 10 s); a run that may
    submit (an executor or profile option, abbreviated or attached, ``$SNAKEMAKE_PROFILE``, a
    ``profiles/default`` Snakemake reads by itself) keeps the user's SLURM configuration."""
    from bench.cli import snakemake_env

    user = {"PATH": "/usr/bin", "SLURM_CONF": "/etc/slurm/slurm.conf"}
    local = ["--cores", "2", "--printshellcmds", "--rerun-incomplete", "reports/table1.csv"]
    assert snakemake_env(local, user, tmp_path)["SLURM_CONF"] == os.devnull
    for submitting in (["--profile", "profiles/slurm"], ["--profile=profiles/slurm"], ["-e", "slurm"], ["-eslurm"],
                       ["--executor", "slurm"], ["--executor=slurm"], ["--exec", "slurm"], ["--prof", "p"],
                       ["--workflow-profile", "p"]):
        assert snakemake_env(["--cores", "2", *submitting], user, tmp_path) == user, submitting
    assert snakemake_env([], {**user, "SNAKEMAKE_PROFILE": "slurm"}, tmp_path)["SLURM_CONF"] == user["SLURM_CONF"]
    (tmp_path / "profiles" / "default").mkdir(parents=True)
    assert snakemake_env(local, user, tmp_path) == user
    assert snakemake_env([], {"PATH": "/usr/bin"}, tmp_path / "elsewhere")["PATH"] == "/usr/bin"  # the rest passes through
    assert user["SLURM_CONF"] == "/etc/slurm/slurm.conf"  # the caller's mapping is not changed

