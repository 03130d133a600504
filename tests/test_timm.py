"""``arch: timm:<name>``: any model of timm's registry, for the methods that train any network."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from test_workflow import package_methods, snakemake

from bench.data import dataset_info
from bench.models import create_model
from bench.paper import check_compatible
from bench.workflow import plan

ROOT = Path(__file__).resolve().parent.parent
FMNIST = dataset_info("fashion_mnist")


def test_a_timm_model_is_built_for_the_dataset_behind_the_normalisation():
    for name in ("timm:test_resnet", "timm-test_resnet"):  # as configs and as the DAG's paths write it
        model = create_model(name, FMNIST)
        assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
        assert type(model[0]).__name__ == "Normalize"
    with pytest.raises(ValueError, match="timm has no model 'test_resnett'"):
        create_model("timm:test_resnett", FMNIST)
    with pytest.raises(ValueError, match="cannot take Fashion-MNIST's 1×28×28 images"):
        create_model("timm:test_vit", FMNIST)  # patch 16 does not divide 28


def test_only_methods_that_train_any_network_take_a_timm_model():
    check_compatible("ours", "timm-test_resnet")
    for method in ("rs", "ibp", "pgdt"):
        with pytest.raises(ValueError, match="Table 7 entry allows only"):
            check_compatible(method, "timm-test_resnet")
    config = {"methods": "all", "arch": "timm:test_resnet"}
    assert set(plan.methods(config)) & package_methods() == {"erm", "da", "prl", "ours"}
    with pytest.raises(ValueError, match="method 'rs' cannot train an arbitrary network"):
        plan.methods({"methods": ["ours", "rs"], "arch": "timm:test_resnet"})
    assert plan.best_arch("ours", "fashion_mnist", config) == "timm-test_resnet"


def test_a_timm_model_trains_certifies_and_is_attacked_in_the_dag(tmp_path):
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config.update(run="timm", arch="timm:test_resnet", methods=["erm", "ours"], tables=[1, 9], ablation=None)
    path = tmp_path / "timm.yaml"
    path.write_text(yaml.safe_dump(config))
    out = snakemake("--cores", "2", "reports/timm/table1.csv", "reports/timm/table9.csv", "--configfile", str(path),
                    cwd=tmp_path, timeout=900)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    t1 = pd.read_csv(tmp_path / "reports" / "timm" / "table1.csv")
    t9 = pd.read_csv(tmp_path / "reports" / "timm" / "table9.csv")
    assert set(t1["arch"]) == set(t9["arch"]) == {"timm-test_resnet"}
    assert set(t1["method"]) == set(t9["method"]) == {"erm", "ours"}
    assert t1["value"].between(0, 100).all()
