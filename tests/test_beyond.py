"""Issue 5's evaluations on tiny models, each checked against a known answer."""
from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn as nn
from conftest import TINY_INFO as INFO
from conftest import Constant
from scipy.stats import beta, norm

from bench.certification.vicinity import parse_vicinity
from bench.evaluation.adaptive import VoteModel, make_adaptive_attack
from bench.evaluation.attacks import AttackBudget
from bench.evaluation.audit import audit
from bench.evaluation.masking import check_attack, flags
from bench.evaluation.native import bound_certify, certified_accuracy, smoothing_certify
from bench.training import get_method


class Threshold(nn.Module):
    """Class 1 where the first pixel exceeds ``t``, else class 0 (a linear classifier of one pixel)."""

    def __init__(self, t: float):
        super().__init__()
        self.t = t

    def forward(self, x):
        z = 50.0 * (x.flatten(1)[:, :1] - self.t)
        return torch.cat([-z, z], 1)


def ours(n_samples: int = 4) -> object:
    cls = get_method("ours")
    hparams = cls.resolve_hparams(INFO, {"vote_samples": n_samples})
    return cls(hparams, INFO, parse_vicinity("linf:0.3"), torch.Generator().manual_seed(0))


def test_vote_model_is_the_log_mean_softmax_over_vote_inputs():
    model = nn.Sequential(nn.Flatten(), nn.Linear(64, 3))
    method = ours()
    x = torch.rand(2, 1, 8, 8, requires_grad=True)
    out = VoteModel(model, method, n=6)(x)
    assert out.shape == (2, 3) and torch.allclose(out.exp().sum(1), torch.ones(2))
    out[:, 0].sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0  # differentiable through the vicinity draws


def test_a_non_voting_method_has_no_vote_to_attack():
    cls = get_method("erm")
    erm = cls(cls.resolve_hparams(INFO), INFO, parse_vicinity("linf:0.3"), torch.Generator())
    with pytest.raises(ValueError, match="does not predict by a vote"):
        VoteModel(nn.Identity(), erm, 4)


@pytest.mark.parametrize("name", ["EOTPGD", "AutoAttack", "PGD"])
def test_eot_attacks_on_the_vote_of_a_constant_classifier_find_nothing(name):
    method, model = ours(), Constant(cls=1)
    x, y = torch.rand(4, 1, 8, 8), torch.ones(4, dtype=torch.long)
    attack, settings = make_adaptive_attack(name, model, method, AttackBudget(linf=0.3, num_classes=3),
                                            vote_samples=4, eot_iter=2, steps=3)
    adv = attack(x, y)
    assert (adv - x).abs().max() <= 0.3 + 1e-6
    assert (method.predict(model, adv) == y).all()
    assert settings["target"].startswith("vote")


def test_eotpgd_on_the_vote_breaks_a_threshold_classifier_within_reach():
    """The vote of a one-pixel threshold at 0.5, inputs at 0.3: eps 0.3 reaches past it."""
    method, model = ours(25), Threshold(0.5)  # the vote over 25 draws; the wrapper uses 8
    x = torch.full((3, 1, 8, 8), 0.3)
    y = torch.zeros(3, dtype=torch.long)
    assert (method.predict(model, x) == y).all()
    attack, _ = make_adaptive_attack("EOTPGD", model, method, AttackBudget(linf=0.3, num_classes=2),
                                     vote_samples=8, eot_iter=2, steps=20)
    assert (method.predict(model, attack(x, y)) != y).all()


def test_audit_of_a_classifier_with_a_known_rate_finds_that_rate():
    gen = torch.Generator().manual_seed(0)
    rate = 0.95  # class 0 on 95% of the vicinity, whatever the input

    def predict(images):
        return (torch.rand(len(images), generator=gen) > rate).long()

    x = torch.rand(3, 1, 4, 4)
    frame = audit(predict, x, torch.zeros(3, dtype=torch.long), parse_vicinity("linf:0.1"), kappa=0.01,
                  samples=20_000, confidence=0.999)
    assert ((frame["ci_low"] <= rate) & (rate <= frame["ci_high"])).all()
    assert (frame["rate"] - rate).abs().max() < 0.01
    assert frame["wrong"].all()  # 95% is far below 1 − κ = 99%
    right = audit(predict, x, torch.zeros(3, dtype=torch.long), parse_vicinity("linf:0.1"), kappa=0.1,
                  samples=20_000)
    assert not right["wrong"].any()  # 95% ≥ 1 − κ = 90%


def test_certify_of_a_constant_classifier_gives_the_radius_computed_by_hand():
    sigma, n, alpha = 0.25, 1000, 0.001
    frame = smoothing_certify(Constant(cls=2), torch.rand(2, 1, 4, 4), sigma, 3, n0=10, n=n, alpha=alpha)
    p_lower = alpha ** (1 / n)  # Clopper–Pearson lower bound with all n samples in class c_A
    assert frame["prediction"].tolist() == [2, 2]
    assert frame["p_a_lower"].tolist() == pytest.approx([p_lower] * 2, rel=1e-9)
    assert frame["radius"].tolist() == pytest.approx([sigma * norm.ppf(p_lower)] * 2, rel=1e-9)


def test_certify_of_a_linear_classifier_finds_its_margin():
    """For a one-pixel threshold t and pixel x < t, p_A = Φ((t − x)/σ): the radius is t − x."""
    sigma, t, n, alpha = 0.5, 0.6, 20_000, 0.001
    x = torch.zeros(1, 1, 4, 4)
    x[..., 0, 0] = 0.2
    frame = smoothing_certify(Threshold(t), x, sigma, 2, n0=100, n=n, alpha=alpha, seed=1)
    k = round(norm.cdf((t - 0.2) / sigma) * n)
    assert frame["prediction"].item() == 0
    expected = sigma * norm.ppf(beta.ppf(alpha, k, n - k + 1))
    assert frame["radius"].item() == pytest.approx(expected, abs=0.02)
    assert frame["radius"].item() < t - 0.2  # a lower bound of the true margin


def test_certify_abstains_on_a_coin():
    frame = smoothing_certify(Threshold(0.5), torch.full((1, 1, 4, 4), 0.5), 0.25, 2, n0=50, n=500)
    assert frame["prediction"].item() == -1 and frame["radius"].item() == 0.0
    acc = certified_accuracy(frame, torch.tensor([0]), [0.0])
    assert acc == {0.0: 0.0}


def test_bound_certificates_of_a_margin_that_no_box_can_flip():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    with torch.no_grad():
        model[1].weight.mul_(0.01)
        model[1].bias.copy_(torch.tensor([5.0, 0.0, 0.0]))
    x, y = torch.rand(4, 1, 4, 4), torch.zeros(4, dtype=torch.long)
    for method in ("IBP", "CROWN-IBP"):
        assert bound_certify(model, x, y, 0.1, method)["certified_robust_accuracy"] == 100.0
        assert bound_certify(model, x, torch.ones(4, dtype=torch.long), 0.1, method)["certified_robust_accuracy"] == 0.0


def _correct(n: int, first: int) -> np.ndarray:
    """Per-input outcomes of an attack on n inputs: the first ``first`` inputs still correct."""
    return np.arange(n) < first


def test_masking_flags_raise_on_masked_gradients_and_not_on_a_clean_profile():
    n = 40  # percent of 40 inputs: 16 = 40 %
    clean = {"FGSM": _correct(n, 16), "PGD": _correct(n, 8), "PGDMoreSteps": _correct(n, 8),
             "PGDUnbounded": _correct(n, 0), "Square": _correct(n, 12), "TransferFromERM": _correct(n, 24)}
    assert not any(f["flag"] for f in flags(clean))
    masked = {"FGSM": _correct(n, 8), "PGD": _correct(n, 24), "PGDMoreSteps": _correct(n, 32),
              "PGDUnbounded": _correct(n, 20), "Square": _correct(n, 4), "TransferFromERM": _correct(n, 12)}
    raised = {f["check"] for f in flags(masked) if f["flag"]}
    assert raised == {"single_step_stronger", "more_steps_help", "unbounded_not_zero", "black_box_stronger",
                      "transfer_stronger"}
    pgd_fgsm = next(f for f in flags(masked) if f["check"] == "single_step_stronger")
    assert (pgd_fgsm["only_suspicious"], pgd_fgsm["only_reference"]) == (16, 0)
    assert pgd_fgsm["p"] == pytest.approx(0.5 ** 16)
    no_transfer = {f["check"]: f["flag"] for f in flags({k: v for k, v in clean.items() if k != "TransferFromERM"})}
    assert no_transfer["transfer_stronger"] is None


def test_masking_flags_ignore_a_difference_of_one_or_two_images():
    """On 10 images one image is 10 points: no flag unless the paired difference is significant."""
    n = 10
    noisy = {"FGSM": _correct(n, 3), "PGD": _correct(n, 5), "PGDMoreSteps": _correct(n, 5),
             "PGDUnbounded": _correct(n, 0), "Square": _correct(n, 3), "TransferFromERM": _correct(n, 3)}
    checks = {f["check"]: f for f in flags(noisy)}
    assert checks["black_box_stronger"]["difference"] == 20.0 and checks["black_box_stronger"]["flag"] is False
    assert checks["single_step_stronger"]["flag"] is False and checks["single_step_stronger"]["p"] == 0.25


def test_an_unbounded_attack_drives_a_real_classifier_to_zero():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Flatten(), nn.Linear(16, 3)).eval()
    x = torch.rand(8, 1, 4, 4)
    y = model(x).argmax(1)
    attack, settings = check_attack("PGDUnbounded", model, AttackBudget(linf=0.1, num_classes=3), unbounded_steps=50)
    assert settings["linf"] == 1.0
    assert (model(attack(x, y)).argmax(1) != y).all()
    assert math.isclose(check_attack("PGDMoreSteps", model, AttackBudget(linf=0.1), more_steps=7)[1]["steps"], 7)



@pytest.mark.parametrize("name,eot", [("PGD", False), ("APGD", True)])
def test_the_adaptive_block_s_steps_and_eot_draws_reach_every_iterative_attack_on_the_vote(name, eot):
    method, model = ours(), Constant(cls=1)
    attack, settings = make_adaptive_attack(name, model, method, AttackBudget(linf=0.3, num_classes=3),
                                            vote_samples=4, eot_iter=3, steps=7)
    assert attack.steps == 7 and settings["steps"] == 7
    assert (getattr(attack, "eot_iter", None) == 3) == eot and settings.get("eot_iter") == (3 if eot else None)
