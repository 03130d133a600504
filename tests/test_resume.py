"""A killed evaluation job resumes where it stopped, with the result of an uninterrupted run."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from types import SimpleNamespace

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
    saves = []
    real_save = attack_job.Progress.save

    def save_then_die(self, *args):
        real_save(self, *args)
        saves.append(args[0])
        if len(saves) == 2:
            raise KeyboardInterrupt("killed after batch 2")

    monkeypatch.setattr(attack_job.Progress, "save", save_then_die)
    with pytest.raises(KeyboardInterrupt):
        attack_job.run(smk(model_dir, killed))
    progress = killed / "attacks" / "PGD.json.progress.json"
    assert progress.exists() and not (killed / "attacks" / "PGD.json").exists()
    assert json.loads(progress.read_text())["batches"] == 2
    monkeypatch.setattr(attack_job.Progress, "save", real_save)
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
