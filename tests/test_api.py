"""bench.api: the library entry point on user models, its checks, and the example of docs/own_model.md."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn as nn
from conftest import TINY_INFO as INFO
from conftest import Constant

from bench.api import attack, certify
from bench.certification.engine import summarize
from bench.certification.sequential import n_min
from bench.certification.vicinity import parse_vicinity
from bench.data import Split
from bench.stats import clopper_pearson

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "own_model.md"


def tiny(channels: int = 1, classes: int = 3) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, classes))


def doc_code() -> str:
    blocks = [b for b in re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S) if "from bench.api import" in b]
    assert len(blocks) == 1, "docs/own_model.md should hold exactly one example of bench.api"
    return blocks[0]


def interval(k: int, n: int) -> tuple[float, float]:
    return clopper_pearson(k, n)


# --- the documented example ------------------------------------------------------------------


@pytest.mark.slow
def test_the_documented_example_runs_as_written(monkeypatch, capsys, tmp_path):
    monkeypatch.chdir(ROOT)
    monkeypatch.delenv("BENCH_DATA", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))  # bench.api's data root: never the user's
    namespace: dict = {}
    exec(compile(doc_code(), str(DOC), "exec"), namespace)
    out = capsys.readouterr().out
    metrics = namespace["result"].metrics
    for name in ("standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy"):
        assert name in out
        row = metrics.loc[name]
        assert row.inputs == 20 and (row.low, row.high) == pytest.approx(interval(row.successes, 20))
        assert row.low <= row.percent <= row.high
    assert len(namespace["result"].frame) == 20


# --- certify ---------------------------------------------------------------------------------


def test_a_constant_model_is_certified_everywhere_with_exact_intervals():
    x = torch.rand(5, 1, 8, 8)
    labels = torch.tensor([1, 1, 1, 0, 2])
    result = certify(Constant(cls=1), x, labels, vicinity="linf:0.3")  # num_classes read off the logits
    frame, m = result.frame, result.metrics
    assert len(frame) == 5 and frame["outcome"].eq("certified").all()
    assert (frame["prediction"] == 1).all() and (frame["clean_prediction"] == 1).all()
    assert (frame["samples"] == n_min(0.01, 0.01)).all()  # all agree: the paper's n_min each
    assert list(m.index) == ["standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy"]
    assert m.at["certified_robustness_rate", "percent"] == 100.0
    assert tuple(m.loc["certified_robustness_rate", ["successes", "inputs"]]) == (5, 5)
    assert tuple(m.loc["certified_robustness_rate", ["low", "high"]]) == pytest.approx(interval(5, 5))
    assert m.at["certified_robustness_rate", "low"] == pytest.approx(100 * 0.025 ** (1 / 5))  # (α/2)^(1/n), α = 0.05
    for name in ("standard_accuracy", "certified_robust_accuracy"):
        assert tuple(m.loc[name, ["successes", "inputs"]]) == (3, 5)
        assert tuple(m.loc[name, ["low", "high"]]) == pytest.approx(interval(3, 5))
    table = summarize(frame)  # the benchmark's own definitions give the same rates
    for name in ("standard_accuracy", "certified_robustness_rate", "certified_robust_accuracy"):
        assert m.at[name, "percent"] == pytest.approx(table[name])
    assert result.settings["num_classes"] == 3 and result.settings["vicinity"] == "linf:0.3"


def test_without_labels_only_the_certified_robustness_rate():
    result = certify(Constant(cls=2), torch.rand(3, 1, 4, 4), procedure="mixture", budget=5000)
    assert list(result.metrics.index) == ["certified_robustness_rate"]
    assert "label" not in result.frame and result.frame["outcome"].eq("certified").all()


def test_a_prediction_rule_is_certified_and_needs_its_number_of_classes():
    gen = torch.Generator().manual_seed(0)
    vicinity = parse_vicinity("linf:0.05")

    def vote(images: torch.Tensor) -> torch.Tensor:  # majority of a threshold rule over 5 draws
        draws = vicinity(images, 5, gen).flatten(2).mean(2)  # N×5 mean brightness
        return (draws > 0.5).long().mode(1).values

    x = torch.cat([torch.full((2, 1, 4, 4), 0.2), torch.full((2, 1, 4, 4), 0.8)])
    with pytest.raises(ValueError, match="pass num_classes="):
        certify(vote, x)
    result = certify(vote, x, [0, 0, 1, 0], vicinity="linf:0.1", num_classes=2, procedure="sprt")
    assert result.frame["outcome"].eq("certified").all()
    assert result.frame["prediction"].tolist() == [0, 0, 1, 1]
    assert tuple(result.metrics.loc["certified_robust_accuracy", ["successes", "inputs"]]) == (3, 4)


def test_a_split_brings_its_labels_and_number_of_classes():
    split = Split(INFO, "test", torch.rand(4, 1, 8, 8), torch.tensor([1, 1, 0, 2]))
    result = certify(lambda x: torch.ones(len(x), dtype=torch.long), split, budget=1000)
    assert result.settings["num_classes"] == 3
    assert result.frame["label"].tolist() == [1, 1, 0, 2]
    assert result.metrics.at["certified_robust_accuracy", "successes"] == 2
    with pytest.raises(ValueError, match="labels come with the Split"):
        certify(Constant(), split, split.labels)


@pytest.mark.parametrize("logits", [2, 5])
def test_a_model_of_another_number_of_classes_than_its_split_is_refused(logits):
    """Issue 25: a model with more logits than the dataset has classes ran silently."""
    split = Split(INFO, "test", torch.rand(4, 1, 8, 8), torch.tensor([1, 1, 0, 2]))
    with pytest.raises(ValueError, match=f"returns {logits} logits per image, but .* has 3 classes"):
        certify(Constant(cls=1, k=logits), split, budget=1000)


# --- input checks ----------------------------------------------------------------------------


@pytest.mark.parametrize("images, message", [
    (torch.rand(1, 8, 8), r"shape N×C×H×W; got shape \(1, 8, 8\)"),
    (torch.rand(0, 1, 8, 8), "non-empty"),
    (torch.randint(0, 256, (2, 1, 8, 8), dtype=torch.uint8), r"float tensor .* torch.uint8 .* / 255"),
    (torch.rand(2, 1, 8, 8) * 3 - 1, r"values in \[0,1\]; found min -0\.\d+, max 1\.\d+.*inside the model"),
    (torch.full((2, 1, 8, 8), float("nan")), "found min nan"),
    (np.zeros((2, 1, 8, 8), np.float32), "must be a torch.Tensor"),
])
def test_bad_images_are_refused_with_what_was_found(images, message):
    with pytest.raises((ValueError, TypeError), match=message):
        certify(tiny(), images)


def test_a_device_mismatch_names_both_devices():
    x = torch.rand(2, 1, 8, 8)
    with pytest.raises(ValueError, match=r"parameters are on meta but the images are on cpu"):
        certify(tiny().to("meta"), x)
    with pytest.raises(ValueError, match=r"parameters are on cpu but the images are on meta"):
        attack(tiny(), x.to("meta"), torch.zeros(2, dtype=torch.long))


@pytest.mark.parametrize("labels, message", [
    (torch.zeros(3, dtype=torch.long), r"shape \(2,\); got shape \(3,\)"),
    (torch.zeros(2, 1, dtype=torch.long), r"shape \(2,\); got shape \(2, 1\)"),
    (torch.zeros(2), "integer class indices; got dtype torch.float32"),
    (torch.tensor([True, False]), "got dtype torch.bool"),
    ([0, 3], r"label 3 of input 1 is outside \[0, 3\)"),
    ([-1, 0], r"label -1 of input 0"),
])
def test_bad_labels_are_refused(labels, message):
    with pytest.raises(ValueError, match=message):
        certify(tiny(), torch.rand(2, 1, 8, 8), labels)


# --- attack ----------------------------------------------------------------------------------


@pytest.mark.parametrize("name", ["FGSM", "PGD"])
def test_an_attack_gives_flags_and_a_robust_accuracy_below_the_clean_one(name):
    model = tiny()
    x = torch.rand(12, 1, 8, 8)
    with torch.no_grad():
        labels = model(x).argmax(1)
    labels[:3] = (labels[:3] + 1) % 3  # three inputs wrong already
    result = attack(model, x, labels, attack=name, eps=0.3, batch_size=5)
    flags = result.correct
    assert flags.dtype == bool and flags.shape == (12,) and not flags[:3].any()
    m = result.metrics
    assert tuple(m.loc["clean_accuracy", ["successes", "inputs"]]) == (9, 12)
    assert m.at["robust_accuracy", "successes"] == flags.sum()
    assert result.robust_accuracy <= m.at["clean_accuracy", "percent"]
    assert result.robust_accuracy < 75.0  # eps 0.3 breaks a random network somewhere
    assert tuple(m.loc["robust_accuracy", ["low", "high"]]) == pytest.approx(interval(int(flags.sum()), 12))
    assert (result.frame["perturbation"] <= 0.3 + 1e-6).all()


def test_an_attack_scored_by_a_prediction_rule_and_the_refusals():
    x, y = torch.rand(4, 1, 8, 8), torch.ones(4, dtype=torch.long)
    always_one = lambda im: torch.ones(len(im), dtype=torch.long)  # noqa: E731
    result = attack(Constant(cls=1), x, y, attack="PGD", eps=0.1, predict=always_one)
    assert result.correct.all() and result.robust_accuracy == 100.0
    with pytest.raises(TypeError, match="nn.Module returning logits.*predict="):
        attack(lambda im: im.sum((1, 2, 3)).long(), x, y)
    with pytest.raises(ValueError, match="needs method=.*attack='PGD', predict=your_vote"):
        attack(Constant(), x, y, attack="VotePGD")
    with pytest.raises(ValueError, match="needs labels"):
        attack(Constant(), x)
    with pytest.raises(ValueError, match=r"eps = 8 is out of range"):
        attack(Constant(), x, y, eps=8)
    with pytest.raises(ValueError, match="unknown attack 'DeepFool'"):
        attack(Constant(), x, y, attack="DeepFool")


def test_an_adaptive_attack_on_a_methods_vote():
    from bench.training import get_method

    cls = get_method("ours")
    method = cls(cls.resolve_hparams(INFO, {"vote_samples": 4}), INFO, parse_vicinity("linf:0.3"),
                 torch.Generator().manual_seed(0))
    x, y = torch.rand(3, 1, 8, 8), torch.ones(3, dtype=torch.long)
    result = attack(Constant(cls=1), x, y, attack="VoteEOTPGD", eps=0.3, method=method, steps=2, vote_samples=4)
    assert result.correct.all() and result.settings["target"].startswith("vote")


def test_the_readme_shows_the_documented_example():
    import re

    readme = (ROOT / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert doc_code() in blocks, "README.md's own-model example differs from docs/own_model.md's (which runs as a test)"


def test_the_cli_certifies_a_model_from_user_code(tmp_path, capsys):
    from safetensors.torch import save_file

    from bench.cli import main

    (tmp_path / "my_model.py").write_text(
        "from torch import nn\n\n"
        "def build():\n"
        "    return nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 10))\n")
    import importlib.util

    spec = importlib.util.spec_from_file_location("my_model", tmp_path / "my_model.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    torch.manual_seed(0)
    save_file(module.build().state_dict(), str(tmp_path / "w.safetensors"))
    main(["certify", "--model", f"{tmp_path / 'my_model.py'}:build", "--weights", str(tmp_path / "w.safetensors"),
          "--per-class", "1", "--kappa", "0.1", "--budget", "200", "--out", str(tmp_path / "out")])
    assert "certified_robustness_rate" in capsys.readouterr().out
    metrics = pd.read_csv(tmp_path / "out" / "metrics.csv")
    assert len(metrics) == 3 and (metrics["inputs"] == 10).all()
    assert len(pd.read_csv(tmp_path / "out" / "certificates.csv")) == 10
    save_file({"0.weight": torch.zeros(3, 3)}, str(tmp_path / "bad.safetensors"))
    with pytest.raises(SystemExit) as stop:  # one line, the traceback behind --debug (tests/test_user_errors.py)
        main(["certify", "--model", f"{tmp_path / 'my_model.py'}:build", "--weights", str(tmp_path / "bad.safetensors"),
              "--per-class", "1"])
    assert stop.value.code == 1 and "does not fit: missing keys: 1.bias, 1.weight" in capsys.readouterr().err
    with pytest.raises(ValueError, match="does not fit: missing keys: 1.bias, 1.weight"):
        main(["--debug", "certify", "--model", f"{tmp_path / 'my_model.py'}:build", "--weights",
              str(tmp_path / "bad.safetensors"), "--per-class", "1"])
