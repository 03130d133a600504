"""The vote rule offered for every method (issue 24): ``vote: [da]`` adds ``da_vote``, DA's own
trained model predicting by the vote ``ours`` predicts by, scored beside ``ours`` under one rule."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch
import yaml

from bench.data import dataset_info
from bench.models.checkpoint import sha256
from bench.paths import ModelRun, model_file
from bench.training import METHODS, get_method
from bench.training.voting import VOTE_SAMPLES, register_votes, voted
sys.path.insert(0, str(Path(__file__).resolve().parent))
from plans import planned_jobs  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def da_vote():
    register_votes({"vote": ["da", "erm"]})
    yield get_method("da_vote")
    for key in ("da_vote", "erm_vote"):
        METHODS.remove(key)


def test_a_vote_method_is_its_method_predicting_by_the_vote(da_vote):
    da = get_method("da")
    assert issubclass(da_vote, da) and da_vote.vote and not da.vote and da_vote.voted_from == "da"
    assert da_vote.__module__ == da.__module__  # its code stamp is DA's: an edit of DA reruns both
    hp = da_vote.resolve_hparams(dataset_info("mnist"))
    assert hp == {**da.resolve_hparams(dataset_info("mnist")), "vote_samples": VOTE_SAMPLES}
    assert VOTE_SAMPLES == get_method("ours").resolve_hparams(dataset_info("mnist"))["vote_samples"]
    assert voted({"vote": ["da"]}) == {"da_vote": "da"} and voted({}) == {}


def test_the_vote_classifies_vote_samples_draws_of_each_input(da_vote):
    info = dataset_info("mnist")
    seen = []

    class Net(torch.nn.Module):
        def forward(self, x):
            seen.append(len(x))
            return torch.nn.functional.one_hot((x.flatten(1).mean(1) > 0.5).long(), 10).float()

    from bench.certification.vicinity import parse_vicinity

    method = da_vote({**da_vote.resolve_hparams(info), "vote_samples": 7}, info, parse_vicinity("linf:0.1"),
                     torch.Generator().manual_seed(0))
    images = torch.cat([torch.zeros(2, 1, 28, 28), torch.ones(1, 1, 28, 28)])
    assert method.predict(Net().eval(), images).tolist() == [0, 0, 1]
    assert sum(seen) == 3 * 7  # the vote, not one forward per input


def test_a_voting_method_or_an_unknown_one_is_refused():
    with pytest.raises(ValueError, match="'ours' already predicts by a vote"):
        register_votes({"vote": ["ours"]})
    with pytest.raises(ValueError, match="^vote: unknown method 'nope'"):
        register_votes({"vote": ["nope"]})


def test_the_config_check_names_a_bad_vote_entry():
    from bench.workflow.config import ConfigError, check_config
    from bench.workflow.estimate import load_config

    config = load_config(ROOT / "config" / "smoke.yaml")
    with pytest.raises(ConfigError, match=r"vote: 'ours' already predicts by a vote"):
        check_config({**config, "vote": ["ours"]})
    assert get_method("da").resolve_hparams(dataset_info("mnist"))  # nothing else registered by the failure


def test_the_vote_job_writes_the_methods_model_under_the_vote_methods_name(tmp_path, da_vote):
    from bench.jobs.vote import derive_vote_model
    from bench.models import create_model

    source = tmp_path / "da"
    source.mkdir()
    model = create_model("convnet", dataset_info("mnist"))
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, str(model_file(source, "weights")))
    meta = {"spec": {"dataset": "mnist", "method": "da", "arch": "convnet", "seed": 1}, "hparams": {"n_samples": 4},
            "vicinity": "linf:0.1", "weights_sha256": sha256(model_file(source, "weights")),
            "metrics": {"train_seconds": 3.0}, "provenance": {"code": {"engine": "abc"}}}
    model_file(source, "model").write_text(json.dumps(meta))
    out = tmp_path / "da_vote"
    result = derive_vote_model(source, out, "da_vote", da_vote.name, 25)
    hparams = {"n_samples": 4, "vote_samples": 25}  # what DA was trained with, and the vote's count
    assert model_file(out, "weights").read_bytes() == model_file(source, "weights").read_bytes()
    assert result["spec"]["method"] == "da_vote" and result["hparams"] == hparams
    assert result["method"]["voted_from"] == "da" and result["provenance"] == meta["provenance"]  # DA's training
    from bench.models.checkpoint import load_model

    load_model(out)  # the hash it records is the copy's
    model_file(source, "weights").write_bytes(b"x")
    with pytest.raises(ValueError, match="does not match the hash"):
        derive_vote_model(source, tmp_path / "again", "da_vote", da_vote.name, 25)


def test_one_config_line_plans_the_vote_beside_ours_with_the_adaptive_attacks(tmp_path):
    """``vote: [da]`` on the smoke config: one vote job per DA model reading DA's files (no
    training of its own), and every attack of ``ours`` also for ``da_vote``, the attacks on the
    vote (adaptive, EOT) included."""
    config = yaml.safe_load((ROOT / "config" / "smoke.yaml").read_text())
    path = tmp_path / "vote.yaml"
    path.write_text(yaml.safe_dump({**config, "vote": ["da"], "run": "vote"}))
    jobs = planned_jobs(path)
    da = ModelRun("vote", "fashion_mnist", "da", "convnet", 0)
    vote = ModelRun("vote", "fashion_mnist", "da_vote", "convnet", 0)
    rule = lambda j: j.split("rule=")[1].split(" | ")[0]  # noqa: E731
    votes = [j for j in jobs if rule(j) == "vote_model"]
    assert len(votes) == 1 and da.output("weights") in votes[0] and vote.output("model") in votes[0]
    assert not [j for j in jobs if rule(j) == "train" and "da_vote" in j]

    def outputs(method):
        return sorted(p.split(f"/{method}/convnet/seed0/")[1] for j in jobs if rule(j) not in ("train", "vote_model") and "output=" in j
                      for p in j.split("output=")[1].split(" | ")[0].split(", ") if f"/{method}/convnet/seed0/" in p)
    # the attacks of ours, none of its certifications (a vote method's certificates are its method's)
    assert outputs("da_vote") == [o for o in outputs("ours") if o.startswith("attacks/")]
    assert "attacks/VoteEOTPGD.json" in outputs("da_vote") and "attacks/VoteEOTPGD.json" not in outputs("da")


def test_the_vote_draws_as_many_samples_as_the_runs_own_vicinity_vote():
    """The default config gives ours 25 votes: da_vote then votes with 25 (RS's Gaussian vote is
    another rule and does not count); an override is the only hyperparameter it takes."""
    config = {"methods": ["ours", "da", "rs"], "datasets": ["fashion_mnist"], "hparams": {"ours": {"vote_samples": 25}},
              "vote": ["da"]}
    register_votes(config)
    try:
        assert get_method("da_vote").resolve_hparams(dataset_info("fashion_mnist"))["vote_samples"] == 25
        register_votes({**config, "hparams": {**config["hparams"], "da_vote": {"vote_samples": 7}}})
        assert get_method("da_vote").resolve_hparams(dataset_info("fashion_mnist"), {"vote_samples": 7})["vote_samples"] == 7
        with pytest.raises(ValueError, match="hparams.da_vote may set vote_samples only"):
            register_votes({**config, "hparams": {"da_vote": {"n_samples": 3}}})
        with pytest.raises(ValueError, match="'da' is not among the run's methods"):
            register_votes({**config, "methods": ["ours"]})
    finally:
        METHODS.remove("da_vote")


def test_a_job_of_a_vote_method_registers_it_from_the_config(tmp_path):
    """Each job is a fresh process: its Context carries the config's vote: (bench.jobs.common)."""
    from types import SimpleNamespace

    from bench.jobs.common import Context

    smk = SimpleNamespace(log=[], threads=1, resources=SimpleNamespace(), config={"vote": ["erm"]})
    context = Context.of(smk)
    assert context.votes == ("erm",)
    code = ("import sys; sys.path.insert(0, %r)\n"
            "from bench.workflow.extensions import load_extensions\n"
            "load_extensions({'plugins': [], 'models': [], 'vote': %r})\n"
            "from bench.training import get_method; print(get_method('erm_vote').vote)") % (str(ROOT), list(context.votes))
    import subprocess

    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stderr[-2000:]


def test_vote_runs_are_their_methods_runs_and_only_the_attack_tables_score_them():
    from bench.runs import runs
    from bench.workflow.estimate import load_config

    config = {**load_config(ROOT / "config" / "smoke.yaml"), "vote": ["da"], "seeds": [0, 1]}
    register_votes(config)
    try:
        every = runs(config)
        da = [r for r in every if r["method"] == "da"]
        assert [{**r, "method": "da"} for r in every if r["method"] == "da_vote"] == da and len(da) == 2
        assert not [r for r in runs(config, votes=False) if r["method"] == "da_vote"]
        from bench.tables import get_table

        certified = {p for t in ("table1", "table2", "table4") for p in get_table(t).inputs(config)}
        attacked = set(get_table("table3").inputs(config))
        assert not [p for p in certified if "/da_vote/" in p] and [p for p in attacked if "/da_vote/" in p]
    finally:
        METHODS.remove("da_vote")


def test_methods_all_leaves_out_what_another_config_registered():
    """A process that reads two configs (the estimate, a test session) keeps the first one's
    external models and vote methods registered: ``methods: all`` of the second lists neither,
    nor does the list of declared methods or the recipe table (docs/recipes.csv is the code's)."""
    from bench.report.recipes import recipe_table
    from bench.runs import methods
    from bench.training import available_methods
    from bench.training.external import register

    register({"models": [{"name": "elsewhere", "dataset": "fashion_mnist", "arch": "convnet", "weights": "w"}]})
    register_votes({"vote": ["da"]})
    try:
        chosen = methods({"methods": "all", "arch": "paper"})
        assert "elsewhere" not in chosen and "da_vote" not in chosen and {"ours", "da", "erm"} <= set(chosen)
        assert {"elsewhere", "da_vote"}.isdisjoint(available_methods()) and "da" in available_methods()
        assert {"elsewhere", "da_vote"}.isdisjoint(recipe_table()["method"])
    finally:
        METHODS.remove("elsewhere")
        METHODS.remove("da_vote")


def test_a_change_of_ours_vote_count_changes_the_vote_jobs_settings():
    """The vote count of ``da_vote`` follows the run's own vicinity vote (ours'): it must reach
    the ``vote`` job's settings (its Snakemake params), so that changing ``hparams.ours.vote_samples``
    reruns the vote job, and through its new model file every attack on ``da_vote``."""
    import copy
    from types import SimpleNamespace

    from bench.workflow import plan
    from bench.workflow.estimate import load_config

    config = load_config(ROOT / "config" / "config.yaml")
    config["vote"] = ["da"]
    w = SimpleNamespace(dataset="fashion_mnist", method="da_vote", arch="convnet", seed="0", keys=lambda: [])
    try:
        register_votes(config)
        before = plan.job_settings("vote", config, w)["hparams"]["vote_samples"]
        other = copy.deepcopy(config)
        other.setdefault("hparams", {}).setdefault("ours", {})["vote_samples"] = before + 6
        register_votes(other)
        assert plan.job_settings("vote", other, w)["hparams"]["vote_samples"] == before + 6
    finally:
        METHODS.remove("da_vote")
