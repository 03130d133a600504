"""Precision options (bench.compute.precision) and the training loop's deferred host synchronisation."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F
from conftest import make_mnist_like
from conftest import train_spec as spec

import bench.training.loop as btrain
from bench.certification.engine import classifier
from bench.certification.vicinity import parse_vicinity
from bench.compute.precision import FP32, Precision, autocast, prepare_input, prepare_model
from bench.data import dataset_info, load_split
from bench.models import create_model
from bench.training import LossOutput, Method, get_method, register_method
from bench.training.loop import TrainSpec, default_vicinity, load_model, train

INFO = dataset_info("mnist")


@pytest.fixture(scope="module")
def mnist_root(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("data")
    make_mnist_like(root, "MNIST", n_train=200, n_test=40)  # 160 training, 40 validation images
    return root


def model_and_batch(arch: str = "convnet", n: int = 16, seed: int = 0):
    torch.manual_seed(seed)
    return create_model(arch, INFO).eval(), torch.rand(n, 1, 28, 28)


# --- toy methods (registered once, by key) ----------------------------------------------------


@register_method
class Probe(Method):
    """ERM that records, per call, whether autocast was on and the dtype of its logits; and the
    dtype of the gradients after backward."""

    key = "test_precision_probe"
    name = "Probe"
    citation = "a test"
    architectures = ("convnet", "cnn7")
    seen: list = []

    def loss(self, model, images, labels):
        logits = model(images)
        Probe.seen.append(("loss", torch.is_autocast_enabled("cpu"), logits.dtype))
        return LossOutput(F.cross_entropy(logits, labels), logits)

    def after_backward(self, model):
        Probe.seen.append(("grad", torch.is_autocast_enabled("cpu"), next(model.parameters()).grad.dtype))


@register_method
class NaNAt(Method):
    """Loss NaN at (epoch, batch) = hparams; records the batches it ran; optionally raises
    another error at a later batch (as a model with NaN weights might)."""

    key = "test_precision_nan"
    name = "NaN at"
    citation = "a test"
    architectures = ("convnet",)
    defaults = {"all": {"epoch": 1, "batch": 3, "raise_at": -1}}
    ran: list = []

    def loss(self, model, images, labels):
        NaNAt.ran.append((self.epoch, self.batch))
        if self.epoch == self.hparams["epoch"] and self.batch == self.hparams["raise_at"]:
            raise RuntimeError("some later failure")
        out = model(images).sum() * 0.0
        if self.epoch == self.hparams["epoch"] and self.batch == self.hparams["batch"]:
            out = out * float("nan")
        return LossOutput(out)


@register_method
class Terms(Method):
    """Loss = batch index, terms: a tensor (batch index) and a float (2 × batch index); logits
    right on even batches, wrong on odd ones."""

    key = "test_precision_terms"
    name = "Terms"
    citation = "a test"
    architectures = ("convnet",)

    def loss(self, model, images, labels):
        b = float(self.batch)
        out = model(images)
        shift = 0 if self.batch % 2 == 0 else 1
        logits = F.one_hot((labels + shift) % 10, 10).float()
        return LossOutput(out.sum() * 0.0 + b, logits, labels,
                          {"t": torch.tensor(b, requires_grad=True) * 1.0, "f": 2.0 * b})


# --- bench.compute.precision -------------------------------------------------------------------------


def test_autocast_runs_bf16_convs_and_matmuls_inside_and_nothing_for_fp32():
    model, x = model_and_batch()
    conv = model[1][0]
    with autocast("cpu", "bf16"):
        assert torch.is_autocast_enabled("cpu")
        assert conv(x).dtype == torch.bfloat16  # a convolution
        assert model(x).dtype == torch.bfloat16  # the last layer is a matmul
        assert F.cross_entropy(model(x), torch.zeros(16, dtype=torch.long)).dtype == torch.float32
    with autocast("cpu", "fp32"):
        assert not torch.is_autocast_enabled("cpu")
        assert model(x).dtype == torch.float32
    assert next(model.parameters()).dtype == torch.float32  # weights stay fp32


def test_precision_names_are_checked():
    assert Precision.of(None) == FP32 == Precision.of("fp32")
    assert Precision.of("bf16", channels_last=True) == Precision("bf16", True)
    with pytest.raises(ValueError, match="'fp16' is not known; allowed: fp32, bf16"):
        Precision.of("fp16")
    with pytest.raises(ValueError, match="not on device type 'meta'"):
        with autocast(torch.device("meta"), "bf16"):
            pass


def test_fp32_inference_is_bit_for_bit_what_it_was():
    model, x = model_and_batch()
    expected = model(x)
    with torch.inference_mode():
        with autocast("cpu", None):
            logits = model(prepare_input(x, FP32))
    assert torch.equal(logits, expected)
    assert prepare_model(model, FP32) is model and prepare_input(x, "fp32") is x
    assert all(p.is_contiguous() for p in model.parameters())
    assert torch.equal(classifier(model)(x), expected.argmax(1))
    assert torch.equal(classifier(model, "fp32")(x), expected.argmax(1))


def test_bf16_classifier_and_predict_run_under_autocast_and_keep_the_finite_check():
    model, x = model_and_batch()
    calls = []
    model.register_forward_hook(lambda m, i, out: calls.append((torch.is_autocast_enabled("cpu"), out.dtype)))
    classifier(model, "bf16")(x)
    method = get_method("ours")(get_method("ours").resolve_hparams(INFO, {"vote_samples": 3}), INFO,
                                parse_vicinity("linf:0.1"), torch.Generator().manual_seed(0))
    votes = method.predict(model, x, precision="bf16")
    plain = method.predict(model, x)
    assert calls == [(True, torch.bfloat16), (True, torch.bfloat16), (False, torch.float32)]
    assert votes.shape == plain.shape == (16,)
    broken = nn.Sequential(model, nn.Linear(10, 10))
    with torch.no_grad():
        broken[1].weight.zero_()
        broken[1].bias.zero_()
        broken[1].bias[3] = float("inf")
    with pytest.raises(ValueError, match=r"non-finite logit \(inf\) for input 0"):
        classifier(broken, "bf16")(torch.ones(2, 1, 28, 28))


@pytest.mark.parametrize("arch", ["convnet", "cnn7"])
def test_channels_last_model_gives_the_logits_of_the_contiguous_one(arch):
    model, x = model_and_batch(arch)
    copy = create_model(arch, INFO).eval()
    copy.load_state_dict(model.state_dict())
    p = Precision("fp32", channels_last=True)
    prepare_model(copy, p)
    convs = [m.weight for m in copy.modules() if isinstance(m, nn.Conv2d)]
    assert convs and all(w.is_contiguous(memory_format=torch.channels_last) for w in convs)
    assert not all(w.is_contiguous() for w in convs)  # (with one input channel the two formats coincide)
    assert prepare_input(x, p).is_contiguous(memory_format=torch.channels_last)
    with torch.inference_mode():
        torch.testing.assert_close(copy(prepare_input(x, p)), model(x), rtol=1e-5, atol=1e-5)


# --- the training loop -----------------------------------------------------------------------


def reference_train(s: TrainSpec):
    """The training loop as it was before bench.compute.precision (per-batch .item(), isfinite and
    int() syncs; plain fp32), for the bit-for-bit comparison."""
    cls = get_method(s.method)
    info = dataset_info(s.dataset)
    torch.manual_seed(s.seed)
    train_split = load_split(s.dataset, "train", s.data_root, seed=s.seed)
    val_split = load_split(s.dataset, "val", s.data_root, seed=s.seed)
    model = create_model(s.arch, info)
    shuffle = torch.Generator().manual_seed(s.seed)
    noise = torch.Generator().manual_seed(s.seed + 1)
    method = cls(cls.resolve_hparams(info, s.hparams), info, parse_vicinity(default_vicinity(info)), noise)
    trained = method.prepare(model, train_split.images[: s.batch_size])
    optimizer, scheduler = method.optimizer(model, s.arch)
    method.batches_per_epoch = -(-len(train_split) // s.batch_size)
    rows = []
    for epoch in range(s.epochs):
        method.epoch = epoch
        total, seen, correct, counted, terms = 0.0, 0, 0, 0, {}
        for batch, (images, labels) in enumerate(train_split.batches(s.batch_size, shuffle=True, generator=shuffle)):
            method.batch = batch
            trained.train()
            optimizer.zero_grad(set_to_none=True)
            out = method.loss(trained, images, labels)
            assert torch.isfinite(out.loss)
            out.loss.backward()
            method.after_backward(model)
            optimizer.step()
            n = len(labels)
            total += out.loss.item() * n
            seen += n
            for key, value in out.terms.items():
                terms[key] = terms.get(key, 0.0) + float(value) * n
            if out.logits is not None:
                targets = labels if out.targets is None else out.targets
                correct += int((out.logits.detach().argmax(1) == targets).sum())
                counted += len(targets)
        scheduler.step()
        with torch.inference_mode():
            model.eval()
            val = sum(int((model(x).argmax(1) == y).sum()) for x, y in val_split.batches(1024))
        rows.append({"loss": total / seen, **{k: v / seen for k, v in terms.items()},
                     "train_accuracy": 100.0 * correct / counted, "val_accuracy": 100.0 * val / len(val_split)})
    return model.state_dict(), rows


def test_fp32_training_is_bit_for_bit_the_loop_before(tmp_path, mnist_root):
    s = spec(mnist_root)
    state, rows = reference_train(s)
    run = tmp_path / "run"
    train(s, run, progress=False)
    got = load_model(run).state_dict()
    assert state.keys() == got.keys() and all(torch.equal(state[k], got[k]) for k in state)
    log = pd.read_csv(run / "log.csv")
    for key in ("loss", "mean", "std", "train_accuracy", "val_accuracy"):
        assert list(log[key]) == [r[key] for r in rows], key  # the same floats, to the last bit


def test_bf16_training_runs_the_loss_under_autocast_with_fp32_gradients(tmp_path, mnist_root):
    Probe.seen.clear()
    run = tmp_path / "run"
    result = train(spec(mnist_root, method="test_precision_probe", hparams={}, precision="bf16",
                        channels_last=True, epochs=1), run, progress=False)
    assert Probe.seen[0] == ("loss", True, torch.bfloat16) and Probe.seen[1] == ("grad", False, torch.float32)
    assert len(Probe.seen) == 10  # 5 batches
    assert result["spec"]["precision"] == "bf16" and result["spec"]["channels_last"] is True
    assert json.loads((run / "model.json").read_text())["spec"]["precision"] == "bf16"
    Probe.seen.clear()
    train(spec(mnist_root, method="test_precision_probe", hparams={}, epochs=1), tmp_path / "fp32", progress=False)
    assert Probe.seen[0] == ("loss", False, torch.float32)


def test_bf16_training_of_ours_trains(tmp_path, mnist_root):
    run = tmp_path / "run"
    result = train(spec(mnist_root, precision="bf16"), run, progress=False)
    log = pd.read_csv(run / "log.csv")
    assert log[["loss", "mean", "std", "train_accuracy", "val_accuracy"]].notna().all().all()
    assert (log["train_accuracy"] >= 0).all() and log["loss"].map(lambda v: abs(v) < 1e6).all()
    assert result["spec"]["precision"] == "bf16" and result["metrics"]["val_accuracy"] == log["val_accuracy"].iloc[-1]
    model = load_model(run)
    assert all(v.dtype == torch.float32 for v in model.state_dict().values() if v.is_floating_point())


def test_bf16_is_refused_for_a_method_trained_on_bounds(tmp_path, mnist_root):
    run = tmp_path / "run"
    with pytest.raises(ValueError, match="not available for method 'ibp'.*stay IEEE fp32"):
        train(spec(mnist_root, method="ibp", arch="cnn7", hparams={}, precision="bf16"), run, progress=False)
    assert not run.exists()


def test_a_checkpoint_from_before_the_precision_fields_still_resumes(tmp_path, mnist_root):
    s = spec(mnist_root, epochs=2)
    run = tmp_path / "run"
    train(s, run, progress=False, stop_after_epoch=1)
    meta = json.loads((run / "checkpoint.json").read_text())
    for key in ("precision", "channels_last"):
        del meta["spec"][key]
    (run / "checkpoint.json").write_text(json.dumps(meta))
    assert train(s, run, progress=False)["epochs"] == 2
    cut = tmp_path / "cut"
    train(s, cut, progress=False, stop_after_epoch=1)
    with pytest.raises(ValueError, match="belongs to another run"):
        train(spec(mnist_root, epochs=2, precision="bf16"), cut, progress=False)


@pytest.mark.parametrize("every,nan_batch,stops_after", [(2, 3, 3), (50, 3, 4), (2, 0, 1)])
def test_the_deferred_nan_check_names_the_first_bad_batch(tmp_path, mnist_root, monkeypatch,
                                                          every, nan_batch, stops_after):
    monkeypatch.setattr(btrain, "FINITE_CHECK_EVERY", every)
    NaNAt.ran.clear()
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError, match=f"the loss became nan in epoch 2, batch {nan_batch};"):
        train(spec(mnist_root, method="test_precision_nan", hparams={"batch": nan_batch}), run, progress=False)
    # the check is deferred: the loop ran on to the end of the N-batch block (or of the epoch)
    assert [b for e, b in NaNAt.ran if e == 1] == list(range(stops_after + 1))
    assert not (run / "model.json").exists() and not (run / "model.safetensors").exists()
    assert json.loads((run / "checkpoint.json").read_text())["epoch"] == 1


def test_a_nan_loss_is_reported_before_a_later_error_it_may_have_caused(tmp_path, mnist_root):
    run = tmp_path / "run"
    with pytest.raises(FloatingPointError, match="epoch 2, batch 1;") as info:
        train(spec(mnist_root, method="test_precision_nan", hparams={"batch": 1, "raise_at": 3}), run,
              progress=False)
    assert isinstance(info.value.__context__, RuntimeError)
    with pytest.raises(RuntimeError, match="some later failure"):  # no NaN before it: the error itself
        train(spec(mnist_root, method="test_precision_nan", hparams={"batch": 4, "raise_at": 3}),
              tmp_path / "other", progress=False)


def test_tensor_and_float_terms_are_averaged_over_the_epoch_by_images(tmp_path, mnist_root):
    run = tmp_path / "run"
    train(spec(mnist_root, method="test_precision_terms", hparams={}, batch_size=48, epochs=1), run,
          progress=False)
    row = pd.read_csv(run / "log.csv").iloc[0]
    # batches 0..3 of 48, 48, 48, 16 images; value = batch index
    expected = (0 * 48 + 1 * 48 + 2 * 48 + 3 * 16) / 160
    assert row["loss"] == pytest.approx(expected, abs=1e-12)
    assert row["t"] == pytest.approx(expected, abs=1e-12)
    assert row["f"] == pytest.approx(2 * expected, abs=1e-12)
    assert row["train_accuracy"] == pytest.approx(100.0 * (48 + 48) / 160)  # batches 0 and 2 right


def test_the_tally_keeps_terms_on_the_device_detached_and_mixes_dtypes():
    tally = btrain._EpochTally("k", 0, torch.device("cpu"))
    w = torch.ones((), requires_grad=True)
    for b, n in enumerate((4, 4, 2)):
        bf = (torch.tensor(b + 0.5) * w).to(torch.bfloat16)
        assert bf.dtype == torch.bfloat16 and bf.requires_grad
        tally.add(LossOutput(w * b, None, None, {"bf": bf, "fl": 0.25 * b}), torch.zeros(n))
    assert all(not v.requires_grad for terms in tally.terms for v in terms.values() if torch.is_tensor(v))
    row = tally.row()
    assert row["loss"] == pytest.approx((0 * 4 + 1 * 4 + 2 * 2) / 10)
    assert row["bf"] == pytest.approx((0.5 * 4 + 1.5 * 4 + 2.5 * 2) / 10)
    assert row["fl"] == pytest.approx(0.25 * (0 * 4 + 1 * 4 + 2 * 2) / 10)
    assert row["train_accuracy"] != row["train_accuracy"]  # NaN: no logits


def _count_host_syncs(monkeypatch) -> list[str]:
    """Patch the Tensor methods that wait for the device; record those called from the loop
    (bench/training/loop.py, bench/training/method.py) or a method (methods/)."""
    calls: list[str] = []
    here = ("bench/training/loop.py", "bench/training/method.py", "/methods/")
    for name in ("item", "tolist", "__bool__", "__int__", "__float__"):
        original = getattr(torch.Tensor, name)

        def wrapper(self, *args, _original=original, _name=name):
            caller = sys._getframe(1).f_code.co_filename.replace("\\", "/")
            if any(part in caller for part in here):
                calls.append(_name)
            return _original(self, *args)

        monkeypatch.setattr(torch.Tensor, name, wrapper)
    return calls


@pytest.mark.parametrize("method,hparams", [("ours", {"n_samples": 2}), ("trades", {"steps": 1})])
def test_host_syncs_per_epoch_do_not_grow_with_the_batches(tmp_path, mnist_root, monkeypatch, method, hparams):
    calls = _count_host_syncs(monkeypatch)
    counts = []
    for batch_size in (32, 16):  # 5 and 10 batches per epoch
        calls.clear()
        train(spec(mnist_root, method=method, hparams=hparams, batch_size=batch_size, epochs=1),
              tmp_path / f"b{batch_size}", progress=False)
        counts.append(len(calls))
    assert counts[0] == counts[1] <= 6, counts
