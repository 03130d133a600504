"""The attacks of the paper's Table 9 (torchattacks 3.5.1) and AutoAttack, by name.

Budgets follow the paper's footnote: L∞ attacks at the dataset's eps (8/255 on CIFAR, as in
Table 9; 0.3 on MNIST-shaped data), L2 attacks at 10/255, Gaussian noise with std 0.1; the
other parameters are torchattacks' defaults, with every L∞ step size scaled by eps/(8/255) so
that an attack takes the same number of steps to cross the ball at any eps.

AutoAttack (Croce & Hein 2020, Table 3) is built at the original protocol's strength:
torchattacks' ``AutoAttack`` runs its APGD, APGD-T and FAB components for 10 steps, the original
standard version for 100, so the four components are assembled here with ``steps`` set
explicitly (default 100) and Square with 5,000 queries; :func:`autoattack_settings` records them.
"""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch.nn as nn
import torchattacks

from bench.registry import Registry

__all__ = ["ATTACKS", "AttackBudget", "autoattack", "autoattack_settings", "make_attack"]

REFERENCE_EPS = 8 / 255  # the L∞ radius torchattacks' default step sizes are tuned for


@dataclass(frozen=True)
class AttackBudget:
    """Perturbation budgets in pixel units of [0,1] images."""

    linf: float
    l2: float = 10 / 255
    gaussian_std: float = 0.1
    num_classes: int = 10
    seed: int = 0
    channels: int = 3
    square_queries: int = 5000  # torchattacks' default and the original AutoAttack's

    def step(self, default: float) -> float:
        """A torchattacks default L∞ step size, scaled to this budget's eps."""
        return default * self.linf / REFERENCE_EPS


Builder = Callable[[nn.Module, AttackBudget], torchattacks.attack.Attack]

#: Table 9's rows in the paper's order ("No Attack" is the clean accuracy, not an attack).
ATTACKS: Registry[Builder] = Registry("attack")
for _name, _builder in {
    "TIFGSM": lambda m, b: torchattacks.TIFGSM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "MIFGSM": lambda m, b: torchattacks.MIFGSM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "DIFGSM": lambda m, b: torchattacks.DIFGSM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "VMIFGSM": lambda m, b: torchattacks.VMIFGSM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "TPGD": lambda m, b: torchattacks.TPGD(m, eps=b.linf, alpha=b.step(2 / 255)),
    "FGSM": lambda m, b: torchattacks.FGSM(m, eps=b.linf),
    "RFGSM": lambda m, b: torchattacks.RFGSM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "BIM": lambda m, b: torchattacks.BIM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "FAB": lambda m, b: torchattacks.FAB(m, eps=b.linf, n_classes=b.num_classes, seed=b.seed),
    "CW": lambda m, b: torchattacks.CW(m),
    "UPGD": lambda m, b: torchattacks.UPGD(m, eps=b.linf, alpha=b.step(2 / 255)),
    "FFGSM": lambda m, b: torchattacks.FFGSM(m, eps=b.linf, alpha=b.step(10 / 255)),
    "Jitter": lambda m, b: torchattacks.Jitter(m, eps=b.linf, alpha=b.step(2 / 255)),
    "PGD": lambda m, b: torchattacks.PGD(m, eps=b.linf, alpha=b.step(2 / 255)),
    "EOTPGD": lambda m, b: torchattacks.EOTPGD(m, eps=b.linf, alpha=b.step(2 / 255)),
    "APGD": lambda m, b: torchattacks.APGD(m, eps=b.linf, seed=b.seed),
    "NIFGSM": lambda m, b: torchattacks.NIFGSM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "SINIFGSM": lambda m, b: torchattacks.SINIFGSM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "VNIFGSM": lambda m, b: torchattacks.VNIFGSM(m, eps=b.linf, alpha=b.step(2 / 255)),
    "APGDT": lambda m, b: torchattacks.APGDT(m, eps=b.linf, n_classes=b.num_classes, seed=b.seed),
    "Square": lambda m, b: torchattacks.Square(m, eps=b.linf, n_queries=b.square_queries, seed=b.seed),
    "GN": lambda m, b: torchattacks.GN(m, std=b.gaussian_std),
    "OnePixel": lambda m, b: torchattacks.OnePixel(m),
    "Pixle": lambda m, b: torchattacks.Pixle(m),
    "PGDL2": lambda m, b: torchattacks.PGDL2(m, eps=b.l2, alpha=0.2 * b.l2),
}.items():
    ATTACKS.add(_name, _builder)
#: Table 9's labels for the keys above
LABELS = {"GN": "Add Gaussian Noise"}


#: attacks whose torchattacks 3.5.1 code assumes three channels (TIFGSM's kernel has groups=3)
RGB_ONLY = {"TIFGSM"}


class GrayAsRGB(nn.Module):
    """A grayscale model seen as an RGB one: it classifies the mean of the three channels."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, x):
        return self.model(x.mean(1, keepdim=True))


class OnGray:
    """Runs an RGB-only attack on grayscale images: the image is replicated to three channels,
    attacked through :class:`GrayAsRGB`, and averaged back. The mean of three perturbations in
    the eps-box (and in [0,1]) stays in it."""

    def __init__(self, attack):
        self.attack = attack

    def __call__(self, images, labels):
        return self.attack(images.repeat(1, 3, 1, 1), labels).mean(1, keepdim=True)


def make_attack(name: str, model: nn.Module, budget: AttackBudget):
    """The torchattacks attack ``name`` of Table 9 on ``model``; unknown names list the known."""
    builder = ATTACKS[name]
    if budget.channels == 1 and name in RGB_ONLY:
        return OnGray(builder(GrayAsRGB(model), budget))
    return builder(model, budget)


def autoattack_settings(budget: AttackBudget, steps: int = 100, queries: int = 5000) -> dict:
    """The AutoAttack configuration recorded beside Table 3."""
    return {"norm": "Linf", "eps": budget.linf, "apgd_ce_steps": steps, "apgd_t_steps": steps,
            "fab_t_steps": steps, "square_queries": queries, "n_classes": budget.num_classes,
            "seed": budget.seed}


def autoattack(model: nn.Module, budget: AttackBudget, steps: int = 100, queries: int = 5000):
    """AutoAttack's standard version (APGD-CE, APGD-T, FAB-T, Square) with explicit steps."""
    n, seed = budget.num_classes, budget.seed
    return torchattacks.MultiAttack([
        torchattacks.APGD(model, norm="Linf", eps=budget.linf, steps=steps, loss="ce", seed=seed),
        torchattacks.APGDT(model, norm="Linf", eps=budget.linf, steps=steps, n_classes=n, seed=seed),
        torchattacks.FAB(model, norm="Linf", eps=budget.linf, steps=steps, multi_targeted=True,
                         n_classes=n, seed=seed),
        torchattacks.Square(model, norm="Linf", eps=budget.linf, n_queries=queries, seed=seed),
    ])
