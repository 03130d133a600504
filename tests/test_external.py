"""External checkpoints (config ``models:``) enter the DAG after training and get every evaluation."""
from __future__ import annotations

import json
import re
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


@pytest.fixture(autouse=True)
def _registries_as_they_were():
    """Each test's user architectures and external methods leave the process's registries with
    it (another test file counts MODELS: Table 7's \"any network\" is the registered ones)."""
    from bench.models import MODELS
    from bench.training import METHODS, available_methods

    available_methods()  # the package's methods found first: they stay
    before = [(registry, set(registry)) for registry in (MODELS, METHODS)]
    yield
    for registry, keys in before:
        for key in set(registry) - keys:
            registry.remove(key)


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
    user_net = write_user_net(tmp_path)  # and a checkpoint of the user's own architecture
    torch.manual_seed(0)
    from bench.training.plugins import load_plugin

    net = load_plugin(str(user_net)).build(1, 28, 10)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "yours.safetensors"))
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    # one DAG for three things that each need a real run: an external checkpoint, one of the user's
    # own architecture, and a vote method (vote: [erm]: erm's model scored by the vote, Table 9 only)
    config.update(run="external", methods=["erm", "ours"], tables=[1, 9], ablation=None, vote=["erm"],
                  models=[{"name": "mine", "dataset": "fashion_mnist", "arch": "convnet", "weights": str(weights),
                           "claims": "ours"},
                          {"name": "yours", "dataset": "fashion_mnist", "arch": f"{user_net}:build",
                           "weights": str(tmp_path / "yours.safetensors")}])
    path = tmp_path / "external.yaml"
    path.write_text(yaml.safe_dump(config))
    out = snakemake("--cores", "2", "--configfile", str(path), cwd=tmp_path, timeout=1200)
    assert out.returncode == 0, out.stdout[-3000:] + out.stderr[-3000:]
    reports = tmp_path / "reports" / "external"
    for table, voted in (("table1", set()), ("table9", {"erm_vote"})):
        frame = pd.read_csv(reports / f"{table}.csv")
        assert set(frame["method"]) == {"erm", "ours", "mine", "yours"} | voted
        mine = frame[frame["method"] == "mine"]
        assert mine["external"].str.contains("external.safetensors").all()
        assert mine["external"].str.contains("claims ours").all()
        assert frame.loc[~frame["method"].isin(["mine", "yours"]), "external"].isna().all()
        assert (frame.loc[frame["method"] == "yours", "arch"] == "user_net_build").all()
    attacks = pd.read_csv(reports / "table9.csv")
    rules = attacks.groupby("method")["inference"].agg(set)
    assert rules["erm_vote"] == {"vote"} and rules["erm"] == {"argmax"}  # one model, two rules, never compared
    html = (reports / "report.html").read_text()
    assert "mine" in html and "yours" in html
    assert "mixes results computed by different versions of the code" not in html
    meta = json.loads(next((tmp_path / "results" / "external").rglob("mine/convnet/seed0/model.json")).read_text())
    assert meta["source"]["weights"] == str(weights)
    voted_meta = json.loads(next((tmp_path / "results" / "external").rglob("erm_vote/convnet/seed0/model.json")).read_text())
    erm_meta = json.loads(next((tmp_path / "results" / "external").rglob("erm/convnet/seed0/model.json")).read_text())
    assert voted_meta["weights_sha256"] == erm_meta["weights_sha256"] and voted_meta["method"]["voted_from"] == "erm"


# --- the user's own architecture (arch: FILE.py:FUNCTION) ---------------------------------------

USER_NET = '''
from torch import nn


def build(in_channels, image_size, num_classes):
    return nn.Sequential(nn.Flatten(), nn.Linear(in_channels * image_size ** 2, 16), nn.ReLU(),
                         nn.Linear(16, num_classes))


def bare():
    return build(1, 28, 10)


instance = build(1, 28, 10)
number = 3


def not_a_module():
    return "a network"


def five_classes():
    return build(1, 28, 5)
'''


def write_user_net(folder: Path, stem: str = "net") -> Path:
    path = folder / f"{stem}.py"
    path.write_text(USER_NET)
    return path


def test_a_user_architecture_is_named_as_a_path_component():
    from bench.training.external import arch_name

    assert arch_name("nets/my_net.py:build") == "user_my_net_build"
    assert arch_name("/abs/My-Net.v2.py:Build") == "user_my_net_v2_build"  # the DAG's arch wildcard: [a-z0-9_]+
    assert arch_name("mypkg.nets:Net") == "user_mypkg_nets_net"
    assert arch_name("timm:resnet18") == "timm-resnet18"
    assert arch_name("convnet") == "convnet"
    for name in ("user_my_net_build", "timm-resnet18"):  # a name as the paths write it maps to itself
        assert arch_name(name) == name


@pytest.mark.parametrize("function", ["build", "bare", "instance"])
def test_a_user_architecture_is_registered_and_built_behind_the_datasets_normalisation(tmp_path, function):
    from bench.models import MODELS, Normalize
    from bench.training import get_method
    from bench.training.external import register

    path = write_user_net(tmp_path, f"net_{function}")
    spec = f"{path}:{function}"
    register({"models": [{"name": "mine", "dataset": "fashion_mnist", "arch": spec, "weights": "w.safetensors"}]})
    name = f"user_net_{function}_{function}"
    assert name in MODELS and get_method("mine").architectures == (name,)
    model = create_model(name, FMNIST)
    assert isinstance(model[0], Normalize) and torch.equal(model[0].mean.flatten(), torch.tensor(FMNIST.mean))
    assert model(torch.rand(3, 1, 28, 28)).shape == (3, 10)
    if function == "instance":  # each model its own copy of the user's module
        assert model[1] is not create_model(name, FMNIST)[1]


def test_a_checkpoint_of_a_user_architecture_is_imported_with_or_without_its_normalisation(tmp_path):
    from bench.models.checkpoint import load_model
    from bench.training.plugins import load_plugin

    path = write_user_net(tmp_path, "net_import")
    spec = f"{path}:build"
    torch.manual_seed(0)
    net = load_plugin(str(path)).build(1, 28, 10)
    x = torch.rand(4, 1, 28, 28)
    mean, std = (torch.tensor(v).view(1, -1, 1, 1) for v in (FMNIST.mean, FMNIST.std))
    reference = net.eval()((x - mean) / std)
    full = create_model("convnet", FMNIST)[0].state_dict()  # a Normalize layer's keys, as 0.mean, 0.std
    for bare in (True, False):
        state = {k: v.contiguous() for k, v in net.state_dict().items()}
        if not bare:
            state = {**{f"0.{k}": v for k, v in full.items()}, **{f"1.{k}": v for k, v in state.items()}}
        save_file(state, str(tmp_path / f"w{bare}.safetensors"))
        meta = import_checkpoint(entry(tmp_path / f"w{bare}.safetensors", arch=spec), tmp_path / f"run{bare}", {},
                                 "linf:0.1")
        assert meta["spec"]["arch"] == "user_net_import_build"
        assert torch.allclose(load_model(tmp_path / f"run{bare}")(x), reference, atol=1e-6)


def test_the_method_stamp_of_a_user_architectures_model_covers_its_file(tmp_path):
    from bench.training import get_method
    from bench.training.external import register
    from bench.workflow.provenance import code_stamp

    path = write_user_net(tmp_path, "net_stamped")
    register({"models": [{"name": "mine", "dataset": "fashion_mnist", "arch": f"{path}:build", "weights": "w"}]})
    module = get_method("mine").__module__
    before = code_stamp(module)
    path.write_text(USER_NET.replace("16", "32"))
    assert code_stamp(module) != before


@pytest.mark.parametrize("function, why", [
    ("build", None), ("bare", None), ("instance", None),
    ("missing", "names no function: .* has no 'missing'"),
    ("number", "is not an nn.Module: number is of type int"),
    ("not_a_module", r"is not an nn.Module: not_a_module\(\) returned a value of type str"),
    ("five_classes", r"builds a network whose output for one fashion_mnist image is shape \(1, 5\), not \(1, 10\)"),
])
def test_the_config_check_accepts_a_user_architecture_that_builds_and_refuses_others_in_one_line(
        tmp_path, function, why):
    from bench.workflow.config import _check_architectures

    spec = f"{write_user_net(tmp_path, 'net_checked')}:{function}"
    problems = _check_architectures({"models": [{"name": "mine", "dataset": "fashion_mnist", "arch": spec,
                                                 "weights": "w"}]})
    if why is None:
        assert problems == []
    else:
        assert len(problems) == 1 and "\n" not in problems[0], problems
        assert re.match(rf"models\[0\]\.arch: '{re.escape(spec)}' {why}.*; allowed: ", problems[0]), problems


def test_the_config_check_refuses_a_missing_file_and_a_module_that_does_not_import(tmp_path):
    from bench.workflow.config import ConfigError, check_config

    (tmp_path / "broken.py").write_text("raise RuntimeError('no network here')\n")
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config.update(methods=["erm"], ablation=None, data={"root": str(tmp_path / "data")},
                  models=[{"name": "gone", "dataset": "fashion_mnist", "arch": str(tmp_path / "gone.py:build"),
                           "weights": str(tmp_path / "w.safetensors")},
                          {"name": "broken", "dataset": "fashion_mnist", "arch": str(tmp_path / "broken.py:build"),
                           "weights": str(tmp_path / "w.safetensors")}])
    with pytest.raises(ConfigError) as err:
        check_config(config)
    problems = [p for p in err.value.problems if p.startswith("models")]
    assert len(problems) == 2, err.value.problems
    assert problems[0].startswith(f"models[0].arch: '{tmp_path}/gone.py:build' names no file: {tmp_path}/gone.py "
                                  "does not exist; allowed: FILE.py:FUNCTION")
    assert problems[1].startswith(f"models[1].arch: '{tmp_path}/broken.py:build' does not import: importing "
                                  f"{tmp_path}/broken.py raised RuntimeError: no network here; allowed: ")


def test_two_user_architectures_that_would_share_a_name_are_refused(tmp_path):
    from bench.training.external import register

    (tmp_path / "other").mkdir()
    a, b = write_user_net(tmp_path, "net_twice"), write_user_net(tmp_path / "other", "net_twice")
    models = [{"name": n, "dataset": "fashion_mnist", "arch": f"{p}:build", "weights": "w"}
              for n, p in (("one", a), ("two", b))]
    with pytest.raises(ValueError, match=r"models\[1\]\.arch: .* gives the architecture name 'user_net_twice_build', "
                                         r"as .* of another entry does"):
        register({"models": models})
    register({"models": [models[0], {**models[1], "arch": f"{a}:build"}]})  # one file, two checkpoints: fine


def user_model_config(tmp_path: Path, **changes) -> Path:
    """The smoke config with ERM and one external model of the user's architecture (``mine``:
    ``<tmp_path>/net.py:build`` and its weights, both written here)."""
    from bench.training.plugins import load_plugin

    path = write_user_net(tmp_path)
    torch.manual_seed(0)
    net = load_plugin(str(path)).build(1, 28, 10)
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(tmp_path / "mine.safetensors"))
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    config.update(run="usernet", methods=["erm"], ablation=None, **changes,
                  models=[{"name": "mine", "dataset": "fashion_mnist", "arch": f"{path}:build",
                           "weights": str(tmp_path / "mine.safetensors")}])
    out = tmp_path / "usernet.yaml"
    out.write_text(yaml.safe_dump(config))
    return out


def test_a_user_architectures_model_is_imported_and_evaluated_in_the_dag(tmp_path):
    from plans import planned_jobs

    # Table 4 too: its model.json inputs of an external model are no benchmarked job's (rules/common.smk)
    jobs = planned_jobs(user_model_config(tmp_path, tables=[1, 2, 3, 4, 9, 10, 11, 12]))
    mine = [j for j in jobs if "method=mine" in j]
    imports = [j for j in mine if "rule=import_model" in j]
    assert len(imports) == 1 and f"input={tmp_path}/mine.safetensors" in imports[0], imports
    assert "wildcards=dataset=fashion_mnist, method=mine, arch=user_net_build, seed=0" in imports[0]
    rules = {re.search(r"rule=(\w+)", j).group(1) for j in mine}
    assert {"certify", "attack", "audit"} <= rules and "train" not in rules, rules
    assert "output=results/usernet/fashion_mnist/mine/user_net_build/seed0/certify/table1.json" in "".join(mine)
    assert all("results/usernet/fashion_mnist/mine/user_net_build/seed0/" in j for j in mine)
