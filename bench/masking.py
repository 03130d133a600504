"""Gradient-masking checks (Carlini et al. 2019, "On evaluating adversarial robustness", §5).

Each check compares the defence success rates (percent of inputs still classified correctly by
the method's own prediction) of attacks run by the DAG's ``attack`` and ``transfer`` jobs on the
same test inputs, and raises a flag when a sign of masked gradients appears:

==========================  ======================================================================
``single_step_stronger``    iterative PGD leaves more inputs correct than single-step FGSM
``more_steps_help``         PGD with many more steps leaves more inputs correct than PGD
``unbounded_not_zero``      PGD with eps = 1 (any image in [0,1]) leaves inputs correct
``black_box_stronger``      the black-box Square attack beats the white-box PGD attacks
``transfer_stronger``       PGD examples crafted on ``erm``'s model beat white-box PGD
==========================  ======================================================================

A flag is raised when the suspicious difference exceeds ``tolerance`` percentage points (with a
few dozen test inputs one input is several points, so the default tolerance is not zero).
"""
from __future__ import annotations

import math

import torch.nn as nn
import torchattacks

from bench.attacks import AttackBudget

__all__ = ["CHECK_ATTACKS", "NEEDED", "TRANSFER_ATTACK", "TRANSFER_SOURCE", "check_attack", "flags"]

#: attacks the checks need, beyond Table 9 (run by the ``attack`` rule)
CHECK_ATTACKS = ("PGDMoreSteps", "PGDUnbounded")
#: the method whose model the transfer attack is crafted on, and the attack's result name
TRANSFER_SOURCE, TRANSFER_ATTACK = "erm", "TransferFromERM"
#: every attack result a model's checks read
NEEDED = ("FGSM", "PGD", *CHECK_ATTACKS, "Square", TRANSFER_ATTACK)


def check_attack(name: str, model: nn.Module, budget: AttackBudget, *, more_steps: int = 100,
                 unbounded_steps: int = 100) -> tuple[object, dict]:
    """The attacks only the checks use: PGD with ``more_steps`` steps, and PGD with eps = 1."""
    if name == "PGDMoreSteps":
        return (torchattacks.PGD(model, eps=budget.linf, alpha=budget.step(2 / 255), steps=more_steps),
                {"linf": budget.linf, "steps": more_steps})
    if name == "PGDUnbounded":
        # eps = 1 lets every pixel reach any value in [0,1]; 0.05 per step crosses [0,1] in 20 steps
        return (torchattacks.PGD(model, eps=1.0, alpha=0.05, steps=unbounded_steps),
                {"linf": 1.0, "steps": unbounded_steps})
    raise ValueError(f"unknown check attack '{name}'; known: {', '.join(CHECK_ATTACKS)}")


def flags(rates: dict[str, float], tolerance: float = 5.0) -> list[dict]:
    """The checks for one model from its defence success rates (percent) by attack name.

    A check whose attacks are missing (``transfer_stronger`` for ``erm`` itself) gets
    ``flag = None``. Returns one dict per check: name, the compared values, the flag.
    """
    def get(name: str) -> float:
        return rates.get(name, math.nan)

    white_box = min(get("PGD"), get("PGDMoreSteps"))
    checks = [
        ("single_step_stronger", "PGD − FGSM", get("PGD") - get("FGSM")),
        ("more_steps_help", "PGD(more steps) − PGD", get("PGDMoreSteps") - get("PGD")),
        ("unbounded_not_zero", "PGD(eps = 1)", get("PGDUnbounded")),
        ("black_box_stronger", "min white-box PGD − Square", white_box - get("Square")),
        ("transfer_stronger", f"PGD − transfer from {TRANSFER_SOURCE}", get("PGD") - get(TRANSFER_ATTACK)),
    ]
    return [{"check": name, "compares": what, "difference": value,
             "flag": None if math.isnan(value) else bool(value > tolerance), "tolerance": tolerance}
            for name, what, value in checks]
