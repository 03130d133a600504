"""The known behaviours of the reference run (issue 11), checked on its per-input results.

Reads the job outputs of a finished ``config/reference.yaml`` run (``results/reference/``) and
writes ``reports/reference/known_behaviours.csv``: one row per behaviour that the literature
leads one to expect, with the measured rates (95 % Clopper–Pearson intervals), the paired exact
test where two methods are compared on the same inputs, and whether it holds:

1. ERM is near 0 % under AutoAttack at L∞ 0.1 (upper bound of its interval at most 15 %).
2. PGDT, TRADES and MART are far above ERM under AutoAttack.
3. IBP is a real classifier: standard accuracy above 10 % (chance) with its interval, predictions
   of several classes, and a κ = 0 certified robust accuracy whose interval excludes 0.
4. ``ours`` has a higher certified robustness rate than DA at the same n; beside it, ``ours`` and
   DA each against ERM (the paper's Table 1 has both far above ERM).
5. Where the run attacks the votes (``adaptive:``): each voting model defends less against
   AutoAttack's rand version on its vote than against AutoAttack on its network, as an attack
   that sees the defence is the stronger one (Athalye, Carlini & Wagner 2018; Tramèr et al. 2020).
6. Where the run scores an argmax method by the vote too (``vote: [da]``): its vote defends more
   than its argmax against AutoAttack on the network, the same network and attack, so that the
   difference is the inference rule's alone (issue 24: the part of Table 3's ``ours`` against DA
   under the paper's protocol that is not the training).

A comparison (2, 4, 5, 6) is a :class:`bench.paper.claims.Claim` judged by the claims' own
:func:`bench.paper.claims.verdict` (the report's claims section): McNemar's exact test on the same
inputs, the difference's exact 95 % interval and the smallest difference the run could detect; it
holds where the verdict is *supported* (the interval lies above 0).

Run after the DAG: ``python benchmarks/reference_checks.py`` (seconds). ``--run RUN
--vicinal-only`` writes only the certified-robustness comparisons of ``ours``, DA and ERM (each
pair, paired on the same inputs), for a run of those three methods such as the L∞ 0.3 side
experiment (``reports/reference/linf03/config.yaml``).
"""
from __future__ import annotations

import argparse
import json
import logging
from pathlib import Path

import pandas as pd

from bench.io import write_csv
from bench.paper.claims import Claim, verdict
from bench.paths import ModelRun, reports_dir
from bench.stats import clopper_pearson
from bench.training.voting import SUFFIX

log = logging.getLogger("benchmarks.reference_checks")


def _rate(hits) -> tuple[float, float, float, int]:
    hits = [bool(h) for h in hits]
    low, high = clopper_pearson(sum(hits), len(hits))
    return 100 * sum(hits) / len(hits), low, high, len(hits)  # clopper_pearson is in percent


def _show(name: str, r: tuple[float, float, float, int]) -> str:
    return f"{name} {r[0]:.1f} % [{r[1]:.1f}, {r[2]:.1f}] (n = {r[3]})"


def _models(run: str, dataset: str) -> dict[str, ModelRun]:
    """Each method's seed-0 model of ``dataset`` in a run's results."""
    pattern = ModelRun(run, dataset, "*", "*", 0).output("model")
    return {(m := ModelRun.parse(p.as_posix())[0]).method: m for p in Path().glob(pattern)}


def _certified(model: ModelRun) -> pd.Series:
    """Per test input, whether the paper's procedure certified it in the main vicinity."""
    df = pd.read_csv(model.output("certify_inputs", "table1"))
    df = df[(df["vicinity"] == "main") & (df["procedure"] == "paper")].sort_values("input")
    return df.set_index("input")["outcome"] == "certified"


def _above(name_a: str, a: pd.Series, name_b: str, b: pd.Series, behaviour: str, hit: str = "certified") -> dict:
    """The row of "``a`` above ``b``" on the inputs of ``a``, judged as a claim is (``hit``: what a
    success is called in the evidence): both rates, the inputs only one gets right, and the
    verdict with the difference's interval (points), McNemar's exact p and the detectable effect."""
    b = b.reindex(a.index)
    if b.isna().any():
        raise ValueError(f"{behaviour}: {name_b} has no outcome for inputs {list(b.index[b.isna()])[:5]} of {name_a}")
    a, b = a.to_numpy(dtype=bool), b.to_numpy(dtype=bool)
    claim = Claim(behaviour, behaviour, "the reference run's known behaviours", "table1" if hit == "certified" else "table3",
                  "certified_robustness_rate" if hit == "certified" else "defence_success_rate", name_b, method=name_a)
    v = verdict(claim, {0: a}, {0: b})
    return {"behaviour": behaviour, "holds": v["verdict"] == "supported",
            "evidence": f"{_show(name_a, _rate(a))} vs {_show(name_b, _rate(b))}; {hit} only for {name_a}: "
                        f"{int((a & ~b).sum())}, only for {name_b}: {int((b & ~a).sum())}; difference "
                        f"{v['effect']:+.1f} [{v['ci_low']:+.1f}, {v['ci_high']:+.1f}] points",
            "p_value": v["p_value"], **{k: v[k] for k in ("verdict", "effect", "ci_low", "ci_high", "detectable")}}


def _autoattack(model: ModelRun, name: str = "AutoAttack") -> pd.Series:
    """Which attacked images ``model`` still classifies correctly under the attack job ``name``."""
    return pd.Series(json.loads(Path(model.output("attack", name)).read_text())["rows"][0]["correct"])


def vicinal(run: str, dataset: str = "fashion_mnist") -> pd.DataFrame:
    """``ours`` above DA, ``ours`` above ERM, DA above ERM in certified robustness rate."""
    models = _models(run, dataset)
    c = {m: _certified(models[m]) for m in ("ours", "da", "erm")}
    return pd.DataFrame([_above("ours", c["ours"], "DA", c["da"], "ours above DA in certified robustness rate at the same n"),
                         _above("ours", c["ours"], "ERM", c["erm"], "ours above ERM in certified robustness rate"),
                         _above("DA", c["da"], "ERM", c["erm"], "DA above ERM in certified robustness rate")])


def checks(run: str, reports: Path, dataset: str = "fashion_mnist") -> pd.DataFrame:
    models = _models(run, dataset)

    rows = []
    erm = _rate(_autoattack(models["erm"]))
    rows.append({"behaviour": "ERM near 0 % under AutoAttack (L∞ main budget)", "holds": erm[2] <= 15,
                 "evidence": _show("ERM", erm), "p_value": None})
    for m in ("pgdt", "trades", "mart"):
        rows.append(_above(m.upper(), _autoattack(models[m]), "ERM", _autoattack(models["erm"]),
                           f"{m.upper()} far above ERM under AutoAttack", hit="right"))
    t1 = pd.read_csv(reports / "table1.csv")
    ibp_inputs = pd.read_csv(models["ibp"].output("certify_inputs", "table1"))
    acc = t1[(t1["method"] == "ibp") & (t1["metric"] == "standard_accuracy") & (t1["procedure"] == "paper")].iloc[0]
    t11 = pd.read_csv(reports / "table11.csv")
    sound = t11[(t11["method"] == "ibp") & (t11["kappa"] == 0) & t11["value"].notna()].iloc[0]
    classes = ibp_inputs["clean_prediction"].nunique()
    rows.append({"behaviour": "IBP a real classifier with a non-trivial κ = 0 certified robust accuracy",
                 "holds": bool(acc["ci_low"] > 10 and classes > 1 and sound["ci_low"] > 0),
                 "evidence": f"standard accuracy {acc['value']:.1f} % [{acc['ci_low']:.1f}, {acc['ci_high']:.1f}], "
                             f"{classes} classes predicted; κ = 0 (IBP bounds) certified robust accuracy "
                             f"{sound['value']:.1f} % [{sound['ci_low']:.1f}, {sound['ci_high']:.1f}]",
                 "p_value": None})
    return pd.concat([pd.DataFrame(rows), votes(run, dataset), vicinal(run, dataset)], ignore_index=True)


def votes(run: str, dataset: str = "fashion_mnist") -> pd.DataFrame:
    """Behaviours 5 and 6, where the run has them: each voting model attacked on its vote against
    on its network; each derived vote (``vote: [da]``) against its own method's argmax, both under
    AutoAttack on the network, the inference rule's share of a Table 3 gap under the paper's protocol."""
    models = _models(run, dataset)

    rows = []
    for m in sorted(m for m in models if Path(models[m].output("attack", "VoteAutoAttack")).exists()):
        rows.append(_above(f"{m} (attack on the network)", _autoattack(models[m]), f"{m} (attack on the vote)",
                           _autoattack(models[m], "VoteAutoAttack"),
                           f"{m}'s vote defends less against AutoAttack on the vote (adaptive) than on the network",
                           hit="right"))
    for m in sorted(m for m in models if m.endswith(SUFFIX) and m.removesuffix(SUFFIX) in models):
        base = m.removesuffix(SUFFIX)
        rows.append(_above(f"{m} (vote)", _autoattack(models[m]), f"{base} (argmax)", _autoattack(models[base]),
                           f"{base}'s vote defends more than its argmax against AutoAttack on the network",
                           hit="right"))
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--run", default="reference")
    parser.add_argument("--vicinal-only", action="store_true", help="only ours, DA and ERM's certified robustness")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    reports = Path(reports_dir(args.run))
    frame = vicinal(args.run) if args.vicinal_only else checks(args.run, reports)
    write_csv(frame, reports / "known_behaviours.csv")
    for r in frame.itertuples():
        log.info("%s %s: %s", "HOLDS" if r.holds else "NOT SHOWN", r.behaviour, r.evidence)


if __name__ == "__main__":
    main()
