"""What each job of a config's DAG does, counted in image passes through its network (the work
that :mod:`bench.workflow.estimate` prices on a device).

A job's **work** is split into *forwards* (no autograd: votes, certification samples, attack
queries, scoring) and *gradient passes* (forward + backward: training images, attack steps),
with the network *calls* that carry them (each pays the device's latency) and the images of the
largest call (its activation memory):

- **attacks** (every Table 9 attack, AutoAttack, the adaptive vote attacks, the masking checks,
  the transfer attack) and **training losses** are not modelled by hand: the attack (or the
  method's loss) is *run* at the config's settings on two images through a counting stand-in
  network that no perturbation can fool (a constant margin of 10 plus a 1e-3-scaled linear
  term), so every attack runs its full iterations: the count is the worst case, the one a time
  limit must allow (except torchattacks' CW, which stops when its cost stops falling: on the
  stand-in after 6 of its 50 steps, so its count is a lower bound). IBP's bound passes run
  inside auto_LiRPA's own graph, which the counter cannot see; they are charged as 3 gradient
  passes per image (clean, lower and upper bound).
- **certification**: per vicinity of a table job (of all the tables of a grouped job: they read
  one stream), every test input costs between the smallest number of samples its settings can
  certify with (``typical``, n_min of the test) and the budget (``worst``), plus one clean
  forward; audits, smoothing and validation count their fixed samples.

The jobs are those Snakemake runs (:func:`jobs`): with ``attacks.group: model`` a model's attacks
are one job whose *parts* are priced one by one and add up; with ``certify.group: model`` its
certification tables (and its audit, :func:`bench.workflow.plan.grouped_audit`) are one job whose work is
not their sum, since the tables share each vicinity's stream (:func:`certify_work`).
"""
from __future__ import annotations

import copy
import functools
import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import NamedTuple

import torch
from torch import nn

from bench.certification.vicinity import parse_vicinity
from bench.data import dataset_info
from bench.paths import ModelRun, benchmark_job
from bench.training import VicinalMethod, get_method, shape_group
from bench.workflow import plan
from bench.workflow.job_kinds import get_job_kind

__all__ = ["SPLIT_SIZES", "Count", "Work", "certify_work", "count_passes", "jobs", "parts", "work"]

#: train / test images of each dataset's full split (torchvision's sizes)
SPLIT_SIZES = {"mnist": (60_000, 10_000), "fashion_mnist": (60_000, 10_000), "svhn": (73_257, 26_032),
               "cifar10": (50_000, 10_000), "cifar100": (50_000, 10_000)}
IBP_PASSES = 3  # clean + lower + upper bound, per image (see the module docstring)


@dataclass
class Work:
    """Image passes of one job: ``forwards`` without autograd, ``gradient`` with a backward;
    ``worst_forwards`` for certification's worst case (every input runs to the budget)."""

    forwards: float = 0.0
    gradient: float = 0.0
    worst_forwards: float | None = None
    forward_calls: float = 0.0  # network invocations without autograd (each pays the device's latency)
    gradient_calls: float = 0.0  # and with a backward
    largest_call: int = 1  # images in the largest single forward (memory)
    train: bool = False
    chunked: bool = True  # whether that forward runs in chunks under the activation budget (bench.compute.memory)


class _Counter(nn.Module):
    """A stand-in network that counts the images it is asked about and is never fooled: class
    0 wins by a margin of 10 wherever the input is, with a small gradient for attacks to follow."""

    def __init__(self, shape: tuple[int, int, int], num_classes: int):
        super().__init__()
        with torch.random.fork_rng():  # the caller's random streams stay untouched
            torch.manual_seed(0)
            self.linear = nn.Linear(math.prod(shape), num_classes)
        with torch.no_grad():
            self.linear.weight.mul_(1e-3)
            self.linear.bias.zero_()
            self.linear.bias[0] = 10.0
        self.forwards = self.gradient = self.forward_calls = self.gradient_calls = 0
        self.largest = 1

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if torch.is_grad_enabled():
            self.gradient += len(x)
            self.gradient_calls += 1
        else:
            self.forwards += len(x)
            self.forward_calls += 1
        self.largest = max(self.largest, len(x))
        return self.linear(x.flatten(1))


def _method(name: str, dataset: str, hparams: dict, vicinity: str):
    return get_method(name)(hparams, dataset_info(dataset), parse_vicinity(vicinity), torch.Generator().manual_seed(0))


class Count(NamedTuple):
    """What a run costs: image passes per input image (``forwards``, ``gradient``), images in
    its largest call per input image, and its network calls (``forward_calls``,
    ``gradient_calls``: per run; with ``*_per_image``, a run on ``B`` images makes
    ``forward_calls + B * forward_calls_per_image`` calls, for attacks that loop over images)."""

    forwards: float
    gradient: float
    largest: float
    forward_calls: float
    gradient_calls: float
    forward_calls_per_image: float = 0.0
    gradient_calls_per_image: float = 0.0


def count_passes(run, shape: tuple[int, int, int], num_classes: int, images: int = 1) -> Count:
    """The :class:`Count` of ``run(model, x, y)`` on ``images`` images through the counting
    stand-in network (its calls all charged per run)."""
    model = _Counter(shape, num_classes)
    x, y = torch.rand(images, *shape), torch.zeros(images, dtype=torch.long)
    run(model, x, y)
    return Count(model.forwards / images, model.gradient / images, model.largest / images,
                 float(model.forward_calls), float(model.gradient_calls))


#: the iteration counts each attack's work is affine in (the stand-in network is never fooled,
#: so every iteration runs): counted at small values and extrapolated (:func:`_attack_passes`)
LINEAR_IN = {"AutoAttack": ("autoattack_steps", "square_queries"), "Square": ("square_queries",),
             "VoteAutoAttack": ("adaptive.steps",), "VoteEOTPGD": ("adaptive.steps",)}
SMALL = 2  # the count's base value of each of those settings (and twice it for the slope)


def _get(s: dict, key: str):
    head, _, tail = key.partition(".")
    return s[head][tail] if tail else s[head]


def _set(s: dict, key: str, value) -> dict:
    out = copy.deepcopy(s)
    head, _, tail = key.partition(".")
    if tail:
        out[head][tail] = value
    else:
        out[head] = value
    return out


@functools.cache
def _attack_passes(attack: str, shape: tuple[int, int, int], num_classes: int, settings_json: str,
                   method: str | None = None) -> Count:
    """The :class:`Count` of one attack's crafting; the network attacked is the same for every
    method except in the adaptive attacks (``method`` given), which attack the method's vote.

    An attack whose work (passes and calls) is affine in its iteration counts (:data:`LINEAR_IN`:
    steps, Square's queries) is counted at :data:`SMALL` and twice that for each count, and extrapolated to the
    config's values: exact for an affine count, and minutes faster than running 5,000 queries
    or 100 steps × 20 EOT draws (``tests/test_estimate.py`` checks the extrapolation against a
    direct count)."""
    s = json.loads(settings_json)
    keys = [k for k in LINEAR_IN.get(attack, ()) if int(_get(s, k)) > 2 * SMALL]
    if not keys:
        return _count_attack(attack, shape, num_classes, s, method)
    base = s
    for k in keys:
        base = _set(base, k, SMALL)
    c0 = _count_attack(attack, shape, num_classes, base, method)
    total = c0._asdict()
    for k in keys:
        c1 = _count_attack(attack, shape, num_classes, _set(base, k, 2 * SMALL), method)
        steps = (int(_get(s, k)) - SMALL) / SMALL
        for field in Count._fields:
            if field != "largest":  # the largest call does not grow with the iterations
                total[field] += (getattr(c1, field) - getattr(c0, field)) * steps
    return Count(**total)


def _count_attack(attack: str, shape: tuple[int, int, int], num_classes: int, s: dict,
                  method: str | None) -> Count:
    """Counted on one image and on two: an attack that loops over its images (OnePixel, Pixle)
    makes calls per image, the batched ones per batch."""
    from bench.evaluation.adaptive import make_adaptive_attack
    from bench.evaluation.attacks import AttackBudget, autoattack, make_attack
    from bench.evaluation.masking import CHECK_ATTACKS, TRANSFER_ATTACK, check_attack

    budget = AttackBudget(linf=parse_vicinity(s["linf"]).eps, num_classes=num_classes, seed=0,
                          channels=shape[0], square_queries=int(s["square_queries"]))

    def run(model, x, y):
        if attack == "AutoAttack":
            atk = autoattack(model, budget, steps=int(s["autoattack_steps"]), queries=int(s["square_queries"]))
        elif attack.startswith("Vote"):
            a = s["adaptive"]
            m = _method(method, s["dataset"], s["hparams"], s["linf"])
            atk, _ = make_adaptive_attack(attack[len("Vote"):], model, m, budget, vote_samples=int(a["vote_samples"]),
                                          eot_iter=int(a["eot_iter"]), steps=int(a["steps"]))
        elif attack in CHECK_ATTACKS:
            atk, _ = check_attack(attack, model, budget, **s["masking"])
        elif attack == TRANSFER_ATTACK:
            atk = make_attack("PGD", model, budget)
        else:
            atk = make_attack(attack, model, budget)
        atk(x, y)

    one, two = count_passes(run, shape, num_classes, 1), count_passes(run, shape, num_classes, 2)
    per_image = (two.forward_calls - one.forward_calls, two.gradient_calls - one.gradient_calls)
    return one._replace(forward_calls=one.forward_calls - per_image[0], gradient_calls=one.gradient_calls - per_image[1],
                        forward_calls_per_image=per_image[0], gradient_calls_per_image=per_image[1])


@functools.cache
def _prediction_passes(method: str, dataset: str, settings_json: str) -> float:
    """Forwards per image of the method's own prediction (its vote, or one argmax)."""
    s = json.loads(settings_json)
    m = _method(method, dataset, s["hparams"], s["linf"])
    info = dataset_info(dataset)

    def run(model, x, y):
        with torch.no_grad():
            m.predict(model, x)

    return count_passes(run, info.shape, info.num_classes)[0]


@functools.cache
def _train_passes(method: str, dataset: str, settings_json: str) -> Count:
    """The :class:`Count` of one training step's loss and backward (its calls per step)."""
    if get_method(method).native_certificate == "bounds":
        return Count(0.0, float(IBP_PASSES), 1.0, 0.0, float(IBP_PASSES))
    info = dataset_info(dataset)
    s = json.loads(settings_json)
    instance = _method(method, dataset, s["hparams"], s["vicinity"])
    return count_passes(lambda model, x, y: instance.loss_and_backward(instance.prepare(model, x), x, y),
                        info.shape, info.num_classes)


def _split(config: dict, dataset: str, split: str, per_class: int | None) -> int:
    full = SPLIT_SIZES[dataset][0 if split == "train" else 1]
    return full if per_class is None else min(full, int(per_class) * dataset_info(dataset).num_classes)


def jobs(config: dict) -> list[dict]:
    """Every job of ``config``'s DAG as Snakemake runs it (the architectures of ``arch: paper``):
    ``kind``, ``name``, ``dataset``, ``method``, ``arch``, ``seed``, its (first) ``output`` and
    ``job``, its name in ``reports/job_times.csv`` (its ``benchmark:`` file, from ``<model>/`` on,
    without ``.tsv``; None for a job without one).

    A model's grouped attacks (:func:`bench.workflow.plan.grouped_attacks`) are one job, ``attacks (k)``,
    with the attacks it runs in turn as its ``parts``; its grouped certifications
    (:func:`bench.workflow.plan.grouped_certifications`) are one job, ``certifications (k)``, with its
    ``tables`` and whether it runs the ``audit`` too (:func:`bench.workflow.plan.grouped_audit`)."""
    from bench.tables import enabled_tables

    grouped, grouped_tables = plan.grouped_attacks(config), plan.grouped_certifications(config)
    audit_grouped = plan.grouped_audit(config)

    def job_name(output: str) -> str | None:
        path = plan.benchmark_of(output, grouped, grouped_tables, audit_grouped)
        return None if path is None else benchmark_job(path)

    external, voted = plan.external_models(config), plan.voted(config)
    found = [{"kind": "import" if r["method"] in external else "vote" if r["method"] in voted else "train", **r,
              "output": (out := ModelRun.of(config, r).output("model")), "job": job_name(out)}
             for r in plan.runs(config) + plan.ablation_runs(config)]
    outputs = sorted({p for t in enabled_tables(config) for p in t.inputs(config)})  # arch_of defaults to the paper's
    by_job: dict[str, list[dict]] = {}
    for path in outputs:
        bench_file = plan.benchmark_of(path)
        if bench_file is None or bench_file.endswith("/train.tsv"):
            continue
        model, _ = ModelRun.parse(path)
        kind, _, what = Path(bench_file).stem.partition("_")
        one = {"kind": kind, "dataset": model.dataset, "method": model.method, "arch": model.arch, "seed": model.seed,
               "output": path, "name": what or kind, "job": job_name(path)}
        by_job.setdefault(one["job"], []).append(one)
    for name, members in by_job.items():
        first = members[0]
        if name.endswith("/attacks"):
            found.append({**first, "kind": "attack", "name": f"attacks ({len(grouped)})", "parts": members})
        elif name.endswith("/certifications"):
            found.append({**first, "kind": "certify", "name": f"certifications ({len(grouped_tables)})",
                          "tables": [m["name"] for m in members if m["kind"] == "certify"],
                          "audit": any(m["kind"] == "audit" for m in members)})
        else:
            found += members
    return found


def parts(job: dict) -> list[dict]:
    """The jobs a job of :func:`jobs` runs in turn, each priced alone (a grouped attack job's
    attacks); a job that is not grouped so is its one part."""
    return job.get("parts", [job])


def work(job: dict, config: dict) -> Work:
    """The image passes of one job of :func:`jobs` that is not run in parts (see the module
    docstring), counted by its kind's cost function (:attr:`bench.workflow.job_kinds.JobKind.cost`)."""
    if "parts" in job:
        raise ValueError(f"{job['job']} runs {len(job['parts'])} jobs in turn: count each of parts(job)")
    return get_job_kind(job["kind"]).count(job, config)


def _hparams(job: dict, config: dict) -> dict:
    method = job["method"]
    return get_method(method).resolve_hparams(dataset_info(job["dataset"]), config.get("hparams", {}).get(method, {}))


def import_work(job: dict, config: dict) -> Work:
    """An external checkpoint, or a vote method's copy of its method's model: read and written,
    no passes."""
    return Work(largest_call=1)


def train_work(job: dict, config: dict) -> Work:
    """Training: the method's loss run on the stand-in network, per image, times the images of
    every epoch; only the vicinal losses (n draws per image) run in chunks under the budget."""
    d, method = job["dataset"], job["method"]
    info = dataset_info(d)
    main = plan.vicinities(config, d)["main"]
    t = config["train"]
    c = _train_passes(method, d, json.dumps({"hparams": _hparams(job, config), "vicinity": main}, sort_keys=True,
                                            default=str))
    epochs = plan.train_epochs(config, method)
    n = _split(config, d, "train", t.get("train_per_class")) * epochs
    batch = t["batch_size"] if t["batch_size"] != "recipe" else get_method(method).batch_size[shape_group(info)]
    steps = math.ceil(n / epochs / int(batch)) * epochs
    return Work(forwards=c.forwards * n, gradient=c.gradient * n, largest_call=int(c.largest * int(batch)),
                train=True, chunked=issubclass(get_method(method), VicinalMethod),
                forward_calls=c.forward_calls * steps, gradient_calls=c.gradient_calls * steps)


def attack_work(job: dict, config: dict) -> Work:
    """One attack, run on the stand-in network at the config's settings, per test image, plus
    the method's scoring prediction."""
    d, method = job["dataset"], job["method"]
    info = dataset_info(d)
    main = plan.vicinities(config, d)["main"]
    hp = _hparams(job, config)
    a = config["attacks"]
    name = job["name"]
    s = {"linf": main, "square_queries": a["square_queries"], "autoattack_steps": a["autoattack_steps"],
         "masking": {k: config.get("masking", {}).get(k) for k in ("more_steps", "unbounded_steps")}}
    if name.startswith("Vote"):  # the vote attacked depends on the method and the dataset
        s.update(hparams=hp, dataset=d, adaptive=config.get("adaptive"))
    key = json.dumps(s, sort_keys=True, default=str)
    c = _attack_passes(name, info.shape, info.num_classes, key, method if name.startswith("Vote") else None)
    f = c.forwards + _prediction_passes(method, d, json.dumps({"hparams": hp, "linf": main}, sort_keys=True,
                                                              default=str))
    n = _split(config, d, "test", a.get("test_per_class"))
    batches = math.ceil(n / int(a["batch_size"]))  # each batch repeats the attack's sequential calls
    # the adaptive attacks' VoteModel runs in chunks; another attack's own batch does not (the
    # scoring vote of a voting method is chunked, so it stays within the budget: not counted here)
    return Work(forwards=f * n, gradient=c.gradient * n, largest_call=int(c.largest * int(a["batch_size"])),
                train=c.gradient > 0, chunked=name.startswith("Vote"),
                forward_calls=(c.forward_calls + 1) * batches + c.forward_calls_per_image * n,  # + 1: scoring
                gradient_calls=c.gradient_calls * batches + c.gradient_calls_per_image * n)


def certify_job_work(job: dict, config: dict) -> Work:
    """A certification job (one table, or a grouped job's ``tables`` and its ``audit``)."""
    w = certify_work(config, job["dataset"], job.get("tables", [job["name"]]))
    if job.get("audit"):  # the grouped job audits its Table 1 certificates after writing them
        audit = audit_work(job, config)
        w.forwards += audit.forwards
        w.worst_forwards += audit.forwards
    return w


def audit_work(job: dict, config: dict) -> Work:
    """The audit's fixed fresh samples, per Table 1 setting group."""
    from bench.tables import get_table

    a = config["audit"]
    groups = len(get_table("table1").settings(config, plan.vicinities(config, job["dataset"])))
    return Work(forwards=groups * int(a["inputs"]) * int(a["samples"]), largest_call=256)


def native_work(job: dict, config: dict) -> Work:
    """CERTIFY's n0 + n noise samples per test input (RS), or the bounds' passes (IBP)."""
    nat = config["native"]
    n = _split(config, job["dataset"], "test", nat.get("test_per_class"))
    sm = nat["smoothing"]
    per = int(sm["n0"]) + int(sm["n"]) if get_method(job["method"]).native_certificate == "smoothing" else 2 * 3
    return Work(forwards=per * n, largest_call=4096)


def validation_work(job: dict, config: dict) -> Work:
    """The budget's samples per validation input."""
    n = _split(config, job["dataset"], "train", config["train"].get("val_per_class"))
    return Work(forwards=n * int(config["certify"]["budget"]), largest_call=4096)


def certify_work(config: dict, dataset: str, tables: list[str]) -> Work:
    """The forwards of certifying ``tables`` of one model in one job: the settings of all the
    tables on one vicinity read one stream per input (:class:`bench.certification.streams.SampleTape`), so
    each vicinity costs its most demanding setting (typical: the largest n_min; worst: the
    budget), each rounded up to whole chunks of the stream, plus one clean forward per input."""
    from bench.certification.streams import CHUNK
    from bench.tables import get_table
    from bench.workflow.config import min_samples

    c = config["certify"]
    n_test = _split(config, dataset, "test", c.get("test_per_class"))
    settings = [s for t in tables for s in get_table(t).settings(config, plan.vicinities(config, dataset))]
    whole = lambda n: -(-n // CHUNK) * CHUNK  # noqa: E731 (streams are drawn in whole chunks)
    typical = worst = 0
    for spec in {s["spec"] for s in settings}:
        group = [s for s in settings if s["spec"] == spec]
        typical += whole(max(min_samples(s["procedure"], s["kappa"], s["alpha"]) or 1 for s in group)) + 1
        worst += whole(int(c["budget"])) + 1
    return Work(forwards=typical * n_test, worst_forwards=worst * n_test, largest_call=4096)
