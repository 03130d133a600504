"""Table 9's attacks and AutoAttack run on grayscale and RGB models and respect their budgets."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from bench.evaluation.attacks import ATTACKS, AttackBudget, autoattack, autoattack_settings, make_attack

LINF = {"TIFGSM", "MIFGSM", "DIFGSM", "VMIFGSM", "TPGD", "FGSM", "RFGSM", "BIM", "FAB", "UPGD", "FFGSM",
        "Jitter", "PGD", "EOTPGD", "APGD", "NIFGSM", "SINIFGSM", "VNIFGSM", "APGDT", "Square"}


def tiny(channels: int) -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Conv2d(channels, 4, 3, padding=1), nn.ReLU(), nn.Flatten(),
                         nn.Linear(4 * 8 * 8, 10)).eval()


def test_table_9_has_25_attacks():
    assert len(ATTACKS) == 25


@pytest.mark.parametrize("channels", [1, 3])
@pytest.mark.parametrize("name", list(ATTACKS))
def test_every_attack_runs_and_respects_its_budget(name, channels):
    model = tiny(channels)
    x = torch.rand(3, channels, 8, 8)
    y = torch.tensor([0, 1, 2])
    budget = AttackBudget(linf=0.1, channels=channels)
    adv = make_attack(name, model, budget)(x, y)
    assert adv.shape == x.shape and adv.min() >= 0 and adv.max() <= 1
    if name in LINF:
        assert (adv - x).abs().max() <= 0.1 + 1e-5
    if name == "PGDL2":
        assert (adv - x).flatten(1).norm(dim=1).max() <= budget.l2 + 1e-5


def test_autoattack_runs_with_the_recorded_steps():
    model = tiny(1)
    x, y = torch.rand(2, 1, 8, 8), torch.tensor([3, 4])
    budget = AttackBudget(linf=0.1)
    adv = autoattack(model, budget, steps=3, queries=10)(x, y)
    assert (adv - x).abs().max() <= 0.1 + 1e-5
    settings = autoattack_settings(budget, steps=3, queries=10)
    assert settings["apgd_ce_steps"] == settings["apgd_t_steps"] == settings["fab_t_steps"] == 3
    assert autoattack_settings(budget)["apgd_ce_steps"] == 100


def test_unknown_attack_lists_the_known():
    with pytest.raises(ValueError, match="unknown attack 'DeepFool'; known: TIFGSM"):
        make_attack("DeepFool", tiny(1), AttackBudget(linf=0.1))
