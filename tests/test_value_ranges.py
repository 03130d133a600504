"""Values with no meaning are refused when the DAG is built (issue 25): each hyperparameter's
declared range (``Method.ranges``, :class:`bench.training.method.Range`), a system folder as
``data.root``, and a ``timm:<name>`` architecture that timm does not know."""
from __future__ import annotations

import copy
import math
import os
import re
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

import bench.workflow.config as bconfig
from bench.data import DATASETS
from bench.training import METHODS, LossOutput, Method, available_methods, get_method, register_method
from bench.training.method import Range

ROOT = Path(__file__).resolve().parents[1]
PAPER_METHODS = ["erm", "da", "pgdt", "trades", "mart", "rs", "ibp", "prl", "ours"]


# the config checks' own helpers: run from an empty directory (autouse), and check_config's
# problems with its one-line-each format asserted
from test_config_checks import in_tmp, problems_of  # noqa: E402,F401


def edited(edit: Callable[[dict], object], name: str = "smoke") -> dict:
    cfg = copy.deepcopy(yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text()))
    edit(cfg)
    return cfg


# --- hyperparameters ------------------------------------------------------------------------------

# (edit, the one expected problem): the values, and a few more of the same kind
BAD_HPARAMS = {
    "no samples": (lambda c: c["hparams"]["ours"].update(n_samples=0),
                   "hparams.ours.n_samples: 0 is out of range; allowed: an integer >= 2"),
    "one sample has no unbiased std": (lambda c: c["hparams"]["ours"].update(n_samples=1),
                                       "hparams.ours.n_samples: 1 is out of range; allowed: an integer >= 2"),
    "NaN step": (lambda c: c["hparams"]["pgdt"].update(step_size=math.nan),
                 "hparams.pgdt.step_size: nan is not finite; allowed: a finite number > 0"),
    "negative lambda": (lambda c: c["hparams"]["ours"].update(lam=-5),
                        "hparams.ours.lam: -5 is out of range; allowed: a finite number >= 0"),
    "infinite lambda": (lambda c: c["hparams"]["ours"].update(lam=math.inf),
                        "hparams.ours.lam: inf is not finite; allowed: a finite number >= 0"),
    "fractional steps": (lambda c: c["hparams"]["trades"].update(steps=2.5),
                         "hparams.trades.steps: 2.5 is not a whole number; allowed: an integer >= 1"),
    "CVaR level above 1": (lambda c: c["hparams"].update(prl={"beta": 1.5}),
                           "hparams.prl.beta: 1.5 is out of range; allowed: a number in (0, 1]"),
    "no noise": (lambda c: c["hparams"]["rs"].update(sigma=0),
                 "hparams.rs.sigma: 0 is out of range; allowed: a finite number > 0"),
    "an unknown bound": (lambda c: c["hparams"]["ibp"].update(bound="ibp"),
                         "hparams.ibp.bound: 'ibp' is not one of the choices; allowed: one of 'IBP', 'CROWN-IBP', "
                         "'CROWN'"),
    "a milestone at epoch 0": (lambda c: c["hparams"]["ibp"].update(lr_milestones=[0, 3]),
                               "hparams.ibp.lr_milestones: [0, 3] has an item that is out of range; "
                               "allowed: a list, each item an integer >= 1"),
    "a number for a flag": (lambda c: c["hparams"].update(prl={"include_clean": 1}),
                            "hparams.prl.include_clean: 1 is not one of the choices; allowed: true or false"),
    "an ablation value": (lambda c: c["ablation"].update(values=[0, -2]),
                          "ablation.values[1]: -2 is out of range for hyperparameter 'lam' of method 'ours'; "
                          "allowed: a finite number >= 0"),
}


@pytest.mark.parametrize("case", list(BAD_HPARAMS))
def test_a_hyperparameter_outside_its_range_is_refused_naming_key_value_and_range(case):
    edit, expected = BAD_HPARAMS[case]
    assert problems_of(edited(edit)) == [expected]


def test_a_value_the_methods_read_is_allowed():
    # PyYAML reads 1e-2 as a string, which the methods read with float(); an integral float is a count
    ok = edited(lambda c: (c["hparams"].update(prl={"beta": "1e-2", "n_samples": 2.0}),
                           c["hparams"]["ibp"].update(grad_clip=math.inf, bound="CROWN-IBP")))
    assert problems_of(ok) == []
    # but int() reads no exponent: a count written 5e1 would fail inside the job
    assert problems_of(edited(lambda c: c["hparams"]["ours"].update(n_samples="5e1"))) == [
        "hparams.ours.n_samples: '5e1' is not a whole number; allowed: an integer >= 2"]


def test_a_default_outside_its_range_is_refused_too(monkeypatch):
    # a range declared after registration (a plugin's subclass, say): the default in force is checked
    monkeypatch.setattr(get_method("ours"), "ranges", {**get_method("ours").ranges, "vote_samples": Range.count(500)})
    assert problems_of(edited(lambda c: c["hparams"]["ours"].pop("vote_samples"))) == [
        "hparams.ours.vote_samples: 100 (the default of method 'ours' on fashion_mnist) is out of range; "
        "allowed: an integer >= 500"]


@pytest.mark.parametrize("key", PAPER_METHODS)
def test_every_hyperparameter_of_a_method_declares_its_range(key):
    cls = get_method(key)
    assert set(cls.ranges) == {k for group in cls.defaults.values() for k in group}
    assert all(isinstance(r, Range) for r in cls.ranges.values())


@pytest.mark.parametrize("key", PAPER_METHODS)
def test_each_methods_defaults_lie_in_their_ranges_on_every_dataset(key):
    cls = get_method(key)
    for info in DATASETS.values():
        hparams = cls.resolve_hparams(info)
        assert set(hparams) == set(cls.ranges), (key, info.name)
        assert cls.range_problems(hparams) == {}, (key, info.name)


def test_a_range_refuses_nan_and_says_what_it_allows():
    step = Range.above(0)
    assert step.problem(math.nan) == step.problem(math.inf) == "is not finite"
    assert step.problem(0) == step.problem(-1) == "is out of range"
    assert step.problem(0.01) is None and step.problem("1e-3") is None
    assert step.problem(True) == step.problem("big") == step.problem(None) == "is not a number"
    assert str(step) == "a finite number > 0"
    clip = Range.above(0, finite=False)  # inf may mean something (no clipping); NaN never does
    assert clip.problem(math.inf) is None and clip.problem(math.nan) == "is not finite"
    assert str(clip) == "a number > 0, or inf"
    probability = Range.between(0, 1)
    assert probability.problem(math.nan) == "is not finite"
    assert probability.problem(0) is None and probability.problem(1) is None and probability.problem(1.01) is not None
    assert str(probability) == "a number in [0, 1]"
    assert str(Range.between(0, 1, low_open=True, high_open=True)) == "a number in (0, 1)"
    assert Range.count(1).problem(math.nan) == "is not finite" and str(Range.count(1)) == "an integer >= 1"
    assert Range.flag().problem(True) is None and Range.flag().problem(1) is not None
    assert Range.count(1, each=True).problem([1, math.nan]) == "has an item that is not finite"


def test_registering_a_method_checks_its_ranges_against_its_defaults():
    class Stray(Method):
        key, name, citation, architectures = "range_stray", "Stray", "a test", ("convnet",)
        defaults = {"all": {"lam": 1.0}}
        ranges = {"lamb": Range.at_least(0)}

        def loss(self, model, images, labels):
            return LossOutput(model(images).sum())

    class OutOfRange(Stray):
        key = "range_out"
        defaults = {"all": {"lam": 1.0}, "32x32": {"lam": -1.0}}
        ranges = {"lam": Range.at_least(0)}

    with pytest.raises(TypeError, match=r"declares ranges of lamb, which are not among its hyperparameters \(lam\)"):
        register_method(Stray)
    with pytest.raises(TypeError, match=r"the default lam = -1\.0 \(32x32\) is out of range; "
                                        r"allowed: a finite number >= 0"):
        register_method(OutOfRange)
    assert "range_stray" not in METHODS and "range_out" not in METHODS
    assert set(PAPER_METHODS) <= set(available_methods())


# --- data.root --------------------------------------------------------------------------------------


@pytest.mark.parametrize("root", ["/etc", "/", "/usr", "/var", "/proc/self", "/etc/ssl", "/dev/shm", "/sys"])
def test_a_system_folder_as_data_root_is_refused(root):
    problems = problems_of(edited(lambda c: c["data"].update(root=root)))
    assert len(problems) == 1, problems
    assert re.match(rf"data\.root: '{re.escape(root)}' is a system folder( \(/[^)]*\))?; allowed: a folder of your "
                    r"own, such as data or /tmp/data", problems[0]), problems[0]


def test_a_folder_of_ones_own_is_allowed_and_a_link_is_followed(tmp_path):
    assert problems_of(edited(lambda c: c["data"].update(root="/etc"))) != []
    for root in ("data", "/tmp", str(tmp_path / "datasets")):
        assert problems_of(edited(lambda c: c["data"].update(root=root))) == [], root
    # home folders (whether this user may write them is another check's business), and the
    # system's scratch and shared-data folders below the refused ones
    for root in ("/home/alice", "/home/alice/data", "/root/data", "/var/tmp/data", "/usr/share/datasets", "/tmp/x"):
        assert bconfig._system_folder(Path(root)) is None, root
    (tmp_path / "linked").symlink_to("/etc")
    assert problems_of(edited(lambda c: c["data"].update(root="linked"))) == [
        f"data.root: 'linked' is a system folder ({os.path.realpath('/etc')}); allowed: a folder of your own, such "
        "as data or /tmp/data (the jobs download, stage and cache datasets under it)"]


# --- architectures ------------------------------------------------------------------------------------


def test_a_misspelt_timm_architecture_is_refused_with_close_names():
    problems = problems_of(edited(lambda c: c.update(arch="timm:resnet10tt")))
    assert len(problems) == 1, problems
    assert re.match(r"arch: 'timm:resnet10tt' is not a model of timm's registry \(close: timm:resnet10t\b.*\); "
                    r"allowed: timm:<name> for a name that timm\.list_models\(\) lists$", problems[0]), problems[0]
    assert problems_of(edited(lambda c: c.update(arch="timm:resnet10t"))) == []


def test_an_external_models_architecture_must_exist():
    def models(*archs: str) -> Callable[[dict], None]:
        return lambda c: c.update(models=[{"name": f"mine{i}", "dataset": "fashion_mnist", "arch": arch,
                                           "weights": "mine.safetensors"} for i, arch in enumerate(archs)])

    problems = problems_of(edited(models("timm:resnet10tt", "convnett", "convnet", "timm:resnet10t")))
    assert len(problems) == 2, problems
    assert re.match(r"models\[0\]\.arch: 'timm:resnet10tt' is not a model of timm's registry \(close: "
                    r"timm:resnet10t\b", problems[0]), problems[0]
    assert re.match(r"models\[1\]\.arch: 'convnett' is not a registered architecture \(close: convnet\); "
                    r"allowed: .*\bcnn7\b.*, or timm:<name>$", problems[1]), problems[1]


def test_a_training_spec_outside_a_range_is_refused_before_any_work(tmp_path):
    """The API path, which no config check precedes (bench.training.loop)."""
    from conftest import train_spec

    from bench.training.loop import train

    with pytest.raises(ValueError, match=r"method 'ours': n_samples = 1 is out of range; allowed: an integer >= 2"):
        train(train_spec(tmp_path, hparams={"n_samples": 1}), tmp_path / "out")
