"""The training loop: resume, refusal, NaN, plugins, checkpoints, the log."""
from __future__ import annotations

import json
import textwrap
from pathlib import Path

import pandas as pd
import pytest
import torch
from conftest import make_mnist_like
from conftest import train_spec as spec
from safetensors.torch import load_file

from bench.certification.engine import CertifyConfig, certify, summarize
from bench.certification.vicinity import parse_vicinity
from bench.data import load_split
from bench.training.loop import load_model, train


@pytest.fixture
def mnist_root(tmp_path) -> Path:
    root = tmp_path / "data"
    make_mnist_like(root, "MNIST", n_train=200, n_test=40)
    return root


def weights(run: Path) -> dict[str, torch.Tensor]:
    return load_file(str(run / "model.safetensors"))


@pytest.mark.parametrize("method,hparams", [("ours", {"n_samples": 2}), ("pgdt", {"steps": 2})])
def test_resumed_run_matches_the_uninterrupted_one(tmp_path, mnist_root, method, hparams):
    s = spec(mnist_root, method=method, hparams=hparams, epochs=3)
    full = tmp_path / "full"
    train(s, full, progress=False)
    cut = tmp_path / "cut"
    row = train(s, cut, progress=False, stop_after_epoch=1)
    assert row["epoch"] == 1 and not (cut / "model.json").exists()
    assert json.loads((cut / "checkpoint.json").read_text())["epoch"] == 1
    train(s, cut, progress=False)  # resumes from the checkpoint of epoch 1
    a, b = weights(full), weights(cut)
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert pd.read_csv(full / "log.csv").drop(columns="seconds").equals(
        pd.read_csv(cut / "log.csv").drop(columns="seconds"))


def test_log_has_one_row_per_epoch_with_the_loss_terms(tmp_path, mnist_root):
    run = tmp_path / "run"
    result = train(spec(mnist_root), run, progress=False)
    log = pd.read_csv(run / "log.csv")
    assert list(log["epoch"]) == [1, 2]
    assert {"loss", "mean", "std", "train_accuracy", "val_accuracy", "seconds", "lr"} <= set(log.columns)
    assert log[["loss", "mean", "std", "train_accuracy", "val_accuracy"]].notna().all().all()
    assert result["metrics"]["val_accuracy"] == log["val_accuracy"].iloc[-1]
    assert result["hparams"] == {"n_samples": 2, "lam": 1.0, "vote_samples": 100}


def test_incompatible_architecture_is_refused_before_any_work(tmp_path, mnist_root):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="cannot train architecture 'resnet18'.*can train: cifar_resnet110, convnet"):
        train(spec(mnist_root, method="rs", arch="resnet18"), run, progress=False)
    assert not run.exists()
    with pytest.raises(ValueError, match="no hyperparameter"):
        train(spec(mnist_root, hparams={"n": 3}), run, progress=False)
    assert not run.exists()


def test_a_finished_run_is_not_redone(tmp_path, mnist_root):
    run = tmp_path / "run"
    first = train(spec(mnist_root, epochs=1), run, progress=False)
    stamp = (run / "model.safetensors").stat().st_mtime_ns
    assert train(spec(mnist_root, epochs=1), run, progress=False) == first
    assert (run / "model.safetensors").stat().st_mtime_ns == stamp


def test_checkpoint_of_another_run_is_refused(tmp_path, mnist_root):
    run = tmp_path / "run"
    train(spec(mnist_root), run, progress=False, stop_after_epoch=1)
    with pytest.raises(ValueError, match="belongs to another run"):
        train(spec(mnist_root, seed=4), run, progress=False)


def test_tampered_weights_are_refused(tmp_path, mnist_root):
    run = tmp_path / "run"
    train(spec(mnist_root, epochs=1), run, progress=False)
    data = bytearray((run / "model.safetensors").read_bytes())
    data[-1] ^= 0xFF
    (run / "model.safetensors").write_bytes(bytes(data))
    with pytest.raises(ValueError, match="does not match the hash"):
        load_model(run)


PLUGIN = '''
"""A method defined outside the methods package: ERM on inputs shifted by a constant."""
import torch.nn.functional as F
from bench.training import LossOutput, Method, register_method


@register_method
class Shifted(Method):
    key = "shifted_erm"
    name = "Shifted ERM"
    citation = "a test"
    architectures = ("convnet",)
    defaults = {"all": {"shift": 0.01}}

    def loss(self, model, images, labels):
        logits = model((images + self.hparams["shift"]).clamp(0, 1))
        return LossOutput(F.cross_entropy(logits, labels), logits)
'''

NAN_PLUGIN = '''
import torch
from bench.training import LossOutput, Method, register_method


@register_method
class Diverges(Method):
    key = "diverges"
    name = "Diverges"
    citation = "a test"
    architectures = ("convnet",)

    def loss(self, model, images, labels):
        out = model(images).sum()
        if self.epoch == 1 and self.batch == 2:
            out = out * float("nan")
        return LossOutput(out)
'''


def test_a_method_defined_outside_the_package_is_found_trained_and_evaluated(tmp_path, mnist_root):
    plugin = tmp_path / "my_method.py"
    plugin.write_text(textwrap.dedent(PLUGIN))
    run = tmp_path / "run"
    result = train(spec(mnist_root, method="shifted_erm", hparams={"shift": 0.02}, plugins=[str(plugin)]),
                   run, progress=False)
    assert result["method"]["name"] == "Shifted ERM" and result["hparams"] == {"shift": 0.02}
    model = load_model(run)
    test = load_split("mnist", "test", mnist_root, download=False)
    cfg = CertifyConfig(budget=600)
    res, clean = certify(lambda x: model(x).argmax(1), test.images, parse_vicinity("linf:0.1"), 10, cfg,
                         progress=False)
    s = summarize(res.frame(test.labels, clean))
    assert s["inputs"] == 40 and 0 <= s["certified_robust_accuracy"] <= 100


def test_a_nan_loss_stops_with_its_place_and_leaves_no_model(tmp_path, mnist_root):
    plugin = tmp_path / "nan_method.py"
    plugin.write_text(textwrap.dedent(NAN_PLUGIN))
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="epoch 2, batch 2"):
        train(spec(mnist_root, method="diverges", hparams={}, plugins=[str(plugin)]), run, progress=False)
    assert not (run / "model.json").exists() and not (run / "model.safetensors").exists()
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 1


def test_the_dag_restarts_from_scratch_when_the_checkpoint_is_of_other_settings_or_code(tmp_path, mnist_root):
    """Snakemake reruns a training exactly when its settings or code changed; the checkpoint left
    from before must then be discarded, not resumed (a finished one would skip training)."""
    run = tmp_path / "run"
    first = train(spec(mnist_root, epochs=1), run, progress=False, provenance={"code": {"engine": "old"}})
    (run / "model.json").unlink()  # Snakemake removes a job's outputs before rerunning it
    again = train(spec(mnist_root, epochs=1), run, progress=False, provenance={"code": {"engine": "new"}},
                  stale_checkpoint="restart")
    assert again["metrics"]["train_seconds"] != first["metrics"]["train_seconds"]  # trained anew, not re-emitted
    (run / "model.json").unlink()
    train(spec(mnist_root, epochs=1, seed=4), run, progress=False, stale_checkpoint="restart")
    (run / "model.json").unlink()
    with pytest.raises(ValueError, match="belongs to another run"):
        train(spec(mnist_root, epochs=1, seed=5), run, progress=False, stop_after_epoch=1)


def test_a_longer_run_resumes_unless_the_schedule_stretches_with_the_run(tmp_path, mnist_root):
    """A checkpoint of a shorter run is the prefix of a longer one for the paper's fixed schedule
    (resumed), but not for IBP's, stretched to the run's epochs (Shi et al.'s ramp and decay):
    a longer IBP run starts over and equals a fresh run of that length."""
    short, longer = spec(mnist_root, epochs=1), spec(mnist_root, epochs=2)
    run = tmp_path / "ours"
    train(short, run, progress=False)
    first_epoch = pd.read_csv(run / "log.csv").iloc[0]
    (run / "model.json").unlink()
    train(longer, run, progress=False, stale_checkpoint="restart")
    log = pd.read_csv(run / "log.csv")
    assert len(log) == 2
    assert log.iloc[0]["seconds"] == first_epoch["seconds"]  # carried over, not trained again

    ibp = dict(method="ibp", arch="cnn7", hparams={}, batch_size=64)
    run, fresh = tmp_path / "ibp", tmp_path / "ibp_fresh"
    train(spec(mnist_root, epochs=1, **ibp), run, progress=False)
    (run / "model.json").unlink()
    with pytest.raises(ValueError, match="belongs to another run"):
        train(spec(mnist_root, epochs=2, **ibp), run, progress=False)
    train(spec(mnist_root, epochs=2, **ibp), run, progress=False, stale_checkpoint="restart")
    train(spec(mnist_root, epochs=2, **ibp), fresh, progress=False)
    a, b = weights(run), weights(fresh)
    assert all(torch.equal(a[k], b[k]) for k in a)


def test_ibp_saves_the_batch_statistics_it_trained_with(tmp_path, mnist_root):
    """auto_LiRPA's bounded graph clones BatchNorm's buffers: unshared, the saved CNN7 would keep
    its initial running statistics (mean 0, variance 1) and evaluate as a different network."""
    run = tmp_path / "ibp"
    train(spec(mnist_root, method="ibp", arch="cnn7", hparams={}, batch_size=64, epochs=1), run, progress=False)
    stats = {k: v for k, v in weights(run).items() if k.endswith(("running_mean", "running_var"))}
    assert stats and all(not torch.equal(v, torch.zeros_like(v) if k.endswith("mean") else torch.ones_like(v))
                         for k, v in stats.items())
