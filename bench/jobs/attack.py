"""The attack job: one attack on one model, scored by the method's own prediction.

The ``attack`` setting names a Table 9 attack or ``AutoAttack`` (paper protocol: crafted on
the network), ``Vote<name>`` (adaptive: crafted on the method's vote, :mod:`bench.evaluation.adaptive`),
or a gradient-masking check attack (:mod:`bench.evaluation.masking`). With a ``source`` input (the
``transfer`` rule) the examples are crafted by PGD on the source model instead.

Long attacks (the adaptive ones, Square, Pixle, OnePixel at the paper's size) can outlast a
job's time limit: the job saves its progress after every batch (:class:`Progress`: outcomes so
far and the random-number generators' states) beside its output, and a rerun of the killed job
resumes from there with the same result as an uninterrupted run.
"""
from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from bench.certification.vicinity import parse_vicinity
from bench.data import dataset_info, load_split
from bench.jobs.common import Context, Job, method_instance
from bench.jobs.resume import Progress

__all__ = ["Progress", "attack_model", "run"]


def run(smk, finish: bool = True) -> Callable[[], None]:
    """The ``attack`` (and ``transfer``) rule: :func:`attack_model` on its declared files."""
    return attack_model(smk.input.model, smk.output.result, smk.params.settings, smk.params.code, Context.of(smk),
                        source=smk.input.source if "source" in smk.input.keys() else None, finish=finish)


def attack_model(model_file: str, output: str, settings: dict, code: dict, context: Context,
                 source: str | None = None, finish: bool = True) -> Callable[[], None]:
    """One attack on one model (``model_file``: its ``model.json``), written to ``output``; with
    ``source`` (another model's ``model.json``), the transfer attack crafted on that model.
    ``finish=False`` keeps the progress file after the output is written and returns its
    remover: a grouped job (:mod:`bench.jobs.attacks`) removes its attacks' files only once all
    its outputs exist, since Snakemake deletes a failed or killed job's outputs, and the rerun
    then reads the finished attacks back instead of running them again."""
    from bench.compute.precision import AtPrecision
    from bench.evaluation.adaptive import make_adaptive_attack
    from bench.evaluation.attacks import LABELS, AttackBudget, autoattack, autoattack_settings, make_attack
    from bench.evaluation.masking import CHECK_ATTACKS, check_attack
    from bench.models.checkpoint import load_model

    job = Job(settings, code, context)
    s = job.settings
    model, method = method_instance(Path(model_file).parent, s, job)
    info = dataset_info(s["dataset"])
    test = load_split(s["dataset"], "test", s["data_root"], subset_per_class=s["test_per_class"]).to(job.device)
    budget = AttackBudget(linf=parse_vicinity(s["linf"]).eps, num_classes=info.num_classes, seed=job.seed,
                          channels=info.channels, square_queries=s["square_queries"])
    torch.manual_seed(job.seed)
    np.random.seed(job.seed)  # Pixle and OnePixel (torchattacks) draw from numpy's global generator
    start = time.perf_counter()
    name, protocol = s["attack"], "paper"
    if source is not None:
        crafted_on = AtPrecision(load_model(Path(source).parent, job.device), job.precision).eval()
        attack = make_attack("PGD", crafted_on, budget)
        settings, protocol = {"linf": budget.linf, "crafted_on": source}, "transfer"
    elif name == "AutoAttack":
        attack = autoattack(model, budget, steps=s["autoattack_steps"], queries=s["square_queries"])
        settings = autoattack_settings(budget, s["autoattack_steps"], s["square_queries"])
    elif name.startswith("Vote"):
        name, protocol, a = name[len("Vote"):], "adaptive", s["adaptive"]
        attack, settings = make_adaptive_attack(name, model, method, budget, vote_samples=int(a["vote_samples"]),
                                                eot_iter=int(a["eot_iter"]), steps=int(a["steps"]))
    elif name in CHECK_ATTACKS:
        m = s["masking"]
        attack, settings = check_attack(name, model, budget, more_steps=int(m["more_steps"]),
                                        unbounded_steps=int(m["unbounded_steps"]))
        protocol = "check"
    else:
        attack = make_attack(name, model, budget)
        settings = {"linf": budget.linf, "l2": budget.l2, "gaussian_std": budget.gaussian_std,
                    **({"queries": budget.square_queries} if name == "Square" else {})}
    model.eval()
    progress = Progress(output, {"settings": s, "code": job.code}, {"method": method.generator},
                        job.device)
    done, correct, spent = progress.load()
    for batch, (images, labels) in enumerate(test.batches(s["batch_size"])):
        if batch < done:
            continue
        adv = attack(images, labels)
        correct += (method.predict(model, adv) == labels).cpu().tolist()
        progress.save(batch + 1, correct, spent + time.perf_counter() - start)
    job.write([{**job.identity, "attack": name, "label": LABELS.get(name, name), "protocol": protocol,
                "inputs": len(test), "correct_count": int(sum(correct)), "correct": [int(c) for c in correct],
                "defence_success_rate": 100.0 * sum(correct) / len(test),
                "inference": "vote" if method.vote else "argmax", "settings": settings,
                "seconds": spent + time.perf_counter() - start}], output, Path(model_file).parent)
    if finish:
        progress.done()
    return progress.done
