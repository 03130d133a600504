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

A flag is raised only when the suspicious difference is significant on the paired test inputs
(McNemar's exact one-sided test, p < 0.05): with a few dozen inputs one input is several
points, and a fixed tolerance in points flags noise. The counts behind each test are kept.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING

import numpy as np
import torch.nn as nn

from bench.stats import mcnemar_exact

if TYPE_CHECKING:
    from bench.evaluation.attacks import AttackBudget

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
    import torchattacks  # here, not at import: the Snakefile reads this module's constants

    if name == "PGDMoreSteps":
        return (torchattacks.PGD(model, eps=budget.linf, alpha=budget.step(2 / 255), steps=more_steps),
                {"linf": budget.linf, "steps": more_steps})
    if name == "PGDUnbounded":
        # eps = 1 lets every pixel reach any value in [0,1]; 0.05 per step crosses [0,1] in 20 steps
        return (torchattacks.PGD(model, eps=1.0, alpha=0.05, steps=unbounded_steps),
                {"linf": 1.0, "steps": unbounded_steps})
    raise ValueError(f"unknown check attack '{name}'; known: {', '.join(CHECK_ATTACKS)}")


def flags(correct: dict[str, np.ndarray], level: float = 0.95) -> list[dict]:
    """The checks for one model from per-input outcomes (True: the input is still classified
    correctly after the attack) by attack name, all on the same test inputs in the same order.

    A check compares two attacks on the paired inputs and raises its flag only when the
    suspicious direction is significant: McNemar's exact one-sided test (:func:`bench.stats.mcnemar_exact`)
    at 1−``level``; ``unbounded_not_zero`` flags any input that survives eps = 1, where the
    defence success rate must be exactly 0. A check whose attacks are missing (``transfer_stronger``
    for ``erm`` itself) gets ``flag = None``. Returns one dict per check with the compared rates
    (percent), their difference, the discordant counts and the p-value.
    """
    def rate(name: str) -> float:
        return 100.0 * float(correct[name].mean()) if name in correct else math.nan

    # the stronger of the white-box PGD runs (fewer inputs left correct) is the one Square must not beat
    white = min(("PGD", "PGDMoreSteps"), key=lambda a: rate(a) if a in correct else math.inf)
    pairs = [
        ("single_step_stronger", "PGD − FGSM", "PGD", "FGSM"),
        ("more_steps_help", "PGD(more steps) − PGD", "PGDMoreSteps", "PGD"),
        ("black_box_stronger", "min white-box PGD − Square", white, "Square"),
        ("transfer_stronger", f"PGD − transfer from {TRANSFER_SOURCE}", "PGD", TRANSFER_ATTACK),
    ]
    out = []
    for name, what, suspicious, reference in pairs:
        row = {"check": name, "compares": what, "rate": rate(suspicious), "reference_rate": rate(reference),
               "difference": rate(suspicious) - rate(reference), "only_suspicious": None, "only_reference": None,
               "p": math.nan, "flag": None}
        if suspicious in correct and reference in correct:
            # "suspicious" leaves inputs correct that "reference" breaks: more than chance?
            test = mcnemar_exact(correct[suspicious], correct[reference], alternative="greater")
            row.update(only_suspicious=test["a_only"], only_reference=test["b_only"], p=test["p"],
                       flag=bool(test["p"] < 1 - level))
        out.append(row)
    survivors = int(correct["PGDUnbounded"].sum()) if "PGDUnbounded" in correct else None
    out.insert(2, {"check": "unbounded_not_zero", "compares": "PGD(eps = 1)", "rate": rate("PGDUnbounded"),
                   "reference_rate": 0.0, "difference": rate("PGDUnbounded"), "only_suspicious": survivors,
                   "only_reference": 0 if survivors is not None else None, "p": math.nan,
                   "flag": None if survivors is None else survivors > 0})
    for row in out:
        row["inputs"] = len(next(iter(correct.values()))) if correct else 0
    return out
