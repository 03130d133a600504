"""External checkpoints (config ``models:``) enter the DAG after training and get every evaluation."""
from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest
import torch
import yaml
from safetensors.torch import save_file
from test_workflow import snakemake

from bench.data import dataset_info
from bench.models import create_model
from bench.training.external import import_checkpoint

ROOT = Path(__file__).resolve().parent.parent
FMNIST = dataset_info("fashion_mnist")


def write_weights(path: Path, arch: str = "convnet", bare: bool = False) -> Path:
    torch.manual_seed(0)
    model = create_model(arch, FMNIST)
    state = (model[1] if bare else model).state_dict()
    save_file({k: v.contiguous() for k, v in state.items()}, str(path))
    return path


def entry(weights: Path, arch: str = "convnet") -> dict:
    return {"name": "mine", "dataset": "fashion_mnist", "arch": arch, "weights": str(weights)}


def test_a_checkpoint_is_imported_as_a_finished_model_with_or_without_its_normalisation(tmp_path):
    from bench.models.checkpoint import load_model

    for bare in (False, True):
        weights = write_weights(tmp_path / f"w{bare}.safetensors", bare=bare)
        out = tmp_path / f"run{bare}"
        meta = import_checkpoint(entry(weights), out, {}, "linf:0.1")
        model = load_model(out)  # the hash-checked loader every evaluation job uses
        torch.manual_seed(0)  # the weights write_weights saved
        reference = create_model("convnet", FMNIST).eval()
        x = torch.rand(4, 1, 28, 28)
        assert torch.equal(model(x), reference(x))
        assert meta["method"]["external"] and meta["epochs"] == 0


def test_a_checkpoint_that_does_not_fit_its_architecture_names_the_keys_and_shapes(tmp_path):
    weights = write_weights(tmp_path / "cnn7.safetensors", arch="cnn7")
    with pytest.raises(ValueError, match=r"does not fit: missing keys: .*unexpected keys: .*") as err:
        import_checkpoint(entry(weights), tmp_path / "run", {}, "linf:0.1")
    assert "1.0.weight" in str(err.value)
    torch.manual_seed(0)
    state = create_model("convnet", FMNIST).state_dict()
    state["1.10.weight"] = torch.zeros(5, 128)
    save_file(state, str(tmp_path / "shape.safetensors"))
    with pytest.raises(ValueError, match=r"mismatched shapes: 1.10.weight: checkpoint \(5, 128\), architecture "
                                         r"\(10, 128\)"):
        import_checkpoint(entry(tmp_path / "shape.safetensors"), tmp_path / "run2", {}, "linf:0.1")


def test_an_external_checkpoint_appears_in_the_tables_and_the_report(tmp_path):
    weights = write_weights(tmp_path / "external.safetensors")
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config.update(run="external", methods=["erm", "ours"], tables=[1, 9], ablation=None,
                  models=[{"name": "mine", "dataset": "fashion_mnist", "arch": "convnet", "weights": str(weights),
                           "claims": "ours"}])
    path = tmp_path / "external.yaml"
    path.write_text(yaml.safe_dump(config))
    out = snakemake("--cores", "2", "--configfile", str(path), cwd=tmp_path, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    reports = tmp_path / "reports" / "external"
    for table in ("table1", "table9"):
        frame = pd.read_csv(reports / f"{table}.csv")
        assert set(frame["method"]) == {"erm", "ours", "mine"}
        mine = frame[frame["method"] == "mine"]
        assert mine["external"].str.contains("external.safetensors").all()
        assert mine["external"].str.contains("claims ours").all()
        assert frame.loc[frame["method"] != "mine", "external"].isna().all()
    html = (reports / "report.html").read_text()
    assert "mine" in html
    meta = json.loads(next((tmp_path / "results" / "external").rglob("mine/convnet/seed0/model.json")).read_text())
    assert meta["source"]["weights"] == str(weights)
