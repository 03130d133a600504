"""Chunked forwards under a memory budget (bench.compute.memory): the same step, votes and attacks.

A chunked training step (VicinalMethod.loss_and_backward) must give the unchunked step's loss,
logged terms and gradient; a chunked vote the same votes; a chunked VoteModel the same output
and gradients. The models here have no BatchNorm and run in eval mode (the Basic ConvNet's
dropout would draw other masks per chunk), except in the test that bounds BatchNorm's difference.
"""
from __future__ import annotations

import logging

import pandas as pd
import pytest
import torch
import torch.nn as nn
from test_methods import make

import bench.compute.memory as memory
from bench.compute.memory import activation_bytes, chunk_size, memory_budget, run_chunked, set_budget
from bench.data import DATASETS
from bench.evaluation.adaptive import VoteModel
from bench.models import create_model
from bench.training import majority_vote

INFO = DATASETS["mnist"]
N, DRAWS, PER_CHUNK = 7, 3, 3  # 7 images in chunks of 3, 3 and 1 (unequal: weights matter)


@pytest.fixture(autouse=True)
def no_budget():
    set_budget(None)
    yield
    set_budget(None)


def convnet(dtype: torch.dtype = torch.float32, seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return create_model("convnet", INFO).to(dtype).eval()  # eval: no dropout, nothing else changes


def batch(dtype: torch.dtype = torch.float32, n: int = N, seed: int = 1):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, 1, 28, 28, generator=g, dtype=dtype), torch.arange(n) % 10


def budget_for(model: nn.Module, x: torch.Tensor, inputs: int, train: bool) -> int:
    """A budget that :func:`chunk_size` turns into exactly ``inputs`` inputs per forward."""
    return int(activation_bytes(model, x, train) * (inputs + 0.5))


class Sizes:
    """Records the batch size of every forward of a module."""

    def __init__(self, module: nn.Module):
        self.sizes: list[int] = []
        self.handle = module.register_forward_pre_hook(lambda m, args: self.sizes.append(len(args[0])))


def flat_grad(model: nn.Module) -> torch.Tensor:
    return torch.cat([p.grad.flatten() for p in model.parameters()])


def step(key: str, model: nn.Module, x, y, budget: int | None, backward=None, **hparams):
    """One loss_and_backward from fresh gradients and a freshly seeded generator."""
    method = make(key, info=INFO, seed=3, n_samples=DRAWS, **hparams)
    method.generator.manual_seed(3)  # the same vicinity draws in every run
    model.zero_grad(set_to_none=True)
    with memory_budget(budget):
        out = method.loss_and_backward(model, x, y, **({} if backward is None else {"backward": backward}))
    return method, out, flat_grad(model)


CASES = [("ours", {}), ("ours", {"lam": 3.0}), ("da", {}), ("prl", {}), ("prl", {"t_steps": 5}),
         ("prl", {"beta": 0.25})]


@pytest.mark.parametrize("dtype,rtol", [(torch.float64, 1e-10), (torch.float32, 1e-3)])
@pytest.mark.parametrize("key,hparams", CASES)
def test_a_chunked_step_has_the_unchunked_loss_terms_and_gradient(key, hparams, dtype, rtol):
    """fp64 shows the identity; fp32 is bounded by rounding that Ours' σ-gradient amplifies by 1/σ
    (σ is small at initialisation; the worst entry differs by 2e-4 of the largest)."""
    model = convnet(dtype)
    x, y = batch(dtype)
    _, full, g_full = step(key, model, x, y, None, **hparams)
    method = make(key, info=INFO, n_samples=DRAWS, **hparams)
    budget = budget_for(model, x, PER_CHUNK * method.inputs_per_image(), train=True)
    sizes = Sizes(model)
    _, chunked, g_chunked = step(key, model, x, y, budget, **hparams)
    assert sizes.sizes == [PER_CHUNK * method.inputs_per_image()] * 2 + [method.inputs_per_image()]
    scale = g_full.abs().max()
    assert torch.allclose(g_chunked, g_full, rtol=rtol, atol=rtol * scale), (g_chunked - g_full).abs().max()
    assert not chunked.loss.requires_grad
    assert chunked.loss.item() == pytest.approx(full.loss.item(), rel=rtol)
    assert chunked.terms.keys() == full.terms.keys()
    for name in full.terms:
        assert float(chunked.terms[name]) == pytest.approx(float(full.terms[name]), rel=rtol, abs=1e-12), name
    assert torch.equal(chunked.targets, full.targets)
    assert torch.allclose(chunked.logits, full.logits, rtol=rtol, atol=rtol)


def test_prl_threshold_steps_use_the_whole_batch_size_in_every_chunk():
    """advbench's step on t is the gradient of the batch mean: 1/N of the batch, not of a chunk.
    With losses above t = 1 at initialisation, t ends at 1 + 5·0.05·(1/β − 1)/N."""
    model = convnet(torch.float64)
    x, y = batch(torch.float64)
    budget = budget_for(model, x, PER_CHUNK * DRAWS, train=True)
    _, out, _ = step("prl", model, x, y, budget, t_steps=5, beta=0.5)
    assert float(out.terms["threshold"]) == pytest.approx(1 + 5 * 0.05 * (1 / 0.5 - 1) / N, rel=1e-12)


def test_without_a_budget_the_step_is_one_forward_and_the_plain_loss():
    model = convnet()
    x, y = batch()
    sizes = Sizes(model)
    method, out, grad = step("ours", model, x, y, None)
    assert sizes.sizes == [N * (DRAWS + 1)]
    method.generator.manual_seed(3)
    model.zero_grad(set_to_none=True)
    plain = method.loss(model, x, y)
    plain.loss.backward()
    assert torch.equal(grad, flat_grad(model)) and torch.equal(out.loss, plain.loss.detach())


def test_an_out_of_memory_error_in_a_chunk_undoes_its_gradient_and_retries_smaller(caplog):
    """The backward of a chunk of more than 2 images runs out of memory after its gradient has
    been accumulated: that partial gradient must be undone before the retry."""
    model = convnet(torch.float64)
    x, y = batch(torch.float64)
    _, full, g_full = step("ours", model, x, y, None)
    sizes = Sizes(model)

    def backward(loss: torch.Tensor) -> None:
        loss.backward()
        if sizes.sizes[-1] > 2 * (DRAWS + 1):
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    budget = budget_for(model, x, 6 * (DRAWS + 1), train=True)  # 6 images a chunk, then 3, then 1
    with caplog.at_level(logging.WARNING, logger="bench.compute.memory"):
        _, out, g = step("ours", model, x, y, budget, backward=backward)
    assert torch.allclose(g, g_full, rtol=1e-10, atol=1e-12)
    assert out.loss.item() == pytest.approx(full.loss.item(), rel=1e-12)
    assert [r.getMessage() for r in caplog.records] == [
        "out of memory on 6 images in one forward; retrying with chunks of 3",
        "out of memory on 3 images in one forward; retrying with chunks of 1"]


def test_batchnorm_chunks_use_their_own_statistics_within_a_bound():
    """Ghost batch normalisation: each chunk is normalised by its own statistics and updates the
    running statistics once. The gradient differs from the whole batch's, here by about 2%; with
    a budget that holds the batch, it is the same."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                          nn.Linear(4 * 26 * 26, 10)).double().train()
    x, y = batch(torch.float64)
    bn = model[1]
    _, _, g_full = step("ours", model, x, y, None)
    assert int(bn.num_batches_tracked) == 1
    _, _, g_one = step("ours", model, x, y, budget_for(model, x, N * (DRAWS + 1), train=True))
    assert int(bn.num_batches_tracked) == 2  # one chunk: the batch
    assert torch.allclose(g_one, g_full, rtol=1e-10, atol=1e-12)
    _, out, g_chunked = step("ours", model, x, y, budget_for(model, x, PER_CHUNK * (DRAWS + 1), train=True))
    assert int(bn.num_batches_tracked) == 2 + 3  # three chunks, three updates
    difference = ((g_chunked - g_full).norm() / g_full.norm()).item()
    assert 1e-6 < difference < 0.1
    assert torch.isfinite(out.loss) and torch.isfinite(g_chunked).all()


@pytest.mark.parametrize("key", ["ours", "rs"])
def test_a_chunked_vote_gives_the_same_votes(key):
    model = convnet()
    x, _ = batch(n=5)
    method = make(key, info=INFO, vote_samples=9)
    method.generator.manual_seed(0)
    full = method.predict(model, x)
    budget = budget_for(model, x, 4, train=False)
    sizes = Sizes(model)
    with memory_budget(budget):
        method.generator.manual_seed(0)
        chunked = method.predict(model, x)
    assert sizes.sizes == [4] * 11 + [1]  # 45 vote inputs, 4 at a time
    assert torch.equal(chunked, full)
    method.generator.manual_seed(0)  # the same draws, classified in one forward by hand
    with torch.no_grad():
        votes = model(method.vote_inputs(x, 9)).argmax(1).view(5, 9)
    assert torch.equal(chunked, majority_vote(votes, INFO.num_classes))


def test_a_chunked_vote_model_has_the_same_output_and_gradients():
    """Each chunk runs under checkpoint: its forward is recomputed in the backward (8 calls for
    4 chunks), so one chunk's activations are alive at a time."""
    model = convnet(torch.float64)
    method = make("ours", info=INFO)
    x0, _ = batch(torch.float64, n=4)
    results = []
    for budget in (None, budget_for(model, x0, 5, train=True)):  # one image (5 inputs) a chunk
        x = x0.clone().requires_grad_(True)
        model.zero_grad(set_to_none=True)
        method.generator.manual_seed(7)
        sizes = Sizes(model)
        with memory_budget(budget):
            out = VoteModel(model, method, n=5)(x)
            out[:, 0].sum().backward()
        sizes.handle.remove()
        results.append((out.detach(), x.grad, flat_grad(model), sizes.sizes))
    (out_a, gx_a, gp_a, sizes_a), (out_b, gx_b, gp_b, sizes_b) = results
    assert sizes_a == [20] and sizes_b == [5] * 8
    assert torch.allclose(out_b, out_a, rtol=1e-12, atol=1e-12)
    assert torch.allclose(gx_b, gx_a, rtol=1e-10, atol=1e-14)
    assert torch.allclose(gp_b, gp_a, rtol=1e-10, atol=1e-14)
    assert gx_a.abs().sum() > 0


# --- bench.compute.memory --------------------------------------------------------------------------------


def oom_above(limit: int, calls: list):
    def fn(start: int, stop: int) -> list[int]:
        calls.append((start, stop))
        if stop - start > limit:
            raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 1.00 GiB")
        return list(range(start, stop))

    return fn


def test_run_chunked_halves_the_chunk_on_out_of_memory_and_logs(caplog):
    calls: list = []
    with caplog.at_level(logging.WARNING, logger="bench.compute.memory"):
        parts = run_chunked(oom_above(3, calls), 11, 8)
    assert sum(parts, []) == list(range(11))
    assert calls[:3] == [(0, 8), (0, 4), (0, 2)] and max(b - a for a, b in calls[2:]) == 2
    assert [r.getMessage() for r in caplog.records] == [
        "out of memory on 8 images in one forward; retrying with chunks of 4",
        "out of memory on 4 images in one forward; retrying with chunks of 2"]
    assert all(r.levelno == logging.WARNING for r in caplog.records)


def test_run_chunked_recognises_a_runtime_error_that_says_out_of_memory():
    def fn(start, stop):
        if stop - start > 1:
            raise RuntimeError("MPS backend out of memory (MPS allocated: 1 GB)")
        return start

    assert run_chunked(fn, 3, 4) == [0, 1, 2]


def test_run_chunked_reraises_at_one_image_and_passes_other_errors_through():
    calls: list = []
    with pytest.raises(torch.cuda.OutOfMemoryError):
        run_chunked(oom_above(0, calls), 5, 4)
    assert calls == [(0, 4), (0, 2), (0, 1)]

    def broken(start, stop):
        calls.append("broken")
        raise RuntimeError("mat1 and mat2 shapes cannot be multiplied")

    calls.clear()
    with pytest.raises(RuntimeError, match="shapes"):
        run_chunked(broken, 5, 4)
    assert calls == ["broken"]  # no retry


def test_run_chunked_remembers_the_halved_chunk_per_key_until_the_budget_changes():
    calls: list = []
    run_chunked(oom_above(3, calls), 8, 8, key="k")
    calls.clear()
    run_chunked(oom_above(3, calls), 8, 8, key="k")
    assert calls == [(0, 2), (2, 4), (4, 6), (6, 8)]  # no failure: starts at the learned size
    set_budget(10**9)
    calls.clear()
    run_chunked(oom_above(3, calls), 8, 8, key="k")
    assert calls[0] == (0, 8)
    assert run_chunked(oom_above(3, []), 6, None, key="other") == [[0, 1, 2], [3, 4, 5]]


def test_chunk_size_is_the_budget_over_the_measured_bytes_per_image():
    model = convnet()
    x, _ = batch()
    per_image = activation_bytes(model, x, train=True)
    assert chunk_size(model, x, None, train=True) is None
    assert chunk_size(model, x, int(per_image * 7), train=True) == 7
    assert chunk_size(model, x, int(per_image * 7) - 1, train=True) == 6
    assert chunk_size(model, x, 1, train=True) == 1  # never below one image
    assert activation_bytes(model, x, train=False) < per_image  # inference keeps no activations


def test_the_cpu_probe_counts_each_saved_activation_once():
    """Flatten → Linear(784, 100) → ReLU → Linear(100, 10) saves, per image, the input of the
    first layer (784 floats) and the ReLU output (100 floats, which the last layer also saves);
    the weights it saves are per call, not per image."""
    model = nn.Sequential(nn.Flatten(), nn.Linear(784, 100), nn.ReLU(), nn.Linear(100, 10))
    x, _ = batch()
    assert activation_bytes(model, x, train=True) == (784 + 100) * 4
    model.double()
    assert activation_bytes(model, x.double(), train=True) == (784 + 100) * 8  # cached per dtype


def test_the_probe_is_cached_and_leaves_no_trace():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Conv2d(1, 4, 3), nn.BatchNorm2d(4), nn.Dropout(0.5), nn.Flatten(),
                          nn.Linear(4 * 26 * 26, 10)).train()
    x, _ = batch()
    buffers = {k: v.clone() for k, v in model.state_dict().items()}
    rng = torch.get_rng_state()
    sizes = Sizes(model)
    first = activation_bytes(model, x, train=True)
    assert len(sizes.sizes) == 2 and activation_bytes(model, x, train=True) == first
    assert len(sizes.sizes) == 2  # cached
    assert all(torch.equal(v, model.state_dict()[k]) for k, v in buffers.items())
    assert torch.equal(torch.get_rng_state(), rng)
    assert all(p.grad is None for p in model.parameters())
    other = nn.Sequential(nn.Flatten(), nn.Linear(784, 10)).train()
    assert activation_bytes(other, x, train=True) != first  # per model, not per class


def test_a_budget_is_positive_bytes_or_none_and_the_context_restores_it():
    with pytest.raises(ValueError, match="positive number of bytes"):
        set_budget(0)
    set_budget(1000)
    with memory_budget(None):
        assert memory.get_budget() is None
    assert memory.get_budget() == 1000
    assert memory.free_memory_budget("cpu") is None


def test_training_under_a_budget_logs_the_terms_of_the_whole_batch(tmp_path, monkeypatch):
    """The loop (bench.training.loop) with chunked steps: every batch in several chunks, and the logged
    loss of Ours is the logged mean plus λ times the logged std, as without chunks."""
    from conftest import make_mnist_like

    import bench.training.method
    from bench.training.loop import TrainSpec, train

    root = tmp_path / "data"
    make_mnist_like(root, "MNIST", n_train=60, n_test=10)
    chunks: list[int] = []
    real = bench.training.method.run_chunked

    def spy(fn, total, chunk, key=None):
        parts = real(fn, total, chunk, key)
        chunks.append(len(parts))
        return parts

    monkeypatch.setattr(bench.training.method, "run_chunked", spy)
    spec = TrainSpec(dataset="mnist", method="ours", arch="convnet", seed=0, epochs=1, batch_size=20,
                     hparams={"n_samples": 2, "lam": 0.5}, data_root=str(root), device="cpu")
    with memory_budget(400_000 * 3 * 4):  # about 4 images of 3 inputs (the probe says ~350 kB each)
        train(spec, tmp_path / "run", progress=False)
    assert chunks and max(chunks) > 1
    log = pd.read_csv(tmp_path / "run" / "log.csv")
    assert log["loss"][0] == pytest.approx(log["mean"][0] + 0.5 * log["std"][0], rel=1e-6)


def test_the_configs_activation_memory_becomes_the_jobs_budget():
    from bench.jobs.common import activation_budget

    cpu = torch.device("cpu")
    assert activation_budget(None, cpu) is None and activation_budget(0, cpu) is None
    assert activation_budget(512, cpu) == 512 * 2**20
    assert activation_budget("auto", cpu) is None  # no GPU: nothing to measure, no chunking
