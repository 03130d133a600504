"""Job kinds as registered objects (bench.workflow.job_kinds): what the plan, the rules and the estimate
read of a kind comes from its one declaration."""
from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import pytest
import yaml

import bench.workflow.plan as plan
from bench.workflow.job_kinds import (
    JOB_KINDS,
    JobKind,
    get_job_kind,
    list_job_kinds,
    register_job_kind,
    resources,
    threads,
)


@pytest.fixture
def config():
    from pathlib import Path

    return yaml.safe_load((Path(__file__).resolve().parents[1] / "config" / "smoke.yaml").read_text())


@pytest.fixture
def calibration():
    """A kind a plugin adds: one declaration, removed again after the test."""
    kind = register_job_kind(JobKind("calibration", ("bench.jobs.audit",), ("audit",), uses_method=True,
                                     settings=lambda config, w, vic, **extra: {"vicinity": vic["main"]}))
    yield kind
    JOB_KINDS.remove("calibration")


def test_every_kind_the_rules_run_is_registered():
    assert {"train", "import", "certify", "certifications", "attack", "attacks", "audit", "native", "validation",
            "aggregate"} <= set(list_job_kinds())
    with pytest.raises(ValueError, match="unknown job kind 'calibrate'; known: train, import"):
        get_job_kind("calibrate")


def test_a_registered_kind_reaches_the_plan_the_resources_and_the_stamps(calibration, config):
    w = SimpleNamespace(dataset="fashion_mnist", method="ours", arch="convnet", seed="0", keys=lambda: [])
    settings = plan.job_settings("calibration", config, w)
    assert settings["vicinity"] == plan.vicinities(config, "fashion_mnist")["main"] and settings["method"] == "ours"
    code = plan.code_version("calibration", "ours")
    assert code["engine"] == plan.code_version("audit")["engine"] and "method" in code  # uses_method
    assert "calibration" in plan.JOB_MODULES and "calibration" in plan.USES_METHOD
    r = config["resources"]
    assert resources("calibration", config) == {"gpu": r["gpus"], "runtime": r["eval_minutes"], "mem_mb": r["mem_mb"],
                                                 "activation_memory_mb": r.get("activation_memory_mb") or 0}
    assert threads("calibration", config) == r["eval_threads"]
    with pytest.raises(ValueError, match="no cost model for job kind 'calibration'"):
        calibration.count({}, config)


def test_the_registry_refuses_a_second_kind_of_one_name_and_a_bad_resources_block():
    with pytest.raises(ValueError, match="registered twice"):
        register_job_kind(JobKind("train", ("bench.jobs.audit",)))
    with pytest.raises(ValueError, match="resources must be"):
        register_job_kind(JobKind("gpuonly", ("bench.jobs.audit",), resources="gpu"))
    assert "gpuonly" not in JOB_KINDS


def test_a_kind_without_settings_of_its_own_says_which_parts_have_them(config):
    w = SimpleNamespace(dataset="fashion_mnist", method="ours", arch="convnet", seed="0", keys=lambda: [])
    with pytest.raises(ValueError, match="'attacks' has no settings of its own: each of its 'attack' parts has"):
        plan.job_settings("attacks", config, w)


def test_every_declared_cost_model_exists():
    import importlib

    for kind in JOB_KINDS.values():
        if kind.cost is not None:
            module, _, function = kind.cost.partition(":")
            assert callable(getattr(importlib.import_module(module), function)), kind.name


def test_a_new_kinds_output_gets_its_benchmark_file_and_a_name_with_an_underscore_is_refused(monkeypatch):
    from bench import paths
    from bench.paths import ModelRun

    monkeypatch.setitem(paths.OUTPUT_KINDS, "calibration", "calibration.json")
    register_job_kind(JobKind("calib", ("bench.jobs.audit",), ("calibration",),
                              settings=lambda config, w, vic, **extra: {}))
    try:
        model = ModelRun("smoke", "fashion_mnist", "ours", "convnet", 0)
        assert plan.benchmark_of(model.output("calibration")) == model.benchmark("calib")
    finally:
        JOB_KINDS.remove("calib")
    with pytest.raises(ValueError, match="has no '_'"):
        register_job_kind(JobKind("my_kind", ("bench.jobs.audit",)))


def test_an_audit_carries_only_the_vicinities_of_the_certificates_it_audits():
    """Table 2's transforms are not audited: changing one reruns no audit (issue 25)."""
    import copy

    from bench.workflow.estimate import load_config

    config = load_config(Path(__file__).resolve().parents[1] / "config" / "config.yaml")
    w = SimpleNamespace(dataset="fashion_mnist", method="ours", arch="convnet", seed="0", keys=lambda: [])
    before = plan.job_settings("audit", config, w)
    assert set(before["vicinities"]) == {"main"}
    other = copy.deepcopy(config)
    transform = config["certify"]["transforms"][0]
    other["vicinities"]["all"][transform] = "rotate:5"
    assert plan.job_settings("audit", other, w) == before
    other["vicinities"]["fashion_mnist"] = {**(other["vicinities"].get("fashion_mnist") or {}), "main": "linf:0.05"}
    assert plan.job_settings("audit", other, w)["vicinities"] == {"main": "linf:0.05"}
