"""Adaptive attacks on a vote (issue 5, item 1): attack the prediction the method makes.

The paper attacks the plain network and then classifies the adversarial input by a vote over the
vicinity, a randomized prediction. Attacks aimed at a randomized prediction must attack its
expectation (EOT; Athalye, Carlini & Wagner 2018; Tramèr et al. 2020): :class:`VoteModel` is a
differentiable stand-in for the vote, the log of the mean softmax over ``n`` of the method's
vote inputs (vicinity draws for ``ours``, Gaussian copies for RS), and the attacks below run on it:

- :func:`eotpgd`: torchattacks' ``EOTPGD``, which averages the gradient over ``eot_iter`` calls of
  the (random) wrapper, so each step sees ``eot_iter·n`` draws;
- :func:`autoattack_rand`: AutoAttack's ``rand`` version for randomized defences (Croce & Hein
  2020: APGD-CE and APGD-DLR, one restart each, EOT over 20 draws in the original);
- any Table 9 attack by name, on the wrapper.

The adversarial inputs are then classified by the method's own vote, as in the paper protocol.

Under a memory budget (:mod:`bench.compute.memory`) the wrapper's N·n vote inputs go through the network
in chunks of whole images, each under ``torch.utils.checkpoint`` when the gradient is wanted, so
that the attack's backward holds one chunk's activations at a time (one more forward per chunk);
the output and its gradient are those of the unchunked wrapper up to float rounding.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
import torchattacks

from bench.compute.memory import map_in_chunks
from bench.evaluation.attacks import AttackBudget, make_attack
from bench.training import Method

__all__ = ["VoteModel", "autoattack_rand", "eotpgd", "make_adaptive_attack"]


class VoteModel(nn.Module):
    """log E[softmax(f(t))] over ``n`` vote inputs t of the method (N×K log-probabilities)."""

    def __init__(self, model: nn.Module, method: Method, n: int):
        super().__init__()
        if not method.vote:
            raise ValueError(f"method '{method.key}' does not predict by a vote; attack its network directly")
        self.model, self.method, self.n = model, method, int(n)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        inputs = self.method.vote_inputs(x, self.n)
        grad = torch.is_grad_enabled() and (inputs.requires_grad or
                                            any(p.requires_grad for p in self.model.parameters()))
        probs = map_in_chunks(self.mean_softmax, inputs, self.model, train=grad, group=self.n, checkpoint=grad)
        return probs.clamp_min(1e-12).log()

    def mean_softmax(self, inputs: torch.Tensor) -> torch.Tensor:
        """The mean softmax over each image's ``n`` consecutive vote inputs: (k·n)×… → k×K."""
        probs = F.softmax(self.model(inputs), dim=1)
        return probs.view(len(inputs) // self.n, self.n, -1).mean(1)


def eotpgd(model: nn.Module, budget: AttackBudget, steps: int = 10, eot_iter: int = 2):
    """L∞ PGD with EOT gradients (torchattacks ``EOTPGD``), torchattacks' step size scaled to eps."""
    return torchattacks.EOTPGD(model, eps=budget.linf, alpha=budget.step(2 / 255), steps=steps, eot_iter=eot_iter)


def autoattack_rand(model: nn.Module, budget: AttackBudget, steps: int = 100, eot_iter: int = 20):
    """AutoAttack's ``rand`` version: APGD-CE then APGD-DLR, EOT over ``eot_iter`` calls each."""
    common = dict(norm="Linf", eps=budget.linf, steps=steps, n_restarts=1, seed=budget.seed, eot_iter=eot_iter)
    return torchattacks.MultiAttack([torchattacks.APGD(model, loss="ce", **common),
                                     torchattacks.APGD(model, loss="dlr", **common)])


def make_adaptive_attack(name: str, model: nn.Module, method: Method, budget: AttackBudget, *,
                         vote_samples: int, eot_iter: int, steps: int) -> tuple[object, dict]:
    """Attack ``name`` (``AutoAttack``, ``EOTPGD`` or a Table 9 name) on the method's vote.

    Returns the attack and the settings recorded beside its result.
    """
    target = VoteModel(model, method, vote_samples).eval()
    settings = {"target": "vote (mean softmax)", "vote_samples": int(vote_samples), "linf": budget.linf}
    if name == "AutoAttack":
        return (autoattack_rand(target, budget, steps, eot_iter),
                {**settings, "version": "rand", "components": ["apgd-ce", "apgd-dlr"], "steps": steps,
                 "eot_iter": eot_iter})
    if name == "EOTPGD":
        return eotpgd(target, budget, steps, eot_iter), {**settings, "steps": steps, "eot_iter": eot_iter}
    attack = make_attack(name, target, budget)
    # the block's steps and EOT draws apply to every iterative attack on the vote (torchattacks
    # reads them from the attack's attributes when it runs), not only to EOTPGD
    from bench.evaluation.attacks import OnGray

    inner = attack.attack if isinstance(attack, OnGray) else attack  # OnGray wraps an RGB-only attack
    for attr, value in (("steps", steps), ("eot_iter", eot_iter)):
        if hasattr(inner, attr):
            setattr(inner, attr, int(value))
            settings[attr] = int(value)
    return attack, settings
