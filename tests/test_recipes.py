"""The training recipes: every value has a source, and the divergences from the originals that
were found (issue 11) stay fixed."""
from __future__ import annotations

import pytest
import torch

from bench.certification.vicinity import parse_vicinity
from bench.data import dataset_info
from bench.models import create_model
from bench.report.recipes import recipe_table
from bench.training import available_methods, get_method
from bench.training.augment import crop_flip, resolve

CIFAR, MNIST, SVHN = dataset_info("cifar10"), dataset_info("mnist"), dataset_info("svhn")


def method(key: str, info, **overrides):
    cls = get_method(key)
    return cls(cls.resolve_hparams(info, overrides), info, parse_vicinity("linf:0.1"), torch.Generator().manual_seed(0))


@pytest.fixture(scope="module")
def table():
    return recipe_table([k for k in available_methods() if get_method(k).__module__.startswith("methods.")])


def test_every_value_of_every_recipe_has_a_source(table):
    missing = table[table["source"].str.strip() == ""]
    assert missing.empty, f"settings without a source:\n{missing[['method', 'shape', 'setting']].to_string()}"
    assert set(table["method"]) == {"erm", "da", "pgdt", "trades", "mart", "rs", "ibp", "prl", "ours"}


def test_the_table_shows_what_the_training_code_uses(table):
    rows = table.set_index(["method", "shape", "setting"])["value"]
    for key in set(table["method"]):
        cls = get_method(key)
        for shape, info in (("28x28", MNIST), ("32x32", CIFAR)):
            for name, value in cls.resolve_hparams(info).items():
                assert rows[(key, shape, name)] == (f"{value:.6g}" if isinstance(value, float) else str(value))
            assert rows[(key, shape, "batch_size")] == str(cls.batch_size[shape])
    assert rows[("erm", "32x32", "momentum")] == "0.9" and rows[("ibp", "32x32", "optimizer")] == "Adam"


def test_sgd_has_momentum_in_its_state():
    m = method("erm", CIFAR)
    model = create_model("resnet18", CIFAR)
    opt, _ = m.optimizer(model, "resnet18")
    assert opt.param_groups[0]["momentum"] == 0.9
    model(torch.rand(2, 3, 32, 32)).sum().backward()
    opt.step()
    assert all("momentum_buffer" in opt.state[p] for p in model.parameters() if p.grad is not None)


def test_crop_and_flip_on_cifar_training_batches_only():
    assert resolve("recipe", CIFAR) == "crop4+flip" and resolve("recipe", dataset_info("cifar100")) == "crop4+flip"
    assert resolve("recipe", SVHN) == "none" and resolve("recipe", MNIST) == "none"
    images = torch.rand(64, 3, 32, 32)
    out = crop_flip(images, torch.Generator().manual_seed(0))
    padded = torch.nn.functional.pad(images, (4, 4, 4, 4))
    flips = 0
    for x, y in zip(padded, out):  # each output is some 32×32 window of the padded image, maybe mirrored
        found = [(dy, dx, f) for dy in range(9) for dx in range(9) for f in (False, True)
                 if torch.equal((x.flip(2) if f else x)[:, dy:dy + 32, (8 - dx if f else dx):(8 - dx if f else dx) + 32], y)]
        assert found
        flips += found[0][2]
    assert 16 < flips < 48  # about half
    assert torch.equal(out, crop_flip(images, torch.Generator().manual_seed(0)))  # seeded


def test_training_augments_its_batches_and_evaluation_does_not(tmp_path, monkeypatch):
    import bench.training.loop as train_module
    from bench.data.synthetic import write_dataset
    from bench.training.loop import TrainSpec, accuracy, train

    write_dataset("cifar10", tmp_path / "data", per_class=4)
    calls = []
    real = train_module.augment
    monkeypatch.setattr(train_module, "augment", lambda name, x, g: calls.append(name) or real(name, x, g))
    spec = TrainSpec(dataset="cifar10", method="erm", arch="convnet", epochs=1, batch_size=16, train_per_class=2,
                     val_per_class=1, data_root=str(tmp_path / "data"), device="cpu")
    train(spec, tmp_path / "run", progress=False)
    assert calls and set(calls) == {"crop4+flip"}
    calls.clear()
    from bench.data import load_split

    accuracy(train_module.load_model(tmp_path / "run", "cpu"), load_split("cifar10", "test", tmp_path / "data"))
    assert calls == []


def test_ibp_on_150_epochs_of_32x32_decays_the_rate_only_after_the_ramp():
    m = method("ibp", CIFAR)
    m.epochs = 150
    first, length = m.ramp()
    last_ramp_epoch = first + length - 1  # 1-based
    opt, scheduler = m.optimizer(create_model("wrn8", CIFAR), "wrn8")
    rates = []
    for _ in range(150):
        rates.append(opt.param_groups[0]["lr"])
        opt.step()
        scheduler.step()
    assert rates[last_ramp_epoch - 1] == pytest.approx(5e-4)  # the full rate until eps reaches its target
    assert rates[-1] == pytest.approx(5e-4 * 0.04)
    assert sorted(scheduler.milestones) == [round(120 * 150 / 160), round(140 * 150 / 160)]
    m.epochs = 160  # Shi et al.'s own length: their schedule exactly
    assert m.ramp() == (2, 80) and [m.scaled(e) for e in (120, 140)] == [120, 140]


def test_ibp_tightness_reference_is_measured_on_normalised_input():
    from bench.models.lirpa import ieee_fp32

    m = method("ibp", MNIST)
    model = create_model("convnet", MNIST)
    images = torch.full((2, 1, 28, 28), 0.5)
    m.prepare(model, images)
    with ieee_fp32():
        m.bounds(images, torch.zeros(2, dtype=torch.long), 0.1)
    assert float(m.tightness_reference()) == pytest.approx(0.1 / MNIST.std[0], rel=1e-5)


def test_prl_is_the_worst_5_percent_of_50_draws_and_the_clean_input():
    m = method("prl", MNIST)
    assert m.hparams["beta"] == 0.05 and m.draws() == 50 and m.inputs_per_image() == 51

    class Scripted(torch.nn.Module):  # the clean image (all zeros) gets the largest loss
        def forward(self, x):
            wrong = (x.flatten(1).abs().sum(1) == 0).float() * 10
            return torch.stack([-wrong, wrong], 1)

    images = torch.zeros(1, 1, 28, 28)
    samples = torch.rand(1, 50, 1, 28, 28)
    labels = torch.zeros(1, dtype=torch.long)
    with_clean = float(m.image_losses(Scripted(), images, labels, samples, 1).losses[0])
    without = float(method("prl", MNIST, include_clean=False).image_losses(Scripted(), images, labels, samples, 1)
                    .losses[0])
    # draws: loss ln 2 each; the clean input, loss ~20, is in the worst 5 % of the 51 losses
    assert without == pytest.approx(0.6931, abs=1e-3)
    assert with_clean == pytest.approx(0.6931 + (20 - 0.6931) / 51 / 0.05, rel=1e-3)


def test_method_defaults_follow_their_originals():
    assert get_method("ours").resolve_hparams(MNIST)["n_samples"] == 50
    assert get_method("da").resolve_hparams(MNIST)["n_samples"] == 50
    assert get_method("trades").resolve_hparams(MNIST)["beta"] == 1.0
    assert get_method("trades").resolve_hparams(CIFAR)["beta"] == 6.0
    assert get_method("mart").resolve_hparams(CIFAR)["beta"] == 5.0
    assert get_method("ibp").batch_size == {"28x28": 256, "32x32": 128}
    assert get_method("ours").batch_size == {"28x28": 32, "32x32": 32}


def test_the_committed_recipe_table_is_the_code_s(table):
    from pathlib import Path

    import pandas as pd

    committed = pd.read_csv(Path(__file__).resolve().parent.parent / "docs" / "recipes.csv", dtype=str,
                            keep_default_na=False)
    current = table.astype(str)
    assert committed.to_dict("records") == current.to_dict("records"), \
        "docs/recipes.csv is stale: python -m bench methods --recipes --out docs/recipes.csv"
