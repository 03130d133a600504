"""The nine methods: declarations, losses, gradients, adversarial inputs, bounds, learning."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn
import torch.nn.functional as F

from bench.certification.vicinity import parse_vicinity
from bench.data import DATASETS, DatasetInfo
from bench.models import create_model
from bench.paper import compatible_architectures
from bench.training import available_methods, get_method

PAPER_METHODS = ["erm", "da", "pgdt", "trades", "mart", "rs", "ibp", "prl", "ours"]
TOY = DatasetInfo("toy", "toy", 1, 8, 4, (0.5,), (0.25,), "synthetic")
# Small settings so that every method runs in a fraction of a second on the toy task.
TOY_HPARAMS = {
    "erm": {}, "rs": {"sigma": 0.1},
    "da": {"n_samples": 4}, "ours": {"n_samples": 4}, "prl": {"n_samples": 8},
    "pgdt": {"eps": 0.1, "step_size": 0.04, "steps": 4},
    "trades": {"eps": 0.1, "step_size": 0.04, "steps": 4},
    "mart": {"eps": 0.1, "step_size": 0.04, "steps": 4},
    "ibp": {"eps": 0.1, "ramp_start": 1, "ramp_epochs": 1, "lr": 5e-3},
}


def toy_batch(n: int = 64, seed: int = 0):
    """4 classes: a bright 4×4 quadrant on a dark 8×8 image, plus a little noise."""
    g = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 4
    images = torch.rand(n, 1, 8, 8, generator=g) * 0.1 + 0.05
    for i, y in enumerate(labels.tolist()):
        r, c = divmod(y, 2)
        images[i, 0, 4 * r : 4 * r + 4, 4 * c : 4 * c + 4] += 0.8
    return images.clamp(0, 1), labels


def toy_model(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Flatten(), nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 4))


def make(key: str, seed: int = 0, info: DatasetInfo = TOY, **overrides):
    cls = get_method(key)
    hparams = cls.resolve_hparams(info, {**TOY_HPARAMS.get(key, {}), **overrides})
    return cls(hparams, info, parse_vicinity("linf:0.1"), torch.Generator().manual_seed(seed))


def test_the_nine_methods_are_registered_and_declare_table_7():
    assert set(PAPER_METHODS) <= set(available_methods())
    for key in PAPER_METHODS:
        cls = get_method(key)
        assert cls.key == key and cls.name and cls.citation
        assert set(cls.architectures) == set(compatible_architectures(key)), key


def test_vote_methods_are_ours_and_rs():
    assert {k for k in PAPER_METHODS if get_method(k).vote} == {"ours", "rs"}


def test_unknown_method_and_hyperparameter_are_refused():
    with pytest.raises(ValueError, match="unknown method 'sgd'; known: .*ours"):
        get_method("sgd")
    with pytest.raises(ValueError, match="no hyperparameter 'lambda'; known: lam, n_samples, vote_samples"):
        get_method("ours").resolve_hparams(DATASETS["mnist"], {"lambda": 2})


def test_hyperparameters_resolve_by_shape_group():
    mnist = get_method("pgdt").resolve_hparams(DATASETS["mnist"])
    fashion = get_method("pgdt").resolve_hparams(DATASETS["fashion_mnist"])
    cifar = get_method("pgdt").resolve_hparams(DATASETS["cifar10"])
    assert (mnist["eps"], mnist["steps"], mnist["step_size"]) == (0.3, 40, 0.01)
    # the dataset's own key over its shape group's: Fashion-MNIST's budget, MNIST's steps
    assert (fashion["eps"], fashion["steps"], fashion["step_size"]) == (0.1, 40, 0.01)
    assert (cifar["eps"], cifar["steps"], cifar["step_size"]) == (8 / 255, 10, 2 / 255)
    assert get_method("trades").resolve_hparams(DATASETS["svhn"])["beta"] == 6.0
    assert get_method("ibp").resolve_hparams(DATASETS["mnist"])["eps"] == 0.4


@pytest.mark.parametrize("key", PAPER_METHODS)
def test_loss_is_finite_and_reaches_every_parameter(key):
    info = DATASETS["mnist"]
    arch = "cnn7" if key == "ibp" else "convnet"
    model = create_model(arch, info)
    images = torch.rand(8, 1, 28, 28)
    labels = torch.arange(8) % 10
    method = make(key, info=info, **({"steps": 2} if key in ("pgdt", "trades", "mart") else {}))
    method.epoch, method.batch, method.batches_per_epoch = 1, 3, 10  # IBP: inside its ramp
    trained = method.prepare(model, images)
    trained.train()
    out = method.loss(trained, images, labels)
    assert out.loss.ndim == 0 and torch.isfinite(out.loss)
    out.loss.backward()
    for name, p in model.named_parameters():
        assert p.grad is not None and torch.isfinite(p.grad).all(), f"{key}: no gradient for {name}"
        assert p.grad.abs().sum() > 0, f"{key}: zero gradient for {name}"


@pytest.mark.parametrize("key", PAPER_METHODS)
def test_every_method_learns_the_toy_task(key):
    images, labels = toy_batch(128, seed=1)
    test_images, test_labels = toy_batch(64, seed=2)
    model = toy_model()
    method = make(key)
    method.batches_per_epoch = 60
    trained = method.prepare(model, images)
    opt = torch.optim.Adam(model.parameters(), lr=float(method.hparams.get("lr", 1e-2)))
    for step in range(60):
        method.batch = step
        trained.train()
        opt.zero_grad()
        method.loss(trained, images, labels).loss.backward()
        method.after_backward(model)
        opt.step()
    predictions = method.predict(model, test_images)
    accuracy = (predictions == test_labels).float().mean().item()
    assert accuracy >= 0.9, f"{key}: {accuracy:.2f} (chance 0.25)"


@pytest.mark.parametrize("key", ["pgdt", "trades", "mart"])
def test_adversarial_inputs_lie_in_the_box_and_raise_the_loss(key):
    images, labels = toy_batch(64)
    model = toy_model()
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(30):  # a model with a non-trivial loss surface
        opt.zero_grad()
        F.cross_entropy(model(images), labels).backward()
        opt.step()
    method = make(key)
    method.prepare(model, images)
    adv = method.adversarial(model, images, labels)
    assert (adv - images).abs().max() <= 0.1 + 1e-6
    assert adv.min() >= 0 and adv.max() <= 1
    with torch.no_grad():
        if key == "trades":  # TRADES' attack raises the KL divergence from the clean prediction
            p = F.softmax(model(images), 1)
            kl = lambda x: F.kl_div(F.log_softmax(model(x), 1), p, reduction="batchmean")
            assert kl(adv) > kl(images) + 1e-4
        else:
            assert F.cross_entropy(model(adv), labels) > F.cross_entropy(model(images), labels)


def test_ibp_bounds_contain_the_margins_of_points_in_the_box():
    from bench.models.lirpa import margin_matrix

    info = DATASETS["mnist"]
    torch.manual_seed(0)
    model = create_model("cnn7", info)
    images, labels = torch.rand(4, 1, 28, 28), torch.tensor([0, 3, 5, 9])
    method = make("ibp", info=info)
    bounded = method.prepare(model, images)
    bounded.eval()
    model.eval()
    eps = 0.05
    _, lb = method.bounds(images, labels, eps)
    C = margin_matrix(labels, 10)
    with torch.no_grad():
        for _ in range(20):
            t = (images + (torch.rand_like(images) * 2 - 1) * eps).clamp(0, 1)
            margins = torch.einsum("nkc,nc->nk", C, model(t))
            assert torch.all(margins >= lb - 1e-4)


def test_ibp_eps_ramps_from_zero_to_eps_and_is_a_function_of_the_step():
    method = make("ibp", eps=0.4, ramp_start=1, ramp_epochs=2)
    method.batches_per_epoch = 10
    eps = []
    for epoch in range(3):
        for batch in range(10):
            method.epoch, method.batch = epoch, batch
            eps.append(method.current_eps())
    assert eps[0] == 0.0 and eps[-1] == pytest.approx(0.4)
    assert all(b >= a for a, b in zip(eps, eps[1:]))
    method.epoch, method.batch = 1, 4
    assert method.current_eps() == eps[14]  # resumable: same step, same eps


def test_ibp_ramp_shorter_than_four_batches_is_linear():
    method = make("ibp", eps=0.4, ramp_start=1, ramp_epochs=1)
    method.batches_per_epoch = 2
    eps = []
    for epoch in range(2):
        for batch in range(2):
            method.epoch, method.batch = epoch, batch
            eps.append(method.current_eps())
    assert eps == pytest.approx([0.0, 0.2, 0.4, 0.4])


def test_ours_with_lambda_zero_is_da_on_the_same_samples():
    images, labels = toy_batch(16)
    model = toy_model()
    ours = make("ours", seed=5, lam=0.0).loss(model, images, labels)
    da = make("da", seed=5).loss(model, images, labels)
    assert torch.allclose(ours.loss, da.loss, atol=1e-6)
    assert ours.terms["mean"] == pytest.approx(da.loss.item(), abs=1e-6)


def test_ours_std_term_is_zero_with_finite_gradient_when_samples_agree():
    images, labels = toy_batch(8)
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 4))
    nn.init.zeros_(model[1].weight)  # the output ignores the input: all n losses are equal
    out = make("ours", lam=1.0).loss(model, images, labels)
    assert out.terms["std"] == 0.0
    out.loss.backward()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters())


def test_ours_std_is_the_unbiased_standard_deviation():
    from methods.ours import safe_std

    x = torch.tensor([[1.0, 2.0, 4.0, 7.0]])
    assert safe_std(x).item() == pytest.approx(torch.tensor([1.0, 2.0, 4.0, 7.0]).std().item())


@pytest.mark.parametrize("beta,M", [(0.5, 20), (0.25, 8), (0.1, 10)])
def test_prl_loss_is_cvar_by_sorting(beta, M):
    images, labels = toy_batch(12)
    model = toy_model()
    method = make("prl", seed=3, n_samples=M, beta=beta, include_clean=False)  # the draws alone
    out = method.loss(model, images, labels)
    # the same draws, sorted: CVaR_beta is the mean of the worst beta·M losses
    samples = make("prl", seed=3).vicinity.flat(images, M, torch.Generator().manual_seed(3))
    losses = F.cross_entropy(model(samples), labels.repeat_interleave(M), reduction="none").view(12, M)
    k = round(beta * M)
    cvar = losses.sort(1, descending=True).values[:, :k].mean(1).mean()
    assert out.loss.item() == pytest.approx(cvar.item(), rel=1e-5)


def test_prl_gradient_is_the_authors_prl_step_at_51_losses():
    """The authors' prl_step as it was meant (a threshold per image): a detached
    torch.quantile(loss, 0.95) (linear interpolation) and mean relu(loss - t) / 0.05. At M = 51
    our 48th order statistic gives its gradient exactly; the exact CVaR minimiser (the 49th) would
    not (methods/prl.py)."""
    images, labels = toy_batch(6)
    model = toy_model()
    method = make("prl", seed=3)  # beta 0.05; 50 draws passed in below and the clean input: 51 losses
    samples = method.vicinity.flat(images, 50, torch.Generator().manual_seed(3)).view(6, 50, *images.shape[1:])

    def grad(loss_of):
        model.zero_grad()
        loss_of().backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    def authors(order=None):
        x = torch.cat([images.unsqueeze(1), samples], 1).flatten(0, 1)
        losses = F.cross_entropy(model(x), labels.repeat_interleave(51), reduction="none").view(6, 51)
        t = (torch.quantile(losses.detach(), 0.95, dim=1) if order is None
             else losses.detach().sort(1).values[:, order - 1])
        return (F.relu(losses - t.unsqueeze(1)).mean(1) / 0.05).mean()

    ours = grad(lambda: method.image_losses(model, images, labels, samples, 6).losses.mean())
    assert torch.allclose(ours, grad(authors), rtol=1e-5, atol=1e-7)
    assert not torch.allclose(ours, grad(lambda: authors(order=49)), rtol=1e-3, atol=1e-5)


def test_prl_iterative_threshold_upper_bounds_cvar():
    images, labels = toy_batch(12)
    model = toy_model()
    exact = make("prl", seed=3).loss(model, images, labels).loss
    iterative = make("prl", seed=3, t_steps=5).loss(model, images, labels).loss
    assert iterative >= exact - 1e-6  # Rockafellar–Uryasev: any t gives at least the minimum


def test_vote_prediction_is_the_majority_over_the_vicinity():
    images, labels = toy_batch(8)
    model = toy_model()
    method = make("ours", vote_samples=201)
    votes = model(method.vicinity.flat(images, 201, torch.Generator().manual_seed(0))).argmax(1).view(8, 201)
    expected = torch.mode(votes, 1).values
    assert torch.equal(method.predict(model, images), expected)
