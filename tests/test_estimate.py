"""``python -m bench plan --estimate``: the work it counts is the work the jobs do."""
from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest

from bench.certification.sequential import n_min
from bench.workflow import estimate, passes, plan

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def config() -> dict:
    return estimate.load_config(ROOT / "config" / "smoke.yaml")


def job(kind: str, name: str, method: str = "erm", dataset: str = "fashion_mnist", arch: str = "convnet") -> dict:
    return {"kind": kind, "name": name, "method": method, "dataset": dataset, "arch": arch, "seed": 0}


def test_counted_attack_passes_are_the_attacks_iterations(config):
    n = 10  # smoke: one test image per class
    fgsm, pgd = passes.work(job("attack", "FGSM"), config), passes.work(job("attack", "PGD"), config)
    assert (fgsm.gradient, fgsm.forwards) == (1 * n, 1 * n)  # one gradient step, one scoring forward
    assert (pgd.gradient, pgd.forwards) == (10 * n, 1 * n)  # torchattacks' PGD: 10 steps
    # the stand-in network is never fooled, so Square spends its whole query budget
    square = passes.work(job("attack", "Square"), config)
    assert square.forwards >= config["attacks"]["square_queries"] * n
    # a voting method is scored by its vote: vote_samples forwards per image
    ours = passes.work(job("attack", "PGD", method="ours"), config)
    assert ours.forwards == config["hparams"]["ours"]["vote_samples"] * n


def test_counted_training_passes_follow_the_methods_losses(config):
    t = config["train"]
    images = t["train_per_class"] * 10 * t["epochs"]
    assert passes.work(job("train", "train"), config).gradient == images
    n = config["hparams"]["ours"]["n_samples"]
    assert passes.work(job("train", "train", method="ours"), config).gradient == (n + 1) * images
    steps = config["hparams"]["pgdt"]["steps"]
    pgdt = passes.work(job("train", "train", method="pgdt"), config)
    assert pgdt.gradient == (steps + 1) * images


def test_certification_work_lies_between_n_min_and_the_budget(config):
    from bench.certification.streams import CHUNK
    from bench.tables import get_table
    from bench.workflow import plan

    c, inputs = config["certify"], 10
    for table, vicinities in (("table1", 1), ("table2", len(c["transforms"]))):
        settings = get_table(table).settings(config, plan.vicinities(config, "fashion_mnist"))
        assert len({s["spec"] for s in settings}) == vicinities
    w = passes.work(job("certify", "table2"), config)
    whole = lambda n: math.ceil(n / CHUNK) * CHUNK  # noqa: E731 (each input's stream is drawn in whole chunks)
    assert w.forwards == vicinities * (whole(n_min(c["kappa"], c["alpha"])) + 1) * inputs
    assert w.worst_forwards == vicinities * (whole(c["budget"]) + 1) * inputs


def test_the_estimate_lists_every_job_of_the_dag_and_divides_by_measured_rates(config, tmp_path):
    rates = [{"device": "Test GPU", "arch": a, "shape": s, "phase": p, "precision": "fp32", "batch_size": 128,
              "images_per_s": 1000.0 if p == "forward" else 100.0, "activation_mib_per_image": 1.0,
              "parameters": 1_000_000}
             for a in ("convnet", "cnn7") for s in ("28x28", "32x32") for p in ("forward", "train")]
    path = tmp_path / "throughput.csv"
    pd.DataFrame(rates).to_csv(path, index=False)
    frame = estimate.estimate(config, "test gpu", path)
    from test_workflow import package_methods

    frame = frame[frame["method"].isin(package_methods())]  # other tests register plugin methods in this process
    counts = frame["kind"].value_counts().to_dict()
    assert counts["train"] == 9 + len(config["ablation"]["values"])
    assert counts["attack"] > 9 * len(config["attacks"]["names"])  # plus AutoAttack, adaptive, checks
    assert set(counts) == {"train", "certify", "attack", "audit", "native"}
    row = frame[(frame["kind"] == "attack") & (frame["name"] == "PGD") & (frame["method"] == "erm")].iloc[0]
    assert row["hours"] == pytest.approx((10 / 1000 + 100 / 100) / 3600)
    table = estimate.summary(frame.reset_index(drop=True))
    assert table.set_index("kind").loc["all", "jobs"] == len(frame)
    with pytest.raises(ValueError, match="no throughput measured on a device matching 'H100'"):
        estimate.estimate(config, "H100", path)


def test_the_command_prints_the_summary_and_writes_the_jobs(tmp_path, capsys):
    from bench.cli import main

    rates = [{"device": "Test GPU", "arch": a, "shape": s, "phase": p, "precision": "fp32", "batch_size": 128,
              "images_per_s": 500.0, "activation_mib_per_image": 2.0, "parameters": 10}
             for a in ("convnet", "cnn7") for s in ("28x28", "32x32") for p in ("forward", "train")]
    pd.DataFrame(rates).to_csv(tmp_path / "t.csv", index=False)
    main(["plan", "--estimate", str(ROOT / "config" / "smoke.yaml"), "--device", "Test",
          "--throughput", str(tmp_path / "t.csv"), "--jobs", str(tmp_path / "jobs.csv")])
    out = capsys.readouterr().out
    assert "fits_11gb" in out and "certify" in out
    jobs = pd.read_csv(tmp_path / "jobs.csv")
    assert len(jobs) > 100
    # a run's job_times.csv beside the estimate: only the measured jobs, with both times
    pd.DataFrame({"job": jobs["job"].dropna()[:5], "seconds": 2.0}).to_csv(tmp_path / "times.csv", index=False)
    main(["plan", "--estimate", str(ROOT / "config" / "smoke.yaml"), "--device", "Test", "--throughput",
          str(tmp_path / "t.csv"), "--measured", str(tmp_path / "times.csv"), "--jobs", str(tmp_path / "both.csv")])
    both = pd.read_csv(tmp_path / "both.csv")
    assert len(both) == 5 and (both["measured_s"] == 2.0).all() and "against estimated" in capsys.readouterr().out
    pd.DataFrame({"job": ["other/run/seed0/train"], "seconds": [1.0]}).to_csv(tmp_path / "other.csv", index=False)
    with pytest.raises(SystemExit, match="no job of"):
        main(["plan", "--estimate", str(ROOT / "config" / "smoke.yaml"), "--device", "Test", "--throughput",
              str(tmp_path / "t.csv"), "--measured", str(tmp_path / "other.csv")])


def test_the_activation_budget_bounds_the_peak_of_chunked_work_only():
    frame = pd.DataFrame([
        {"kind": "certify", "forwards": 1.0, "gradient_passes": 0.0, "weights_gib": 0.1, "activations_gib": 40.0, "image_gib": 0.001, "chunked": True,
         "hours": 1.0, "worst_hours": 2.0, "limit_minutes": 60},
        {"kind": "attack", "forwards": 1.0, "gradient_passes": 1.0, "weights_gib": 0.1, "activations_gib": 20.0, "image_gib": 0.001, "chunked": False,
         "hours": 1.0, "worst_hours": 1.0, "limit_minutes": 60}])
    assert estimate.peak_gib(frame, None, 11).tolist() == pytest.approx([40.1, 20.1])
    assert estimate.peak_gib(frame, "auto", 11).tolist() == pytest.approx([0.1 + 0.8 * 10.9, 20.1])
    assert estimate.peak_gib(frame, 2048, 11).tolist() == pytest.approx([2.1, 20.1])
    table = estimate.summary(frame, "auto").set_index("kind")
    assert table.loc["certify", "fits_11gb"] and not table.loc["attack", "fits_11gb"]
    assert table.loc["certify", "fits_limit"]  # 2 h of work, a 1 h limit and one retry that resumes
    assert not estimate.summary(frame, "auto", retries=0).set_index("kind").loc["certify", "fits_limit"]


@pytest.mark.parametrize("attack", ["Square", "AutoAttack", "VoteEOTPGD", "VoteAutoAttack"])
def test_extrapolated_attack_counts_equal_direct_counts(config, attack):
    from bench.training import get_method

    info_shape, classes = (1, 28, 28), 10
    hp = get_method("ours").resolve_hparams(passes.dataset_info("fashion_mnist"), {"vote_samples": 3})
    s = {"linf": "linf:0.1", "square_queries": 13, "autoattack_steps": 9, "hparams": hp, "dataset": "fashion_mnist",
         "adaptive": {"vote_samples": 3, "eot_iter": 2, "steps": 7},
         "masking": {"more_steps": 5, "unbounded_steps": 5}}
    method = "ours" if attack.startswith("Vote") else None
    extrapolated = passes._attack_passes(attack, info_shape, classes, json.dumps(s, sort_keys=True), method)
    direct = passes._count_attack(attack, info_shape, classes, s, method)
    assert extrapolated[:2] == pytest.approx(direct[:2])
    assert extrapolated[3:] == pytest.approx(direct[3:])  # the calls, which the latency term charges
    assert extrapolated[1] + extrapolated[0] > 0


def test_sequential_calls_are_counted_per_attack_batch_and_per_training_step(config):
    import copy

    config = copy.deepcopy(config)
    config["attacks"]["batch_size"] = 3  # 10 test images: 4 batches
    config["train"].update(epochs=3, batch_size=7)
    n = 10
    pgd = passes.work(job("attack", "PGD"), config)  # torchattacks' PGD: 10 steps, then the scoring forward
    assert (pgd.gradient_calls, pgd.forward_calls) == (10 * 4, 1 * 4)
    square = passes.work(job("attack", "Square"), config)  # one query is one sequential forward
    assert square.forward_calls >= config["attacks"]["square_queries"]
    # OnePixel evolves each image on its own: its calls grow with the images, not the batches
    one = passes._count_attack("OnePixel", (1, 28, 28), 10, {"linf": "linf:0.1", "square_queries": 10}, None)
    assert one.forward_calls_per_image > 0
    assert passes.work(job("attack", "OnePixel"), config).forward_calls >= n * one.forward_calls_per_image
    t = config["train"]
    steps = -(-t["train_per_class"] * 10 // 7) * 3  # per epoch, the last batch partial
    assert passes.work(job("train", "train"), config).gradient_calls == steps


def test_the_estimate_charges_each_jobs_start_and_each_calls_latency(config, tmp_path):
    rates = [{"device": "Test GPU", "arch": a, "shape": s, "phase": p, "precision": "fp32", "batch_size": 128,
              "images_per_s": 1000.0 if p == "forward" else 100.0, "activation_mib_per_image": 1.0,
              "parameters": 1_000_000, "latency_ms": 2.0 if p == "forward" else 5.0, "job_start_s": 4.0}
             for a in ("convnet", "cnn7") for s in ("28x28", "32x32") for p in ("forward", "train")]
    path = tmp_path / "throughput.csv"
    pd.DataFrame(rates).to_csv(path, index=False)
    frame = estimate.estimate(config, "test gpu", path)
    row = frame[(frame["kind"] == "attack") & (frame["name"] == "PGD") & (frame["method"] == "erm")].iloc[0]
    w = passes.work(job("attack", "PGD"), config)
    latency = (w.forward_calls * 2.0 + w.gradient_calls * 5.0) / 1000
    assert row["latency_hours"] == pytest.approx(latency / 3600)
    # the measured batch of 128 took 128 / images_per_s seconds, one latency of which is not per image
    per_forward, per_gradient = (128 / 1000 - 0.002) / 128, (128 / 100 - 0.005) / 128
    assert row["hours"] == pytest.approx((4.0 + 10 * per_forward + 100 * per_gradient + latency) / 3600)
    square = frame[(frame["kind"] == "attack") & (frame["name"] == "Square") & (frame["method"] == "erm")].iloc[0]
    assert square["hours"] * 3600 >= 4.0 + config["attacks"]["square_queries"] * 2.0 / 1000
    assert (frame["start_hours"] == 4.0 / 3600).all()


def flat_rates(path: Path) -> Path:
    """A throughput file of one test device: 1,000 images/s for every architecture, shape and
    phase, no latency, a 4-second job start-up."""
    rates = [{"device": "Test GPU", "arch": a, "shape": s, "phase": p, "precision": "fp32", "batch_size": 128,
              "images_per_s": 1000.0, "activation_mib_per_image": 1.0, "parameters": 10, "latency_ms": 0.0,
              "job_start_s": 4.0} for a in ("convnet", "cnn7") for s in ("28x28", "32x32") for p in ("forward", "train")]
    pd.DataFrame(rates).to_csv(path, index=False)
    return path


def test_grouped_attacks_start_one_process(tmp_path):
    config = estimate.load_config(ROOT / "config" / "smoke.yaml")
    config["attacks"]["group"] = "model"
    config["seeds"] = [0, 1]  # one grouped job per model and seed
    flat_rates(tmp_path / "t.csv")
    grouped = estimate.estimate(config, "test", tmp_path / "t.csv")
    config["attacks"]["group"] = "attack"
    single = estimate.estimate(config, "test", tmp_path / "t.csv")
    erm = lambda f: f[(f["kind"] == "attack") & (f["method"] == "erm") & (f["arch"] == "convnet")]  # noqa: E731
    assert len(erm(grouped)) < len(erm(single))
    assert grouped["job"].is_unique and {"fashion_mnist/erm/convnet/seed0/attacks",
                                          "fashion_mnist/erm/convnet/seed1/attacks"} <= set(grouped["job"])
    saved = (len(erm(single)) - len(erm(grouped))) * 4.0 / 3600
    assert erm(grouped)["hours"].sum() == pytest.approx(erm(single)["hours"].sum() - saved)
    # the grouped job's parts are priced one by one; its work is not one count
    config["attacks"]["group"] = "model"
    job = next(j for j in passes.jobs(config) if j["job"] == "fashion_mnist/erm/convnet/seed0/attacks")
    assert [p["name"] for p in passes.parts(job)] == plan.grouped_attacks(config)
    with pytest.raises(ValueError, match="count each of parts"):
        passes.work(job, config)


def test_grouped_certifications_start_one_process(tmp_path, caplog):
    """``certify.group: model``: a model's five certification tables are one job (one start-up),
    named as its benchmark file, costing each vicinity once; the ablation's certifications keep a
    job each."""
    config = estimate.load_config(ROOT / "config" / "smoke.yaml")
    config["certify"]["group"] = "model"
    flat_rates(tmp_path / "t.csv")
    grouped = estimate.estimate(config, "test", tmp_path / "t.csv")
    config["certify"]["group"] = "table"
    single = estimate.estimate(config, "test", tmp_path / "t.csv")
    certify = lambda f: f[(f["kind"] == "certify") & (f["method"] == "erm")]  # noqa: E731
    assert len(certify(single)) == 5 and len(certify(grouped)) == 1
    row = certify(grouped).iloc[0]
    assert row["job"] == "fashion_mnist/erm/convnet/seed0/certifications" and row["name"] == "certifications (5)"
    # the tables read one stream per vicinity: Tables 11 and 12 certify on Table 1's main vicinity
    # and need no more samples there, so the job costs Tables 1, 10 (small) and 2 (transforms)
    # and the job audits its Table 1 certificates (bench.workflow.plan.grouped_audit): the audit job's work
    apart = certify(single).set_index("name").loc[["table1", "table10", "table2"]]
    audit = single[(single["kind"] == "audit") & (single["method"] == "erm")]
    assert len(audit) == 1 and not (grouped["kind"] == "audit").any()
    assert row["forwards"] == apart["forwards"].sum() + audit["forwards"].sum()
    assert apart["forwards"].sum() < certify(single)["forwards"].sum()
    assert row["hours"] == pytest.approx(apart["hours"].sum() + audit["hours"].sum() - 3 * 4.0 / 3600)  # one start, not four
    ablation = lambda f: f[(f["kind"] == "certify") & f["job"].str.startswith("ablation/")]  # noqa: E731
    assert len(ablation(grouped)) == len(ablation(single)) > 0
    # a run measured one job per table has no match under the grouped config: said, not silently dropped
    times = pd.DataFrame({"job": ["fashion_mnist/erm/convnet/seed0/certify_table1"], "seconds": [1.0]})
    with caplog.at_level("WARNING", logger="bench.workflow.estimate"):
        assert estimate.compare(grouped, times).empty
    assert "1 measured jobs have no estimate" in caplog.text
    assert len(estimate.compare(single, times)) == 1


def test_benchmark_of_a_grouped_certification():
    model = "results/r/fashion_mnist/erm/convnet/seed0"
    assert plan.benchmark_of(f"{model}/certify/table2.json") == "results/r/benchmarks/fashion_mnist/erm/convnet/seed0/certify_table2.tsv"
    assert plan.benchmark_of(f"{model}/certify/table2.json", (), ["table2"]) == \
        "results/r/benchmarks/fashion_mnist/erm/convnet/seed0/certifications.tsv"
    ablation = "results/r/ablation/fashion_mnist/ours/convnet/lam-1.0/seed0/certify/table2.json"
    assert plan.benchmark_of(ablation, (), ["table2"]).endswith("/lam-1.0/seed0/certify_table2.tsv")
    assert plan.benchmark_of(f"{model}/certify/validation.json", (), ["table2"]).endswith("/validation.tsv")
    assert plan.benchmark_of(f"{model}/audit.json", (), ["table1"]).endswith("/seed0/audit.tsv")
    assert plan.benchmark_of(f"{model}/audit.json", (), ["table1"], True).endswith("/seed0/certifications.tsv")
