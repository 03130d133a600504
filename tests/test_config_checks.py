"""bench.workflow.config.check_config: the config's meaning, checked when the DAG is built."""
from __future__ import annotations

import copy
import re
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml
from conftest import make_cifar_like, make_mnist_like

import bench.workflow.config as bconfig
from bench import data as bdata
from bench.data import staging
from bench.certification.sequential import make_test, n_min
from bench.workflow.config import ConfigError, ConfigWarning, check_config, min_samples

ROOT = Path(__file__).resolve().parents[1]
SHIPPED = ("config", "smoke", "paper", "reference", "claims")

PLUGIN = '''
import torch.nn.functional as F
from bench.training import LossOutput, Method, register_method


@register_method
class ConfigCheckToy(Method):
    key = "config_check_toy"
    name = "Toy"
    citation = "a test"
    architectures = ("convnet",)
    defaults = {"all": {"shift": 0.01}}

    def loss(self, model, images, labels):
        logits = model(images)
        return LossOutput(F.cross_entropy(logits, labels), logits)
'''


def shipped(name: str) -> dict:
    return yaml.safe_load((ROOT / "config" / f"{name}.yaml").read_text())


@pytest.fixture(autouse=True)
def in_tmp(tmp_path, monkeypatch) -> Path:
    """Run from an empty directory: data.root 'data' does not exist there (as in a fresh checkout)."""
    monkeypatch.chdir(tmp_path)
    return tmp_path


def problems_of(config: dict) -> list[str]:
    """check_config's problems (none if it passes), ignoring the warnings about downloads."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConfigWarning)
        try:
            check_config(config)
        except ConfigError as exc:
            assert str(exc).count("\n") == len(exc.problems)  # a header, then one line each
            return exc.problems
    return []


@pytest.mark.parametrize("name", SHIPPED)
def test_shipped_configs_pass(name):
    assert problems_of(shipped(name)) == []


def edited(name: str, edit: Callable[[dict], object]) -> dict:
    cfg = copy.deepcopy(shipped(name))
    edit(cfg)
    return cfg


# (config, edit, the one expected problem: key, value and what is allowed)
BAD = {
    "unknown method": ("smoke", lambda c: c.update(methods=["erm", "adamw"]),
                       r"^methods\[1\]: 'adamw' is not registered: unknown method 'adamw'; known: .*\berm\b"),
    "missing plugin": ("smoke", lambda c: c.update(plugins=["nowhere/missing.py"]),
                       r"^plugins\[0\]: 'nowhere/missing.py' could not be loaded \(FileNotFoundError: .*\); "
                       r"allowed: an importable dotted module name or the path of an existing \.py file$"),
    "hparam typo": ("config", lambda c: c["hparams"]["ours"].update(n_sample=8),
                    r"^hparams\.ours\.n_sample: 8 is not a hyperparameter of method 'ours'; "
                    r"allowed: lam, n_samples, vote_samples$"),
    "hparams of no method": ("smoke", lambda c: c["hparams"].update(oursx={"lam": 2}),
                             r"^hparams\.oursx: \{'lam': 2\} is for a method that is not registered; "
                             r"allowed: .*\bours\b"),
    "hparam not a number": ("smoke", lambda c: c["hparams"]["ours"].update(lam="big"),
                            r"^hparams\.ours\.lam: 'big' is not a number \(the default on fashion_mnist is 1\.0\); "
                            r"allowed: a number$"),
    "vicinity does not parse": ("smoke", lambda c: c["vicinities"]["28x28"].update(main="linf:abc"),
                                r"^vicinities\.28x28\.main: 'linf:abc' does not parse \(.*'abc' is not a number.*\); "
                                r"allowed: linf:<eps>, l2:<eps>, rotate:<degrees>"),
    "vicinity out of range": ("smoke", lambda c: c["vicinities"]["all"].update(rotate="rotate:500"),
                              r"^vicinities\.all\.rotate: 'rotate:500' does not parse \(.*out of range.*\); allowed:"),
    "unused group parses too": ("smoke", lambda c: c["vicinities"]["32x32"].update(small="linf"),
                                r"^vicinities\.32x32\.small: 'linf' does not parse"),
    "transform without vicinity": ("smoke", lambda c: c["vicinities"]["all"].pop("scale"),
                                   r"^certify\.transforms\[3\]: 'scale' is not a vicinity in vicinities\.all; "
                                   r"allowed: translate, rotate, affine$"),
    "main vicinity without radius": ("smoke", lambda c: c["vicinities"]["fashion_mnist"].update(main="rotate:10"),
                                     r"^vicinities\.fashion_mnist\.main: 'rotate:10' has no radius, which Table 3, "
                                     r"Table 9.* take as their L∞ budget; allowed: linf:<eps>"),
    "shape group's main without radius": ("smoke", lambda c: (c["vicinities"]["fashion_mnist"].pop("main"),
                                                              c["vicinities"]["28x28"].update(main="rotate:10")),
                                          r"^vicinities\.28x28\.main: 'rotate:10' has no radius"),
    "method_epochs of a method not run": ("smoke", lambda c: c["train"].update(method_epochs={"adamw": 3}),
                                          r"^train\.method_epochs\.adamw: 3 is for a method that is not in this "
                                          r"run; allowed: .*\berm\b"),
    "dataset's vicinity does not parse": ("smoke", lambda c: c["vicinities"]["fashion_mnist"].update(small="linf:x"),
                                          r"^vicinities\.fashion_mnist\.small: 'linf:x' does not parse"),
    "budget below n_min": ("config", lambda c: c["certify"].update(budget=300, procedures=["paper"], confidences=[0.99]),
                           r"^certify\.budget: 300 is below the 459 samples that the 'paper' test needs before it can "
                           r"certify at κ = 0\.01, α = 0\.01 \(Table 1, Table 2, Table 10, Table 11, Table 12\); "
                           r"allowed: budget >= 459$"),
    "ablation of no method": ("smoke", lambda c: c["ablation"].update(method="ourz"),
                              r"^ablation\.method: 'ourz' is not a registered method; allowed: .*\bours\b"),
    "ablation of no hparam": ("smoke", lambda c: c["ablation"].update(hparam="lamda"),
                              r"^ablation\.hparam: 'lamda' is not a hyperparameter of method 'ours' on fashion_mnist; "
                              r"allowed: lam, n_samples, vote_samples$"),
    "ablation of a word": ("smoke", lambda c: c["ablation"].update(method="ibp", hparam="bound"),
                           r"^ablation\.hparam: 'bound' of method 'ibp' is not numeric \(default 'IBP'\).*allowed: "),
    "ablation values repeat": ("smoke", lambda c: c["ablation"].update(values=[0, 2, 2.0]),
                               r"^ablation\.values: \[0, 2, 2\.0\] repeats 2\.0; allowed: distinct values$"),
    "seeds repeat": ("smoke", lambda c: c.update(seeds=[0, 1, 0]),
                     r"^seeds: \[0, 1, 0\] repeats 0; allowed: distinct values$"),
    "paper reference of another dataset": ("smoke", lambda c: c["paper_reference"].update(svhn="mnist"),
                                           r"^paper_reference\.svhn: 'mnist' is for a dataset that is not configured; "
                                           r"allowed: fashion_mnist$"),
    "run name with a trailing newline": ("smoke", lambda c: c.update(run="smoke\n"),
                                         r"^run: 'smoke\\n': a run name is letters, digits"),
    "run name another tool owns": ("smoke", lambda c: c.update(run="demo"),
                                   r"^run: 'demo': reserved \(reports/demo/"),
    "CERTIFY cannot certify": ("smoke", lambda c: c["native"]["smoothing"].update(n=5),
                               r"^native\.smoothing\.n: 5 is below the 10 samples that CERTIFY needs to certify "
                               r"anything at α = 0\.001; allowed: n >= 10$"),
}


@pytest.mark.parametrize("case", list(BAD))
def test_a_bad_edit_is_refused_naming_key_value_and_allowed(case):
    name, edit, expected = BAD[case]
    problems = problems_of(edited(name, edit))
    assert len(problems) == 1, problems
    assert re.search(expected, problems[0]), problems[0]


def test_the_adaptive_attacks_need_a_radius_only_where_they_run():
    """An adaptive: block takes the main vicinity's radius only where one of its tables (beside
    Table 3 or 9) is built: without either, a vicinity with no radius is no problem of theirs."""
    def no_radius(c):
        c.update(methods=["ours", "erm"], tables=[1], masking=None, ablation=None, native=None)
        c["vicinities"]["fashion_mnist"].update(main="rotate:10")
    assert problems_of(edited("smoke", no_radius)) == []
    with_table3 = problems_of(edited("smoke", lambda c: (no_radius(c), c.update(tables=[1, 3]))))
    assert len(with_table3) == 1 and "Table 3, the adaptive attacks take" in with_table3[0]


def test_every_problem_is_reported_at_once():
    def edit(c: dict) -> None:
        c["hparams"]["ours"]["n_sample"] = 8
        c["vicinities"]["28x28"]["main"] = "linf:abc"
        c["certify"]["budget"] = 100

    problems = problems_of(edited("config", edit))
    assert problems[0].startswith("hparams.ours.n_sample: 8")
    assert problems[1].startswith("vicinities.28x28.main: 'linf:abc'")
    # paper and mixture at (0.01, 0.01), α = 0.05 and α = 0.001 of Table 12; κ = 0.1 needs only 44
    budget = [p for p in problems[2:] if p.startswith("certify.budget: 100 ")]
    assert len(budget) == len(problems) - 2 == 6
    assert not any("κ = 0.1," in p for p in budget)
    with pytest.raises(ConfigError, match=r"^the config has 8 problems:\n  hparams\.ours\.n_sample"):
        check_config(edited("config", edit))


def test_the_budget_minimum_is_each_procedures_own():
    # paper.yaml's κ = 0.001 of Table 11: the paper's test needs 4603, the mixture 4611, the SPRT 5115
    problems = problems_of(edited("paper", lambda c: c["certify"].update(budget=4610)))
    assert len(problems) == 2, problems
    assert re.match(r"certify\.budget: 4610 is below the 4611 samples that the 'mixture' test .* at κ = 0\.001, "
                    r"α = 0\.01 \(Table 11\); allowed: budget >= 4611$", problems[0])
    assert re.match(r"certify\.budget: 4610 is below the 5115 samples that the 'sprt' test", problems[1])


@pytest.mark.parametrize("procedure", ["paper", "mixture", "sprt"])
@pytest.mark.parametrize("kappa,alpha", [(0.01, 0.01), (0.1, 0.05), (0.001, 0.01), (0.2, 0.001)])
def test_min_samples_is_the_tests_own_minimum(procedure, kappa, alpha):
    needed = min_samples(procedure, kappa, alpha)
    assert make_test(procedure, kappa, alpha, needed).min_certify == needed
    assert make_test(procedure, kappa, alpha, needed - 1).min_certify == needed  # none in the budget: budget + 1
    if procedure == "paper":
        assert needed == n_min(kappa, alpha)


def test_only_the_configured_tables_decide_which_levels_matter():
    base = {"tables": [3, 9], "audit": None, "native": None, "ablation": None}
    assert problems_of(edited("config", lambda c: c.update(base, certify={**c["certify"], "budget": 100}))) == []
    # Table 11 alone: κ = 0.1 (44 samples) is certified at budget 100, κ = 0.01 is not among its kappas
    only11 = {**base, "tables": [11]}
    assert problems_of(edited("config", lambda c: (c.update(only11), c["certify"].update(budget=100, kappas=[0, 0.1])))) == []
    # Table 4 reads Table 1's timings, so Table 1's level matters without Table 1 itself
    problems = problems_of(edited("config", lambda c: (c.update(base, tables=[4]), c["certify"].update(budget=100))))
    assert problems and all("(Table 1 for Table 4)" in p for p in problems)


def job_levels(cfg: dict) -> set[tuple[str, float, float]]:
    """(procedure, κ, α) of every certify job's settings, as the jobs build them."""
    vic = {**cfg["vicinities"]["all"], **cfg["vicinities"]["28x28"]}
    from bench.tables import CertificationTable, enabled_tables

    settings = [s for t in enabled_tables(cfg) if isinstance(t, CertificationTable) for s in t.settings(cfg, vic)]
    return {(s["procedure"], float(s["kappa"]), float(s["alpha"])) for s in settings}


@pytest.mark.parametrize("name", SHIPPED)
def test_the_levels_are_those_of_the_certify_jobs(name):
    cfg = shipped(name)
    levels = bconfig._certify_levels(cfg)
    assert {(p, k, a) for (k, a), uses in levels.items() for procs in uses.values() for p in procs} == job_levels(cfg)


def test_plugins_load_before_methods_and_hparams_are_checked(tmp_path):
    plugin = tmp_path / "config_check_plugin.py"
    plugin.write_text(PLUGIN)

    def edit(c: dict) -> None:
        c.update(plugins=[str(plugin)], methods=["erm", "config_check_toy"], tables=[1], ablation=None)
        c["hparams"]["config_check_toy"] = {"shift": 0.02}

    assert problems_of(edited("smoke", edit)) == []
    cfg = edited("smoke", edit)
    cfg["hparams"]["config_check_toy"] = {"shfit": 0.02}
    assert problems_of(cfg) == ["hparams.config_check_toy.shfit: 0.02 is not a hyperparameter of method "
                                "'config_check_toy'; allowed: shift"]


def test_hparams_of_a_registered_method_outside_the_run_are_allowed():
    # a smaller config cut from smoke.yaml keeps its hparams block (tests/test_workflow.py does this)
    assert problems_of(edited("smoke", lambda c: c.update(methods=["erm", "ours"]))) == []


# --- datasets ---------------------------------------------------------------------------------------


def test_dataset_available_checks_files_without_reading_them(tmp_path):
    root = tmp_path / "data"
    found, why = bdata.dataset_available("mnist", root)
    assert not found and why == (f"dataset 'mnist' not found under {root / 'MNIST'} (missing "
                                 f"raw/train-images-idx3-ubyte and 3 more); get it with: python -m bench data "
                                 f"fetch mnist --root {root}   (on a machine with network)")
    make_mnist_like(root, "MNIST", 10, 10)
    assert bdata.dataset_available("mnist", root) == (True, f"dataset 'mnist' found under {root / 'MNIST'}")
    make_cifar_like(root, 10, 2)
    (root / "cifar-10-batches-py" / "data_batch_3").unlink()
    found, why = bdata.dataset_available("cifar10", root)
    assert not found and "(missing data_batch_3);" in why
    (root / "cifar-10-batches-py" / "data_batch_3").write_bytes(b"not a pickle: never read")
    assert bdata.dataset_available("cifar10", root)[0]


def test_fashion_mnist_falls_back_to_the_debian_package(tmp_path, monkeypatch):
    debian = tmp_path / "debian"
    monkeypatch.setattr(staging, "DEBIAN_FASHION_MNIST", debian)
    assert not bdata.dataset_available("fashion_mnist", tmp_path / "data")[0]
    debian.mkdir()
    for f in bdata.FILES["fashion_mnist"]:
        (debian / f"{Path(f).name}.gz").write_bytes(b"")
    found, why = bdata.dataset_available("fashion_mnist", tmp_path / "data")
    assert found and "Debian package dataset-fashion-mnist" in why


def test_a_missing_dataset_the_jobs_can_download_is_a_warning_not_an_error(tmp_path):
    cfg = edited("smoke", lambda c: c.update(datasets=["mnist"], paper_reference={}))
    with pytest.warns(ConfigWarning, match=r"^datasets: dataset 'mnist' not found under data/MNIST .*get it with: "
                                           r"python -m bench data fetch mnist --root data .*downloads it"):
        check_config(cfg)
    make_mnist_like(tmp_path / "data", "MNIST", 10, 10)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConfigWarning)
        check_config(cfg)


def test_data_the_jobs_cannot_get_is_an_error(tmp_path, monkeypatch):
    (tmp_path / "data").write_text("a file")
    assert problems_of(shipped("smoke")) == ["data.root: 'data' is not a directory; allowed: a directory in "
                                             "torchvision's layout, or a path where one can be created"]
    (tmp_path / "data").unlink()
    monkeypatch.setattr(bconfig, "_can_write", lambda path: False)  # the tests may run as root
    problems = problems_of(edited("smoke", lambda c: c.update(datasets=["mnist"], paper_reference={})))
    assert len(problems) == 1
    assert re.match(r"data\.root: 'data' cannot be written, so the jobs cannot get dataset 'mnist' \(dataset 'mnist' "
                    r"not found under data/MNIST .*get it with: python -m bench data fetch mnist --root data .*\); "
                    r"allowed: a writable directory", problems[0]), problems[0]
    make_mnist_like(tmp_path / "data", "MNIST", 10, 10)  # on disk: nothing to write
    assert problems_of(edited("smoke", lambda c: c.update(datasets=["mnist"], paper_reference={}))) == []


# --- the DAG ----------------------------------------------------------------------------------------


def test_snakemake_dry_run_stops_on_a_bad_config_before_any_job(tmp_path):
    def edit(c: dict) -> None:
        c["hparams"]["ours"] = {"n_sample": 8}
        c["vicinities"]["28x28"]["main"] = "linf:abc"
        c["certify"]["budget"] = 30
        c["datasets"] = ["fashion_mnist", "mnist"]  # not in the empty workdir: a warning, not a problem

    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump(edited("smoke", edit)))
    out = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "-n",
                          "--configfile", str(bad)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    text = out.stdout + out.stderr
    assert out.returncode != 0, text
    assert "the config has 4 problems:" in text
    assert "hparams.ours.n_sample: 8 is not a hyperparameter of method 'ours'; allowed: lam, n_samples" in text
    assert "vicinities.28x28.main: 'linf:abc' does not parse" in text
    assert "certify.budget: 30 is below the 44 samples that the 'paper' test" in text
    assert "ConfigWarning: datasets: dataset 'mnist' not found under data/MNIST" in text
    assert not (tmp_path / "results").exists()
