"""Several training seeds: the cross-seed test against a hand-computed case, Table 1 across
seeds from per-input results, and a DAG that trains and certifies every model per seed."""
from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import yaml

from bench.paths import ModelRun
from bench.runs import methods
from bench.stats import paired_across_seeds
from bench.tables import get_table
from bench.training import get_method

ROOT = Path(__file__).resolve().parents[1]


def pair(a_only: int, b_only: int, n: int = 100, both: int = 50) -> tuple[np.ndarray, np.ndarray]:
    """Outcomes of two models on n inputs: ``both`` right for both, then a's and b's discordant ones."""
    a, b = np.zeros(n, bool), np.zeros(n, bool)
    a[:both] = b[:both] = True
    a[both: both + a_only] = True
    b[both + a_only: both + a_only + b_only] = True
    return a, b


#: three seeds: a right alone on 5, 4, 6 inputs, b alone on 1, 2, 0 (of 100 each)
SEEDS = {0: pair(5, 1), 1: pair(4, 2), 2: pair(6, 0)}


def test_the_cross_seed_test_by_hand():
    """The same 100 inputs in every seed. Per input, a − b averaged over the seeds (points): +100
    on inputs 50-53, +33.3 on 54, −33.3 on 55, 0 elsewhere: 5 up, 1 down, exact sign test
    p = 2·7/2⁶ = 0.21875. Per-seed differences 4, 2, 6: effect 4. SE² = s²(dₛ)/3 + s²(Dᵢ)/100 =
    4/3 + 410.3254/100 = 5.43659; Welch–Satterthwaite df = SE⁴/((4/3)²/2 + 4.103254²/99) = 27.91;
    4 ± t(0.975, 27.91)·2.33165."""
    from scipy.stats import t

    r = paired_across_seeds({s: p[0] for s, p in SEEDS.items()}, {s: p[1] for s, p in SEEDS.items()})
    assert (r["inputs_up"], r["inputs_down"]) == (5, 1) and r["p_inputs"] == pytest.approx(14 / 64, rel=1e-12)
    assert r["per_seed_differences"] == [4.0, 2.0, 6.0] and r["difference"] == 4.0
    var_d = (10000 * 4 + 2 * (100 / 3) ** 2 - 100 * 16) / 99
    se2 = 4 / 3 + var_d / 100
    df = se2**2 / ((4 / 3) ** 2 / 2 + (var_d / 100) ** 2 / 99)
    assert r["se"] == pytest.approx(se2**0.5, rel=1e-9) and df == pytest.approx(27.91, abs=0.01)
    assert r["low"] == pytest.approx(4 - t.ppf(0.975, df) * se2**0.5, rel=1e-9)
    assert r["high"] == pytest.approx(4 + t.ppf(0.975, df) * se2**0.5, rel=1e-9)
    assert r["limited_by"] == "inputs"  # not even these models are shown to differ
    assert (r["a_rate"], r["b_rate"]) == pytest.approx((55.0, 51.0))


def test_copies_of_one_seed_are_no_more_evidence_than_the_seed():
    """The inputs are shared by the seeds: three identical seeds must not look like three times
    the inputs (pooling seed × input pairs as independent would turn p = 0.18 into 0.008)."""
    a, b = pair(6, 1)
    one = paired_across_seeds({0: a}, {0: b})
    three = paired_across_seeds({s: a for s in range(3)}, {s: b for s in range(3)})
    assert three["p_inputs"] == one["p_inputs"] == pytest.approx(2 * 8 / 2**7)
    assert three["low"] == pytest.approx(one["low"]) and three["high"] == pytest.approx(one["high"])
    none = paired_across_seeds({s: a for s in range(2)}, {s: a for s in range(2)})  # no discordant input
    assert none["low"] < 0 < none["high"] and none["high"] == pytest.approx(100 * (1 - 0.025 ** (1 / 100)))


def test_the_cross_seed_verdicts():
    same = {0: pair(20, 2), 1: pair(21, 1), 2: pair(19, 3)}  # a far ahead in every seed
    assert paired_across_seeds({s: p[0] for s, p in same.items()},
                               {s: p[1] for s, p in same.items()})["limited_by"] is None
    tie = {0: pair(2, 2), 1: pair(1, 2), 2: pair(3, 1)}
    assert paired_across_seeds({s: p[0] for s, p in tie.items()},
                               {s: p[1] for s, p in tie.items()})["limited_by"] == "inputs"
    rng = np.random.default_rng(0)  # these models differ on the inputs; the seeds disagree on the sign
    spread = {}
    for s, shift in enumerate([12, -6, 12]):
        base = rng.random(400) < 0.5
        flip = rng.random(400) < abs(shift) / 100
        spread[s] = (base | flip, base) if shift > 0 else (base, base | flip)
    r = paired_across_seeds({s: p[0] for s, p in spread.items()}, {s: p[1] for s, p in spread.items()})
    assert r["p_inputs"] < 0.05 and r["low"] < 0 < r["high"] and r["limited_by"] == "seeds"
    with pytest.raises(ValueError, match="same seeds"):
        paired_across_seeds({0: [True]}, {1: [True]})


def write_inputs(tmp_path: Path, method: str, seed: int, hits: np.ndarray) -> list[str]:
    """A Table 1 certify job's outputs for one model: its summary and its per-input CSV."""
    model = ModelRun("t", "fashion_mnist", method, "convnet", seed)
    csv = tmp_path / model.output("certify_inputs", "table1")
    csv.parent.mkdir(parents=True, exist_ok=True)
    n = len(hits)
    pd.DataFrame({"input": range(n), "label": 0, "clean_prediction": np.where(hits, 0, 1), "prediction": 0,
                  "samples": 100, "outcome": np.where(hits, "certified", "not_certified"), "method": method,
                  "dataset": "fashion_mnist", "arch": "convnet", "seed": seed, "vicinity": "main", "kappa": 0.01,
                  "alpha": 0.01, "procedure": "paper"}).to_csv(csv, index=False)
    return [str(tmp_path / model.output("certify", "table1")), str(csv)]


def test_table1_across_seeds(tmp_path):
    paths = []
    for seed, (a, b) in SEEDS.items():
        paths += write_inputs(tmp_path, "ours", seed, a) + write_inputs(tmp_path, "da", seed, b)
    table = get_table("table1_seeds")
    assert table.enabled({"seeds": [0, 1, 2], "tables": [1]}) and not table.enabled({"seeds": [0], "tables": [1]})
    df = table.build(paths, {})
    cra = df[df["metric"] == "certified_robust_accuracy"].set_index("method")
    assert cra.loc["ours", "best"] and cra.loc["ours", "value"] == pytest.approx(55.0) and cra.loc["ours", "inputs"] == 100
    assert (cra.loc["ours", "seed_min"], cra.loc["ours", "seed_max"]) == (54.0, 56.0)
    da = cra.loc["da"]
    assert da["best_method"] == "ours" and da["best_minus_this"] == 4.0 and da["limited_by"] == "inputs"
    assert da["p_inputs"] == pytest.approx(14 / 64) and da["low"] < 0 < da["high"]
    assert da["ci_low"] < da["value"] < da["ci_high"]


def test_three_seeds_plan_every_model_per_seed_and_the_table_across_them(tmp_path):
    cfg = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    cfg.update(seeds=[0, 1, 2], run="seeds")
    config = tmp_path / "seeds.yaml"
    config.write_text(yaml.safe_dump(cfg))
    out = subprocess.run([sys.executable, "-m", "snakemake", "--snakefile", str(ROOT / "Snakefile"), "-n",
                          "--configfile", str(config)], cwd=tmp_path, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-2000:]
    counts = {m.group(1): int(m.group(2)) for m in re.finditer(r"^(\w+)\s+(\d+)$", out.stdout, re.M)}
    # the package's methods: what a fresh process (the DAG) registers; other tests may add plugins here
    package = [m for m in methods(cfg) if get_method(m).__module__.startswith("methods.")]
    assert counts["train"] == 3 * len(package)  # every model once per seed
    for table in ("table1", "table2", "table3", "table10"):  # every table of the smoke config has its across-seeds table
        assert f"reports/seeds/{table}_seeds.csv" in out.stdout


def test_table2_across_seeds_keeps_each_transform_apart(tmp_path):
    paths = []
    for seed, (a, b) in SEEDS.items():
        for method, hits in (("ours", a), ("da", b)):
            for transform, flip in (("rotate", False), ("scale", True)):  # da leads under scale
                model = ModelRun("t", "fashion_mnist", method, "convnet", seed)
                csv = tmp_path / transform / model.output("certify_inputs", "table2")
                csv.parent.mkdir(parents=True, exist_ok=True)
                h = hits if not flip else (b if method == "ours" else a)
                pd.DataFrame({"input": range(len(h)), "label": 0, "clean_prediction": np.where(h, 0, 1),
                              "prediction": 0, "samples": 100, "outcome": np.where(h, "certified", "not_certified"),
                              "method": method, "dataset": "fashion_mnist", "arch": "convnet", "seed": seed,
                              "vicinity": transform, "kappa": 0.01, "alpha": 0.01, "procedure": "paper"}).to_csv(csv, index=False)
                paths.append(str(csv))
    table = get_table("table2_seeds")
    assert table.enabled({"seeds": [0, 1], "tables": [2]}) and not table.enabled({"seeds": [0, 1], "tables": [1]})
    df = table.build(paths, {})
    cra = df[df["metric"] == "certified_robust_accuracy"].set_index(["vicinity", "method"])
    assert cra.loc[("rotate", "ours"), "best"] and cra.loc[("scale", "da"), "best"]
    assert cra.loc[("rotate", "da"), "best_minus_this"] == 4.0 == cra.loc[("scale", "ours"), "best_minus_this"]


def test_table3_across_seeds_compares_only_within_one_inference_rule(tmp_path):
    """ours (vote) is far above da (argmax) and erm (argmax): it is the best of its own group only."""
    paths = []
    rng = np.random.default_rng(1)
    for seed in range(3):
        for method, inference, rate in (("ours", "vote", 0.9), ("da", "argmax", 0.3), ("erm", "argmax", 0.1)):
            correct = (rng.random(100) < rate).astype(int).tolist()
            model = ModelRun("t", "fashion_mnist", method, "convnet", seed)
            path = tmp_path / model.output("attack", "AutoAttack")
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(json.dumps({"rows": [{"method": method, "dataset": "fashion_mnist", "arch": "convnet",
                                                  "seed": seed, "attack": "AutoAttack", "label": "AutoAttack",
                                                  "protocol": "paper", "inference": inference, "correct": correct}],
                                        "provenance": {}}))
            paths.append(str(path))
    df = get_table("table3_seeds").build(paths, {}).set_index("method")
    assert df.loc["ours", "best"] and np.isnan(df.loc["ours"].get("best_minus_this", np.nan))
    assert df.loc["da", "best"] and df.loc["erm", "best_method"] == "da"  # da is best among the argmax rows
    assert set(df["inference"]) == {"vote", "argmax"}
