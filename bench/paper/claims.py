"""The paper's claims, each one declarative entry, and the verdict a run gives each.

A :class:`Claim` names what the paper asserts of two methods on one metric: ``ours`` above
another method (``kind="above"``: the difference ours − other is positive), ``ours`` within a
margin of another (``kind="within"``: the drop other − ours is below ``margin`` points), or
``ours`` training faster than another (``kind="faster"``: the ratio of their training times,
other / ours, above 1; Table 4). It names
the table of the benchmark whose per-input outcomes decide it (so that both methods are scored
on the same inputs by the same rule), the paper's table whose numbers give the paper's own
effect, and where the paper says it.

:func:`verdict` turns the paired outcomes of one run into a verdict:

- the effect (points) and its 95 % interval: with one training seed, from exact intervals of
  the discordant inputs' share and split (:func:`bench.stats.paired_difference_interval`); with
  several, an interval that counts the inputs' and the seeds' sampling together
  (:func:`bench.stats.paired_across_seeds`);
- the test and its p-value (McNemar's exact test; with several seeds, the exact sign test over
  inputs of the seed-averaged differences);
- the minimum effect this run could detect with 80 % power at α = 0.05
  (:func:`bench.stats.detectable_difference`);
- ``supported`` (the interval lies on the paper's side: above 0 for "above", below the margin
  for "within"), ``contradicted`` (the interval excludes the paper's direction, or, on a dataset
  the paper reports, the paper's own effect size; for "within", the drop is shown larger than
  the margin) or ``not decided``.

A claim on training time (:func:`timing_verdict`) reads each model's wall time per epoch: the
effect is the ratio other / ours of the two methods' geometric means over their seeds, with a
Welch t interval (:func:`bench.stats.time_ratio_across_seeds`); one seed gives a ratio and no
interval, so no verdict. A ratio of times depends on the machine and the implementation, and no
run has the paper's (a 2080 Ti and the authors' code): the paper's ratio is shown, never used to
contradict; only the direction is judged.

Claims on attacks compare only rows of one inference rule and attack target: where the two
methods are scored differently (a vote against an argmax), the verdict is ``not comparable``.
The registry's style is the one of methods, tables and job kinds (:func:`register_claim`,
:func:`list_claims`, :func:`get_claim`).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from bench.registry import Registry
from bench.stats import (
    LEVEL,
    detectable_difference,
    mcnemar_exact,
    paired_across_seeds,
    paired_difference_interval,
    time_ratio_across_seeds,
)

__all__ = ["CLAIMS", "Claim", "get_claim", "list_claims", "register_claim", "timing_verdict", "verdict"]


@dataclass(frozen=True)
class Claim:
    """One claim of the paper about ``method`` against ``other`` on ``metric`` of ``table``."""

    key: str
    statement: str
    source: str
    table: str  # the benchmark's table whose job outputs hold the per-input outcomes
    metric: str
    other: str
    method: str = "ours"
    kind: str = "above"  # "above": method − other > 0; "within": other − method < margin; "faster": other/method > 1
    margin: float | None = None  # points, for "within"
    paper_table: int | None = None  # the paper's table with both methods' numbers: its effect size
    settings: dict[str, Any] = field(default_factory=dict)  # a setting of the table (a transform, say)
    #: for the ablation (Figure 2): the ablated hyperparameter and its two values, the method's
    #: model at the first against its model at the second (``method`` = ``other``)
    ablated: tuple[str, float, float] | None = None


CLAIMS: Registry[Claim] = Registry("claim")


def register_claim(claim: Claim) -> Claim:
    if claim.kind not in ("above", "within", "faster") or (claim.kind == "within") != (claim.margin is not None):
        raise ValueError(f"claim '{claim.key}': kind 'above' or 'faster', or 'within' with a margin")
    return CLAIMS.add(claim.key, claim)


def list_claims() -> list[str]:
    return list(CLAIMS)


def get_claim(key: str) -> Claim:
    return CLAIMS[key]


def verdict(claim: Claim, method: dict[int, np.ndarray], other: dict[int, np.ndarray],
            paper_effect: float | None = None, level: float = LEVEL) -> dict[str, Any]:
    """The verdict of ``claim`` from per-input outcomes by seed (``method[s]``, ``other[s]``:
    the two methods' models of seed ``s`` on the same inputs); ``paper_effect``: the paper's
    difference method − other (points) on this dataset, or None where the paper does not report
    it (then only the direction is judged)."""
    seeds = sorted(set(method) & set(other))
    if not seeds:
        raise ValueError(f"claim '{claim.key}': the two methods share no seed")
    if len(seeds) == 1:
        s = seeds[0]
        n = len(method[s])
        test = mcnemar_exact(method[s], other[s])
        effect = 100.0 * (test["a_only"] - test["b_only"]) / n
        low, high = paired_difference_interval(test["a_only"], test["b_only"], n, level)
        p, how = test["p"], "McNemar exact (one seed); interval: exact for the discordant share and its split"
        discordant = test["a_only"] + test["b_only"]  # none: no estimate of the discordance, nothing to plan with
        mde = detectable_difference(discordant / n, n) if discordant else float("nan")
    else:
        test = paired_across_seeds({s: method[s] for s in seeds}, {s: other[s] for s in seeds}, level)
        effect, low, high, p = test["difference"], test["low"], test["high"], test["p_inputs"]
        how = (f"exact sign test over inputs ({len(seeds)} seeds averaged); interval over inputs and seeds "
               f"(limited by {test['limited_by'] or 'neither'})")
        mde = (detectable_difference(None, None, seeds=len(seeds), se=test["se"], df=test["df"]) if test["se"]
               else float("nan"))
    if claim.kind == "within":  # the drop other − method, against the margin
        effect, low, high = -effect, -high, -low
        decided = "supported" if high < claim.margin else "contradicted" if low > claim.margin else "not decided"
        why = (f"the drop {effect:+.2f} [{low:+.2f}, {high:+.2f}] against the margin {claim.margin:g}")
    else:
        if high < 0:
            decided, why = "contradicted", "the interval excludes the paper's direction"
        elif paper_effect is not None and paper_effect > 0 and high < paper_effect:
            decided, why = "contradicted", f"the interval excludes the paper's effect ({paper_effect:+.2f})"
        elif low > 0:
            decided, why = "supported", "the interval lies above 0"
        else:
            decided, why = "not decided", "the interval contains 0"
    direction = "supported" if low > 0 else "contradicted" if high < 0 else "not decided"
    if claim.kind == "within":
        direction = "supported" if high < claim.margin else "contradicted" if low > claim.margin else "not decided"
    return {"verdict": decided, "direction": direction, "why": why, "effect": effect, "ci_low": low, "ci_high": high, "p_value": p,
            "test": how, "detectable": mde, "seeds": len(seeds), "inputs": sum(len(method[s]) for s in seeds),
            "unit": "points"}


def timing_verdict(claim: Claim, method: dict[int, float], other: dict[int, float],
                   level: float = LEVEL) -> dict[str, Any]:
    """The verdict of a ``faster`` claim from each seed's training wall time per epoch (seconds)
    of the two methods' models: the ratio other / method (:func:`bench.stats.time_ratio_across_seeds`).
    ``supported``: the interval lies above 1; ``contradicted``: below 1; ``not decided`` with
    fewer than two seeds of either method (no interval) or an interval around 1. The direction
    only: the paper's ratio was measured on another machine with another implementation."""
    r = time_ratio_across_seeds(method, other, level)
    low, high = r["low"], r["high"]
    if r["seeds"] < 2:
        decided, why = "not decided", "fewer than two training seeds: one timing per model gives no interval"
    elif high < 1:
        decided, why = "contradicted", f"{claim.method} trains slower: the interval lies below 1"
    elif low > 1:
        decided, why = "supported", "the interval lies above 1"
    else:
        decided, why = "not decided", "the interval contains 1"
    return {"verdict": decided, "direction": decided, "why": why, "effect": r["ratio"], "ci_low": low, "ci_high": high,
            "p_value": r["p"], "test": f"Welch t-test of the mean log time per epoch over {r['seeds']} or more seeds "
                                      "each; ratio of geometric means (Fleming & Wallace 1986)",
            "detectable": r["detectable"], "seeds": r["seeds"], "inputs": float("nan"), "unit": "×"}


# --- the claims --------------------------------------------------------------------------------------

for _other in ("da", "prl", "erm", "pgdt", "trades", "mart", "rs", "ibp"):
    register_claim(Claim(
        f"table1_cra_above_{_other}", f"ours has a higher certified robust accuracy than {_other} (L∞)",
        "Section 5, RQ1: 'our method has the highest certified robust accuracy on all four datasets'; Table 1",
        "table1", "certified_robust_accuracy", _other, paper_table=1))
    register_claim(Claim(
        f"table3_autoattack_above_{_other}", f"ours defends against AutoAttack better than {_other}",
        "Section 5, RQ2: 'consistently achieves a higher defence success rate than any other approach'; Table 3",
        "table3", "defence_success_rate", _other, paper_table=3))
# Figure 2 (Section 5, RQ4): λ near 1 best, λ near 0 less robust, a large λ less accurate and less
# defended. Judged where the run's ablation has both values (the default config's [0, 1, 5]).
register_claim(Claim(
    "figure2_cra_lam1_above_lam0", "ours at λ = 1 has a higher certified robust accuracy than at λ = 0",
    "Section 5, RQ4: 'If λ is too small, i.e., close to 0, ... a drop in the certified robust rate and thus "
    "decreasing the certified robustness accuracy'; Figure 2", "ablation", "certified_robust_accuracy", "ours",
    ablated=("lam", 1.0, 0.0)))
register_claim(Claim(
    "figure2_accuracy_lam1_above_lam5", "ours at λ = 1 has a higher standard accuracy than at λ = 5",
    "Section 5, RQ4: 'a large value of λ ... can lead to a decrease in standard accuracy'; Figure 2",
    "ablation", "standard_accuracy", "ours", ablated=("lam", 1.0, 5.0)))
register_claim(Claim(
    "figure2_autoattack_lam1_above_lam5", "ours at λ = 1 defends against AutoAttack better than at λ = 5",
    "Section 5, RQ4: 'the defence success rate also decreases by about a quarter when varying λ from 1 to 5'; "
    "Figure 2", "ablation", "defence_success_rate", "ours", ablated=("lam", 1.0, 5.0)))

# Table 4 (Section 5, RQ3): 'compared to ... IBP and PRL, our method demonstrates significantly higher
# training efficiency, being 21.93 and 2.89 times faster'. The paper's claim that ours costs about
# what DA and adversarial training cost gives no margin to test "similar" against: not registered.
for _other in ("prl", "ibp"):
    register_claim(Claim(
        f"table4_trains_faster_than_{_other}", f"ours trains faster than {_other}",
        "Section 5, RQ3: 'compared to methods designed to certify robustness, i.e., IBP and PRL, our method "
        "demonstrates significantly higher training efficiency, being 21.93 and 2.89 times faster'; Table 4",
        "table4", "train_seconds", _other, kind="faster", paper_table=4))

# The same claim asked like with like: DA scored by the vote ours predicts by (config ``vote: [da]``,
# bench.training.voting); judged only in runs that have ``da_vote``. The paper has no such row.
register_claim(Claim(
    "table3_autoattack_above_da_vote", "ours defends against AutoAttack better than DA, both predicting by the vote",
    "Section 5, RQ2 and Table 3, with DA scored by the same vote as ours (the benchmark's like-with-like row)",
    "table3", "defence_success_rate", "da_vote"))
# And under the attack that sees the vote: AutoAttack's rand version with EOT on each voting
# method's own vote (config ``adaptive:``; bench.evaluation.adaptive). The paper has no such row
# (its Table 3 attacks the network), so no effect size of its own to test against.
for _other in ("da_vote", "rs"):
    register_claim(Claim(
        f"table3_adaptive_autoattack_above_{_other}",
        f"ours defends against AutoAttack on the vote (adaptive, EOT) better than {_other}",
        "Section 5, RQ2 and Table 3, with the attack crafted on each method's vote itself (Athalye et al. 2018; "
        "Croce & Hein 2020, AutoAttack's rand version): the benchmark's adaptive row",
        "table3_adaptive", "defence_success_rate", _other))
register_claim(Claim(
    "table1_accuracy_within_1_of_erm", "ours' standard accuracy is less than 1 point below ERM's",
    "Section 5, answer to RQ1: 'has a <1% accuracy drop compared to standard training'; Table 1",
    "table1", "standard_accuracy", "erm", kind="within", margin=1.0, paper_table=1))
for _transform in ("translate", "rotate", "affine", "scale"):
    register_claim(Claim(
        f"table2_{_transform}_above_da", f"ours has a higher certified robust accuracy than DA under {_transform}",
        "Section 5, RQ1 'More than L^p': 'consistently achieves the highest certified robust accuracy across all "
        "transformations', DA second; Table 2", "table2", "certified_robust_accuracy", "da",
        settings={"vicinity": _transform}))
register_claim(Claim(
    "table10_cra_above_da", "ours has a higher certified robust accuracy than DA in the smaller vicinity",
    "Appendix, Table 10 (the smaller L∞ vicinity)", "table10", "certified_robust_accuracy", "da", paper_table=10))
