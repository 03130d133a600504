"""``config/gpu-check.yaml`` on the CPU at a smaller size: its 32×32 architectures (ResNet-18,
WRN-8, ResNet-110) through every job kind, on synthetic CIFAR-10-format files staged by
``python -m bench data fetch --config``. On a GPU the file runs as it is (docs/scale.md)."""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
import yaml
from test_workflow import SNAKEMAKE

ROOT = Path(__file__).resolve().parent.parent


def smaller(config: dict) -> dict:
    """The same file with the sizes a 2-core CPU runs in minutes: one 32×32 dataset, the three
    methods whose architectures are the 32×32 ones (ERM: ResNet-18, IBP: WRN-8, RS: ResNet-110;
    ERM is also the transfer attack's source), tiny subsets and budgets, and the smoke config's
    small attack and sample counts."""
    smoke = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config = {**config, "datasets": ["cifar10"], "methods": ["erm", "ibp", "rs"], "run": "gpu-check-cpu",
              "device": "cpu"}
    config["data"] = {**config["data"], "synthetic": {"cifar10": 2}}
    config["train"] = {**config["train"], "epochs": 1, "batch_size": 32, "train_per_class": 2, "val_per_class": 1}
    config["hparams"] = {k: v for k, v in smoke["hparams"].items() if k in config["methods"]}
    config["certify"] = {**smoke["certify"], "test_per_class": 1, "block_inputs": 4, "group": config["certify"].get("group", "table")}
    config["attacks"] = {**smoke["attacks"], "names": ["FGSM"], "group": config["attacks"].get("group", "attack")}
    config["tables"] = [1, 9]  # certify and attack jobs (AutoAttack's Table 3 runs in the smoke test)
    config["resources"] = {**smoke["resources"], "activation_memory_mb": 64}
    # the adaptive attacks and the masking checks are attack jobs too: the smoke test runs them
    config["adaptive"] = config["masking"] = None
    config["audit"] = {**smoke["audit"], "samples": 100}
    config["native"] = {**smoke["native"], "smoothing": {"n0": 10, "n": 50, "alpha": 0.001, "radii": [0.0]}}
    config["ablation"] = None  # the ablation trains ours, not one of these three
    config["numerics"] = {"train": "fp32", "evaluate": "fp32", "channels_last": False}
    return config


@pytest.fixture(scope="module")
def run(tmp_path_factory) -> Path:
    work = tmp_path_factory.mktemp("gpu_check")
    config = smaller(yaml.safe_load((ROOT / "config" / "gpu-check.yaml").read_text()))
    path = work / "gpu-check-cpu.yaml"
    path.write_text(yaml.safe_dump(config))
    staged = subprocess.run([sys.executable, "-m", "bench", "data", "fetch", "--config", str(path)], cwd=work,
                            capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONSAFEPATH": "1"})
    assert staged.returncode == 0, staged.stderr
    assert "SYNTHETIC" in staged.stderr
    out = subprocess.run([*SNAKEMAKE, "--cores", "2", "--configfile", str(path)], cwd=work, capture_output=True,
                         text=True, timeout=1500)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    return work


def test_the_gpu_check_config_is_the_paper_s_recipes_on_its_architectures():
    config = yaml.safe_load((ROOT / "config" / "gpu-check.yaml").read_text())
    assert config["hparams"] == {} and config["arch"] == "paper"
    paper = yaml.safe_load((ROOT / "config" / "paper.yaml").read_text())
    assert config["train"]["batch_size"] == paper["train"]["batch_size"]
    assert config["certify"]["budget"] == paper["certify"]["budget"]
    # what sets a job's memory is the paper's: the attacks' batch, the vote's samples
    assert config["attacks"]["batch_size"] == paper["attacks"]["batch_size"]
    assert config["adaptive"]["vote_samples"] == paper["adaptive"]["vote_samples"]
    # the iteration counts, which only its time is linear in, are cut (the file's header says why)
    for block, key in [("attacks", "autoattack_steps"), ("attacks", "square_queries"), ("adaptive", "steps"),
                       ("adaptive", "eot_iter")]:
        assert 0 < config[block][key] < paper[block][key], key
    # every architecture of the paper: SVHN's are CIFAR-10's, on the same 32x32 images
    assert {"fashion_mnist", "cifar10"} == set(config["datasets"]) and "svhn" in paper["datasets"]


def test_every_32x32_architecture_runs_every_job_kind(run):
    reports = run / "reports" / "gpu-check-cpu"
    t1 = pd.read_csv(reports / "table1.csv")
    assert set(t1["arch"]) == {"resnet18", "wrn8", "cifar_resnet110"}
    assert set(pd.read_csv(reports / "table9.csv")["attack"]) == {"FGSM"}
    kinds = {p.name.split("_")[0].removesuffix(".tsv") for p in (run / "results" / "gpu-check-cpu" / "benchmarks")
             .rglob("*.tsv")}
    config = yaml.safe_load((ROOT / "config" / "gpu-check.yaml").read_text())
    grouped = {"certify": config["certify"].get("group") == "model", "attack": config["attacks"].get("group") == "model"}
    # one job per model for its certifications and its attacks when the file groups them, as it does
    assert {"train", "native", "certifications" if grouped["certify"] else "certify",
            "attacks" if grouped["attack"] else "attack"} <= kinds
    # the audit runs in the certification job when that is one per model (bench.workflow.plan.grouped_audit)
    assert ("audit" in kinds) != grouped["certify"]
    assert len(list((run / "results" / "gpu-check-cpu").rglob("audit.json"))) == len(t1[["method", "arch"]].drop_duplicates())
    assert (reports / "report.html").exists()
    # the synthetic data is marked as such where it was written
    assert "cifar10" in (run / "data" / "gpu-check" / "SYNTHETIC").read_text()


def test_a_dag_stopped_at_its_time_limit_leaves_no_lock(tmp_path, monkeypatch):
    """``benchmarks/gpu_check.py`` stops a DAG that outlives ``--dag-seconds``: SIGINT, then, if
    Snakemake is still running after the grace period, SIGKILL to its whole process group (its
    jobs too) and ``--unlock``, so that the next run on the directory does not stop with a
    LockException (as one did on the H200). The job here ignores SIGINT and SIGTERM, so the
    stop must come to the kill."""
    import importlib.util

    spec = importlib.util.spec_from_file_location("gpu_check", ROOT / "benchmarks" / "gpu_check.py")
    gpu_check = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(gpu_check)
    (tmp_path / "Snakefile").write_text(
        'rule stubborn:\n    output: "done.txt"\n    shell: "echo $$ > job.pid; trap \'\' INT TERM; sleep 120; touch {output}"\n')
    config = tmp_path / "c.yaml"
    config.write_text("{}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("SLURM_CONF", "/dev/null")  # no SLURM probe at Snakemake's start (bench.cli)
    elapsed, _ = gpu_check._snakemake(config, ["done.txt"], cores=1, gpus=0, seconds=8, log_path=tmp_path / "log",
                                      grace=0.5)
    log = (tmp_path / "log").read_text()
    assert elapsed < 60 and "Unlocked working directory" in log  # killed and unlocked, not waited out
    job = int((tmp_path / "job.pid").read_text())
    for _ in range(50):  # the job went with Snakemake (its process group), not left running
        try:
            os.kill(job, 0)
        except ProcessLookupError:
            break
        time.sleep(0.1)
    else:
        raise AssertionError(f"the stubborn job (pid {job}) outlived the stop")
    assert not list((tmp_path / ".snakemake" / "locks").glob("*"))
    again = subprocess.run([sys.executable, "-m", "snakemake", "done.txt", "-n", "--cores", "1", "--configfile",
                            str(config)], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert again.returncode == 0 and "LockException" not in again.stdout + again.stderr, again.stderr[-2000:]
