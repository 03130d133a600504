"""Each dataset's perturbation budgets: its own where the literature has one (Fashion-MNIST's
L∞ 0.1), its shape group's otherwise, and the training budgets of the baselines tied to them."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from bench.certification.vicinity import parse_vicinity
from bench.data import dataset_info
from bench.training import get_method
from bench.training.loop import default_vicinity
from bench.workflow import plan

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("config", "smoke", "gpu-check", "paper", "reference")


def shipped(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())


def test_a_dataset_key_overrides_its_shape_group():
    config = {"vicinities": {"all": {"rotate": "rotate:35"}, "28x28": {"main": "linf:0.3", "small": "linf:0.1"},
                             "fashion_mnist": {"main": "linf:0.1"}, "32x32": {"main": "linf:8/255", "small": "x"}}}
    assert plan.vicinities(config, "fashion_mnist") == {"rotate": "rotate:35", "main": "linf:0.1", "small": "linf:0.1"}
    assert plan.vicinities(config, "mnist")["main"] == "linf:0.3"
    assert plan.vicinities(config, "cifar10")["main"] == "linf:8/255"


@pytest.mark.parametrize("name", [n for n in SHIPPED if "fashion_mnist" in shipped(n)["datasets"]])
def test_fashion_mnist_is_certified_and_attacked_at_its_own_budget(name):
    """L∞ 0.1 (Wong & Kolter 2018; CROWN-IBP's Fashion-MNIST config), not MNIST's 0.3, at which
    even adversarial training collapses on Fashion-MNIST."""
    vic = plan.vicinities(shipped(name), "fashion_mnist")
    assert parse_vicinity(vic["main"]).eps == pytest.approx(0.1)
    assert parse_vicinity(vic["small"]).eps < parse_vicinity(vic["main"]).eps
    assert default_vicinity(dataset_info("fashion_mnist")) == "linf:0.1"
    assert default_vicinity(dataset_info("mnist")) == "linf:0.3"


@pytest.mark.parametrize("name", SHIPPED)
def test_the_baselines_train_at_the_budget_they_are_evaluated_at(name):
    """PGDT, TRADES and MART train on the L∞ ball that their certificates and attacks use; IBP
    on one at least as large (Shi et al. train MNIST at 0.4 for 0.3)."""
    config = shipped(name)
    for dataset in config["datasets"]:
        info = dataset_info(dataset)
        radius = parse_vicinity(plan.vicinities(config, dataset)["main"]).eps
        for key in ("pgdt", "trades", "mart"):
            eps = get_method(key).resolve_hparams(info, config.get("hparams", {}).get(key))["eps"]
            assert eps == pytest.approx(radius), (name, dataset, key)
        assert get_method("ibp").resolve_hparams(info, config.get("hparams", {}).get("ibp"))["eps"] >= radius - 1e-9


def test_a_method_can_train_longer_than_the_run():
    """``train.method_epochs``: the reference run gives IBP the optimiser steps its recipe needs;
    the others keep ``train.epochs``, and the training job's settings carry each one's."""
    config = shipped("reference")
    assert plan.train_epochs(config, "ibp") == config["train"]["method_epochs"]["ibp"] > config["train"]["epochs"]
    assert plan.train_epochs(config, "erm") == config["train"]["epochs"]
    w = type("W", (), {"dataset": "fashion_mnist", "method": "ibp", "arch": "cnn7", "seed": "0",
                       "keys": lambda self: ["dataset", "method", "arch", "seed"]})()
    assert plan.job_settings("train", config, w)["epochs"] == config["train"]["method_epochs"]["ibp"]
