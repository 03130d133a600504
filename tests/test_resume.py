"""A killed evaluation job resumes where it stopped, with the result of an uninterrupted run."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from conftest import make_mnist_like

import bench.jobs.attack as attack_job
from bench.paths import ModelRun
from bench.training import Method
from bench.training.loop import TrainSpec, train


class Files(SimpleNamespace):
    def keys(self):
        return vars(self).keys()


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("resume")
    make_mnist_like(root / "data", "MNIST", n_train=100, n_test=40)
    run = root / "model"
    train(TrainSpec(dataset="mnist", method="ours", arch="convnet", seed=0, epochs=1, batch_size=32,
                    hparams={"n_samples": 2, "vote_samples": 3}, data_root=str(root / "data"), device="cpu"),
          run, progress=False)
    return run


def smk(model_dir: Path, out: Path, attack: str = "PGD") -> Files:
    out.mkdir(parents=True, exist_ok=True)  # Snakemake makes the log's folder
    settings = {"run": "t", "dataset": "mnist", "method": "ours", "arch": "convnet", "seed": 0, "device": "cpu",
                "gpus": 0, "data_root": str(model_dir.parent / "data"), "plugins": [], "attack": attack,
                "linf": "linf:0.1", "test_per_class": 1, "batch_size": 3, "autoattack_steps": 2, "square_queries": 10}
    return Files(input=Files(model=str(model_dir / "model.json"), weights=str(model_dir / "model.safetensors")),
                 output=Files(result=str(out / "attacks" / f"{attack}.json")), log=[str(out / "log.txt")],
                 params=Files(settings=settings, code={"engine": "test"}), threads=1, resources=Files(), config={})


def rows(out: Path, attack: str = "PGD") -> dict:
    row = json.loads((out / "attacks" / f"{attack}.json").read_text())["rows"][0]
    return {k: row[k] for k in ("correct", "defence_success_rate", "inputs")}


def run_killed_after(monkeypatch, job: Files, batches: int) -> None:
    """Run the attack job ``job`` until it has saved its progress after batch ``batches``, then
    kill it (KeyboardInterrupt, as a time limit's signal would); ``Progress.save`` is restored."""
    real_save, saves = attack_job.Progress.save, []

    def save_then_die(self, *args):
        real_save(self, *args)
        saves.append(args[0])
        if len(saves) == batches:
            raise KeyboardInterrupt(f"killed after batch {batches}")

    monkeypatch.setattr(attack_job.Progress, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        attack_job.run(job)
    monkeypatch.setattr(attack_job.Progress, "save", real_save)


def test_an_attack_killed_after_a_batch_resumes_to_the_uninterrupted_result(model_dir, tmp_path, monkeypatch):
    whole, killed = tmp_path / "whole", tmp_path / "killed"
    # what each batch's prediction sees: the adversarial images (PGD's random start draws from
    # torch's generator) and the vote's generator state; a resume must reproduce both exactly
    seen: list[tuple[float, str]] = []
    real_predict = Method.predict

    def spy_predict(self, model, images, *args, **kwargs):
        seen.append((float(images.double().sum()), hashlib.sha256(self.generator.get_state().numpy()).hexdigest()))
        return real_predict(self, model, images, *args, **kwargs)

    monkeypatch.setattr(Method, "predict", spy_predict)
    attack_job.run(smk(model_dir, whole))
    uninterrupted, seen[:] = list(seen), []
    run_killed_after(monkeypatch, smk(model_dir, killed), batches=2)
    progress = killed / "attacks" / "PGD.json.progress.json"
    assert progress.exists() and not (killed / "attacks" / "PGD.json").exists()
    assert json.loads(progress.read_text())["batches"] == 2
    resumed_batches = []
    real_load = attack_job.Progress.load

    def spy_load(self):
        out = real_load(self)
        resumed_batches.append(out[0])
        return out

    monkeypatch.setattr(attack_job.Progress, "load", spy_load)
    attack_job.run(smk(model_dir, killed))
    assert resumed_batches == [2]  # it resumed, it did not start over
    assert len(uninterrupted) == 4 and seen[2:] == uninterrupted[2:]  # batches 3 and 4, after the resume
    assert rows(killed) == rows(whole) and rows(whole)["inputs"] == 10
    assert not progress.exists()


def test_progress_from_other_settings_is_ignored(model_dir, tmp_path, monkeypatch):
    out = tmp_path / "other"
    job = smk(model_dir, out)
    progress = attack_job.Progress(job.output.result, {"settings": {"different": 1}, "code": {}}, {})
    progress.path.parent.mkdir(parents=True)
    progress.save(3, [True] * 9, 1.0)
    attack_job.run(job)
    assert len(rows(out)["correct"]) == 10  # started over: 10 outcomes, not 9 + the last batch


MAIN = {"vicinity": "main", "spec": "linf:0.1", "kappa": 0.1, "alpha": 0.01}
TABLE1 = ([{**MAIN, "procedure": p} for p in ("paper", "mixture")]
          + [{"vicinity": "rotate", "spec": "rotate:35", "kappa": 0.1, "alpha": 0.01, "procedure": "paper"}])
# shares two of table 1's settings (main: paper; rotate) and adds one on the main vicinity
TABLE2 = [{**MAIN, "procedure": "paper"}, {**MAIN, "alpha": 0.05, "procedure": "paper"}, TABLE1[2]]


def certify_smk(model_dir: Path, out: Path, block_inputs: int | None, table: str = "table1",
                settings: list[dict] = TABLE1) -> Files:
    out.mkdir(parents=True, exist_ok=True)
    settings = {"run": "t", "dataset": "mnist", "method": "ours", "arch": "convnet", "seed": 0, "device": "cpu",
                "gpus": 0, "data_root": str(model_dir.parent / "data"), "plugins": [], "table": table,
                "settings": settings, "budget": 200, "test_per_class": 1, "block_inputs": block_inputs,
                "deterministic": None}
    return Files(input=Files(model=str(model_dir / "model.json"), weights=str(model_dir / "model.safetensors")),
                 output=Files(summary=str(out / f"{table}.json"), inputs=str(out / f"{table}_inputs.csv")),
                 log=[str(out / "log.txt")], params=Files(settings=settings, code={"engine": "test"}), threads=1,
                 resources=Files(), config={})


def certified(out: Path, table: str = "table1",
              drop: tuple[str, ...] = ("seconds", "provenance")) -> tuple[list[dict], str]:
    rows = json.loads((out / f"{table}.json").read_text())["rows"]
    return [{k: v for k, v in r.items() if k not in drop} for r in rows], (out / f"{table}_inputs.csv").read_text()


def test_a_certification_killed_after_a_block_resumes_to_the_uninterrupted_result(model_dir, tmp_path,
                                                                                   monkeypatch):
    import bench.jobs.certify as certify_job
    from bench.jobs.resume import Units

    whole, killed = tmp_path / "whole", tmp_path / "killed"
    certify_job.run(certify_smk(model_dir, whole, block_inputs=3))
    puts, real_put = [], Units.put

    def put_then_die(self, name, result):
        real_put(self, name, result)
        puts.append(name)
        if len(puts) == 5:  # inside the second vicinity's blocks
            raise KeyboardInterrupt("killed after block 5")

    monkeypatch.setattr(Units, "put", put_then_die)
    with pytest.raises(KeyboardInterrupt):
        certify_job.run(certify_smk(model_dir, killed, block_inputs=3))
    progress = killed / "table1.json.progress.json"
    assert len(json.loads(progress.read_text())["units"]) == 5 and not (killed / "table1.json").exists()
    monkeypatch.setattr(Units, "put", real_put)
    computed = []
    real_block = certify_job.certify_many

    def spy(*args, **kwargs):
        computed.append(len(args[1]))
        return real_block(*args, **kwargs)

    monkeypatch.setattr(certify_job, "certify_many", spy)
    certify_job.run(certify_smk(model_dir, killed, block_inputs=3))
    assert computed == [3, 3, 1]  # the 3 blocks left of the second vicinity (10 inputs in blocks of 3)
    rows, inputs = certified(killed)
    assert (rows, inputs) == certified(whole)
    assert [r["blocks"] for r in rows] == [4, 4, 4] and sorted(set(pd.read_csv(whole / "table1_inputs.csv")
                                                                   ["input"])) == list(range(10))
    assert not progress.exists()


def test_the_block_size_changes_no_certification(model_dir, tmp_path):
    """Each input's sample stream depends on its index, not on its block: one block, blocks of 3
    and of 1,000 inputs certify alike (only the count of blocks differs)."""
    import bench.jobs.certify as certify_job

    for name, block in (("none", None), ("three", 3), ("big", 1000)):
        certify_job.run(certify_smk(model_dir, tmp_path / name, block_inputs=block))
    assert certified(tmp_path / "none") == certified(tmp_path / "big")
    drop = ("seconds", "provenance", "blocks")
    assert certified(tmp_path / "none", drop=drop) == certified(tmp_path / "three", drop=drop)


def test_a_grouped_certification_shares_streams_and_resumes_after_a_kill(model_dir, tmp_path, monkeypatch):
    """``certify.group: model``: the settings of every table on one vicinity run once, on one
    stream per input, and each table's outcomes are those of its own job (only the cost columns
    differ). Killed in its second vicinity, the job keeps the first one's blocks in its progress
    file (Snakemake deletes every output of a killed job); the rerun certifies only the second
    vicinity and removes the progress file."""
    import bench.jobs.certify as certify_job

    alone = {t: tmp_path / t for t in ("table1", "table2")}
    certify_job.run(certify_smk(model_dir, alone["table1"], block_inputs=None))
    certify_job.run(certify_smk(model_dir, alone["table2"], block_inputs=None, table="table2", settings=TABLE2))
    # the grouped job names its outputs through the results layout (bench.paths.Output)
    out = (tmp_path / ModelRun("t", "mnist", "ours", "convnet", 0).output("certify", "table1")).parent
    one, two = (certify_smk(model_dir, out, None), certify_smk(model_dir, out, None, "table2", TABLE2))
    settings = {"table1": one.params.settings, "table2": two.params.settings}
    group = Files(input=one.input, output=[str(out / f"{t}{s}") for t in settings for s in (".json", "_inputs.csv")],
                  log=one.log, params=Files(settings=settings, code={"engine": "test"}), threads=1,
                  resources=Files(), config={})
    calls, real = [], certify_job.certify_many

    def count(*args, **kwargs):
        calls.append(len(args[4]))  # the settings run on one vicinity
        if len(calls) == 2 and die:
            raise KeyboardInterrupt("killed in the second vicinity")
        return real(*args, **kwargs)

    monkeypatch.setattr(certify_job, "certify_many", count)
    die = True
    with pytest.raises(KeyboardInterrupt):
        certify_job.run_group(group)
    assert calls == [3, 1]  # main: table 1's two and table 2's new one; rotate: one for both tables
    assert (out / "table1.json.progress.json").exists() and not (out / "table1.json").exists()
    calls.clear()
    die = False
    certify_job.run_group(group)
    assert calls == [1]  # rotate only; main came from the progress file
    cost = ("seconds", "provenance", "samples_drawn", "stream")
    for table in settings:
        assert certified(out, table, cost) == certified(alone[table], table, cost), table
    def drawn(pairs):  # samples predicted: each distinct run once
        runs = {(r["spec"], r["procedure"], r["alpha"]): r["samples_drawn"]
                for d, t in pairs for r in certified(d, t, ())[0]}
        return sum(runs.values()), len(runs)

    apart = drawn([(alone["table1"], "table1")])[0] + drawn([(alone["table2"], "table2")])[0]
    together, runs = drawn([(out, "table1"), (out, "table2")])
    assert runs == 4 and together < apart  # the streams the two tables share were drawn once
    assert not list(out.glob("*.progress.json"))


def test_a_grouped_attack_job_killed_in_its_second_attack_keeps_the_first(model_dir, tmp_path, monkeypatch):
    """``attacks.group: model``: as the grouped certification, per attack (batches read back)."""
    import bench.jobs.attacks as attacks_job

    out = tmp_path / "group"
    pgd, fgsm = smk(model_dir, out, "PGD"), smk(model_dir, out, "FGSM")
    group = Files(input=pgd.input, output=[pgd.output.result, fgsm.output.result], log=pgd.log, threads=1,
                  resources=Files(), config={}, params=Files(settings={"PGD": pgd.params.settings,
                                                                       "FGSM": fgsm.params.settings},
                                                             code={"engine": "test"}))
    real_save = attack_job.Progress.save

    def die_in_fgsm(self, *args):
        real_save(self, *args)
        if "FGSM" in str(self.path):
            raise KeyboardInterrupt("killed in FGSM's first batch")

    monkeypatch.setattr(attack_job.Progress, "save", die_in_fgsm)
    with pytest.raises(KeyboardInterrupt):
        attacks_job.run_group(group)
    whole = rows(out, "PGD")
    for output in group.output:
        Path(output).unlink(missing_ok=True)
    monkeypatch.setattr(attack_job.Progress, "save", real_save)
    loaded, real_load = {}, attack_job.Progress.load

    def spy_load(self):
        done = real_load(self)
        loaded[self.path.name] = done[0]
        return done

    monkeypatch.setattr(attack_job.Progress, "load", spy_load)
    attacks_job.run_group(group)
    assert loaded == {"PGD.json.progress.json": 4, "FGSM.json.progress.json": 1}  # PGD: all 4 batches read back
    assert rows(out, "PGD") == whole and len(rows(out, "FGSM")["correct"]) == 10
    assert not list((out / "attacks").glob("*.progress.json"))


def test_pixle_is_reproducible_and_resumes_with_numpy_s_generator(model_dir, tmp_path, monkeypatch):
    """Pixle (torchattacks) draws from numpy's global generator: the job seeds it, so two runs
    craft the same adversarial images whatever state numpy was in, and a run killed after a
    batch resumes with numpy's state restored, crafting the uninterrupted run's images."""
    import numpy as np

    seen: list[float] = []  # each batch's adversarial images, as the prediction sees them
    real_predict = Method.predict

    def spy_predict(self, model, images, *args, **kwargs):
        seen.append(float(images.double().sum()))
        return real_predict(self, model, images, *args, **kwargs)

    monkeypatch.setattr(Method, "predict", spy_predict)
    runs = []
    for state, out in ((123, tmp_path / "first"), (456, tmp_path / "second")):
        np.random.seed(state)
        seen.clear()
        attack_job.run(smk(model_dir, out, "Pixle"))
        runs.append(list(seen))
    assert len(runs[0]) == 4 and runs[0] == runs[1]
    assert rows(tmp_path / "first", "Pixle") == rows(tmp_path / "second", "Pixle")
    killed = tmp_path / "killed"
    run_killed_after(monkeypatch, smk(model_dir, killed, "Pixle"), batches=2)
    np.random.seed(789)  # the resumed run starts from another state: the progress file's must win
    seen.clear()
    attack_job.run(smk(model_dir, killed, "Pixle"))
    assert seen == runs[0][2:]  # batches 3 and 4, as in the uninterrupted run
    assert rows(killed, "Pixle") == rows(tmp_path / "first", "Pixle")
