"""The attack job: one attack on one model, scored by the method's own prediction.

The ``attack`` setting names a Table 9 attack or ``AutoAttack`` (paper protocol: crafted on
the network), ``Vote<name>`` (adaptive: crafted on the method's vote, :mod:`bench.adaptive`),
or a gradient-masking check attack (:mod:`bench.masking`). With a ``source`` input (the
``transfer`` rule) the examples are crafted by PGD on the source model instead.

Long attacks (the adaptive ones, Square, Pixle, OnePixel at the paper's size) can outlast a
job's time limit: the job saves its progress after every batch (:class:`Progress`: outcomes so
far and the random-number generators' states) beside its output, and a rerun of the killed job
resumes from there with the same result as an uninterrupted run.
"""
from __future__ import annotations

import base64
import hashlib
import json
import logging
import time
from pathlib import Path

import torch

from bench.io import write_json

from bench.data import dataset_info, load_split
from bench.jobs.common import Job, method_instance
from bench.vicinity import parse_vicinity

__all__ = ["Progress", "run"]

log = logging.getLogger(__name__)


def _state(t: torch.Tensor) -> str:
    return base64.b64encode(t.cpu().numpy().tobytes()).decode()


def _tensor(text: str) -> torch.Tensor:
    return torch.frombuffer(bytearray(base64.b64decode(text)), dtype=torch.uint8)


class Progress:
    """An attack job's progress: batches done, their per-input outcomes, seconds spent, and the
    states of the random-number generators the attack and the method's vote draw from.

    Stored as ``<output>.progress.json`` (JSON, no pickle), written atomically after each batch,
    removed when the job's output is written; a file from other settings or code is ignored.
    """

    def __init__(self, output: str | Path, key: dict, generators: dict[str, torch.Generator]):
        self.path = Path(f"{output}.progress.json")
        self.key = hashlib.sha256(json.dumps(key, sort_keys=True, default=str).encode()).hexdigest()
        self.generators = generators

    def load(self) -> tuple[int, list[bool], float]:
        """(batches done, outcomes so far, seconds so far), restoring the generators; (0, [], 0)
        when there is nothing to resume."""
        if not self.path.exists():
            return 0, [], 0.0
        data = json.loads(self.path.read_text())
        if data.get("key") != self.key:
            log.warning("%s belongs to other settings or code: starting over", self.path)
            return 0, [], 0.0
        torch.set_rng_state(_tensor(data["rng"]["torch"]))
        if "cuda" in data["rng"] and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([_tensor(s) for s in data["rng"]["cuda"]])
        for name, gen in self.generators.items():
            gen.set_state(_tensor(data["rng"][name]))
        log.info("resuming after batch %d (%d inputs done)", data["batches"], len(data["correct"]))
        return int(data["batches"]), [bool(c) for c in data["correct"]], float(data["seconds"])

    def save(self, batches: int, correct: list[bool], seconds: float) -> None:
        rng = {"torch": _state(torch.get_rng_state()),
               **{name: _state(gen.get_state()) for name, gen in self.generators.items()}}
        if torch.cuda.is_available():
            rng["cuda"] = [_state(s) for s in torch.cuda.get_rng_state_all()]
        write_json({"key": self.key, "batches": batches, "correct": [int(c) for c in correct], "seconds": seconds,
                    "rng": rng}, self.path)

    def done(self) -> None:
        self.path.unlink(missing_ok=True)


def run(smk) -> None:
    from bench.adaptive import make_adaptive_attack
    from bench.attacks import LABELS, AttackBudget, autoattack, autoattack_settings, make_attack
    from bench.checkpoint import load_model
    from bench.masking import CHECK_ATTACKS, check_attack
    from bench.precision import AtPrecision

    job = Job(smk)
    s = job.settings
    model, method = method_instance(Path(smk.input.model).parent, s, job)
    info = dataset_info(s["dataset"])
    test = load_split(s["dataset"], "test", s["data_root"], subset_per_class=s["test_per_class"]).to(job.device)
    budget = AttackBudget(linf=parse_vicinity(s["linf"]).eps, num_classes=info.num_classes, seed=job.seed,
                          channels=info.channels, square_queries=s["square_queries"])
    torch.manual_seed(job.seed)
    start = time.perf_counter()
    name, protocol = s["attack"], "paper"
    if "source" in smk.input.keys():
        source = AtPrecision(load_model(Path(smk.input.source).parent, job.device), job.precision).eval()
        attack = make_attack("PGD", source, budget)
        settings, protocol = {"linf": budget.linf, "crafted_on": smk.input.source}, "transfer"
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
    progress = Progress(smk.output.result, {"settings": s, "code": job.code}, {"method": method.generator})
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
                "seconds": spent + time.perf_counter() - start}], smk.output.result, Path(smk.input.model).parent)
    progress.done()
