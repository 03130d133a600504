"""A killed evaluation job resumes where it stopped, with the result of an uninterrupted run."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest

import bench.jobs.attack as attack_job
from bench.method import Method
from bench.train import TrainSpec, train
from conftest import make_mnist_like


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


def certify_smk(model_dir: Path, out: Path, block_inputs: int | None) -> Files:
    out.mkdir(parents=True, exist_ok=True)
    settings = {"run": "t", "dataset": "mnist", "method": "ours", "arch": "convnet", "seed": 0, "device": "cpu",
                "gpus": 0, "data_root": str(model_dir.parent / "data"), "plugins": [], "table": "table1",
                "settings": [{"vicinity": "main", "spec": "linf:0.1", "kappa": 0.1, "alpha": 0.01, "procedure": p}
                             for p in ("paper", "mixture")]
                            + [{"vicinity": "rotate", "spec": "rotate:35", "kappa": 0.1, "alpha": 0.01,
                                "procedure": "paper"}],
                "budget": 200, "test_per_class": 1, "block_inputs": block_inputs, "deterministic": None}
    return Files(input=Files(model=str(model_dir / "model.json"), weights=str(model_dir / "model.safetensors")),
                 output=Files(summary=str(out / "table1.json"), inputs=str(out / "table1_inputs.csv")),
                 log=[str(out / "log.txt")], params=Files(settings=settings, code={"engine": "test"}), threads=1,
                 resources=Files(), config={})


def certified(out: Path) -> tuple[list[dict], str]:
    rows = json.loads((out / "table1.json").read_text())["rows"]
    drop = ("seconds", "provenance")
    return [{k: v for k, v in r.items() if k not in drop} for r in rows], (out / "table1_inputs.csv").read_text()


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


def test_one_block_of_all_inputs_is_the_unblocked_certification(model_dir, tmp_path):
    import bench.jobs.certify as certify_job

    certify_job.run(certify_smk(model_dir, tmp_path / "none", block_inputs=None))
    certify_job.run(certify_smk(model_dir, tmp_path / "big", block_inputs=1000))
    assert certified(tmp_path / "none") == certified(tmp_path / "big")


def test_a_grouped_certification_killed_in_its_second_table_keeps_the_first(model_dir, tmp_path, monkeypatch):
    """``certify.group: model``: Snakemake deletes every output of a killed job, so the finished
    tables' progress files must outlive their outputs until the group ends; the rerun reads the
    first table back, certifies only the second, and removes every progress file."""
    import bench.jobs.certify as certify_job

    whole, out = tmp_path / "whole", tmp_path / "group"
    certify_job.run(certify_smk(model_dir, whole, block_inputs=None))
    one = certify_smk(model_dir, out, block_inputs=None)
    settings = {"table1": one.params.settings, "table2": {**one.params.settings, "table": "table2"}}
    group = Files(input=one.input, output=[str(out / f"{t}{s}") for t in settings for s in (".json", "_inputs.csv")],
                  log=one.log, params=Files(settings=settings, code={"engine": "test"}), threads=1,
                  resources=Files(), config={})
    calls, real = [], certify_job.certify_many

    def die_in_table2(*args, **kwargs):  # two vicinities, one block each: calls 3 and 4 are table 2's
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt("killed in table 2")
        return real(*args, **kwargs)

    monkeypatch.setattr(certify_job, "certify_many", die_in_table2)
    with pytest.raises(KeyboardInterrupt):
        certify_job.run_group(group)
    assert (out / "table1.json").exists() and (out / "table1.json.progress.json").exists()
    for output in group.output:  # what Snakemake does to a failed job's outputs
        Path(output).unlink(missing_ok=True)
    calls.clear()
    monkeypatch.setattr(certify_job, "certify_many", lambda *a, **k: (calls.append(1), real(*a, **k))[1])
    certify_job.run_group(group)
    assert len(calls) == 2  # table 2's two vicinities; table 1 came from its progress file
    assert certified(out) == certified(whole)
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
