"""What a config's DAG will cost before it runs: jobs per kind, and each job's work, time and
peak memory on a named device (``python -m bench plan --estimate CONFIG``).

A job's **work** is counted in image passes through its network, split into *forwards* (no
autograd: votes, certification samples, attack queries, scoring) and *gradient passes*
(forward + backward: training images, attack steps):

- **attacks** (every Table 9 attack, AutoAttack, the adaptive vote attacks, the masking checks,
  the transfer attack) and **training losses** are not modelled by hand: the attack (or the
  method's loss) is *run* at the config's settings on two images through a counting stand-in
  network that no perturbation can fool (a constant margin of 10 plus a 1e-3-scaled linear
  term), so every attack runs its full iterations: the count is the worst case, the one a time
  limit must allow (except torchattacks' CW, which stops when its cost stops falling: on the
  stand-in after 6 of its 50 steps, so its count is a lower bound). IBP's bound passes run inside auto_LiRPA's own graph, which the counter
  cannot see; they are charged as 3 gradient passes per image (clean, lower and upper bound).
- **certification**: per vicinity of a table job (of all the tables of a grouped job: they read
  one stream), every test input costs between the smallest number of samples its settings can
  certify with (``typical``, n_min of the test) and the budget (``worst``), plus one clean
  forward; audits, smoothing and validation count their fixed samples.

**Time** is, per job, the device's measured start-up (``job_start_s``: a job process importing
torch and the engine), plus the passes divided by the architecture's measured images per second,
plus the job's *calls* (network invocations, counted by the same stand-in network) times the
measured latency of one call at batch 1 (``latency_ms``): a call of ``B`` images costs
``latency + B × t``, where ``t`` is the per-image time of the measured batch with its one
latency taken out (a training step's optimiser update is in ``t``: the latency is measured
on an attack's gradient call). The latency term is what bounds an iterative attack on a few images
(Square's 5,000 queries are 5,000 sequential forwards, whatever the batch); certification, audits
and votes run thousands of samples per call and are counted by throughput alone. All three come
from ``reports/bench/throughput.csv``, written by ``benchmarks/throughput.py`` on each device; a
device measured before the latency and start-up columns existed gets neither, with a warning
(its estimate is then a lower bound for latency-bound jobs);
**peak memory** is the weights (with gradients and momentum when training) plus the
activations of the largest single forward, capped by the activation budget when the config
sets ``resources.activation_memory_mb`` and the forward is chunked (:mod:`bench.memory`: the
vicinal losses, votes, certification; an attack's own batch is not).
"""
from __future__ import annotations

import functools
import logging
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any, NamedTuple

import pandas as pd
import torch
from torch import nn

from bench import plan
from bench.data import dataset_info
from bench.method import get_method, shape_group
from bench.vicinity import parse_vicinity

__all__ = ["THROUGHPUT", "SPLIT_SIZES", "Count", "Work", "certify_work", "compare", "compare_by_kind", "count_passes",
           "estimate", "jobs", "summary"]

log = logging.getLogger("bench.estimate")

THROUGHPUT = Path("reports/bench/throughput.csv")
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
    chunked: bool = True  # whether that forward runs in chunks under the activation budget (bench.memory)


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
    import copy

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
    import json

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
    from bench.adaptive import make_adaptive_attack
    from bench.attacks import AttackBudget, autoattack, make_attack
    from bench.masking import CHECK_ATTACKS, TRANSFER_ATTACK, check_attack

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
    import json

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
    import json

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
    """Every job of ``config``'s DAG (the architectures of ``arch: paper``): kind, dataset,
    method, arch, seed, its output, and the attack or table it runs."""
    from bench.tables import enabled_tables

    external = plan.external_models(config)
    found = [{"kind": "import" if r["method"] in external else "train", **r,
              "output": f"{plan.result_dir(config, r)}/model.json"}
             for r in plan.runs(config) + plan.ablation_runs(config)]
    outputs = sorted({p for t in enabled_tables(config) for p in t.inputs(config)})  # arch_of defaults to the paper's
    for path in outputs:
        bench_file = plan.benchmark_of(path)
        if bench_file is None or bench_file.endswith("/train.tsv"):
            continue
        parts = path.split("/")
        seed = next(i for i, p in enumerate(parts) if p.startswith("seed"))
        model = parts[2:seed]
        if model[0] == "ablation":
            model = model[1:4]
        dataset, method, arch = model[:3]
        name = Path(bench_file).stem
        kind, _, what = name.partition("_")
        found.append({"kind": kind, "dataset": dataset, "method": method, "arch": arch,
                      "seed": int(parts[seed][4:]), "output": path, "name": what or kind})
    return found


def work(job: dict, config: dict) -> Work:
    """The image passes of one job (see the module docstring)."""
    import json

    from bench.tables import get_table

    d, method = job["dataset"], job["method"]
    info = dataset_info(d)
    main = plan.vicinities(config, d)["main"]
    hp = get_method(method).resolve_hparams(info, config.get("hparams", {}).get(method, {}))
    if job["kind"] == "import":  # an external checkpoint: read and written, no passes
        return Work(largest_call=1)
    if job["kind"] == "train":
        t = config["train"]
        c = _train_passes(method, d, json.dumps({"hparams": hp, "vicinity": main}, sort_keys=True, default=str))
        epochs = plan.train_epochs(config, method)
        n = _split(config, d, "train", t.get("train_per_class")) * epochs
        batch = t["batch_size"] if t["batch_size"] != "recipe" else get_method(method).batch_size[shape_group(info)]
        steps = math.ceil(n / epochs / int(batch)) * epochs
        from bench.method import VicinalMethod

        # only the vicinal losses (n draws per image) run in chunks under the budget
        return Work(forwards=c.forwards * n, gradient=c.gradient * n, largest_call=int(c.largest * int(batch)),
                    train=True, chunked=issubclass(get_method(method), VicinalMethod),
                    forward_calls=c.forward_calls * steps, gradient_calls=c.gradient_calls * steps)
    if job["kind"] == "attack":
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
    c = config["certify"]
    n_test = _split(config, d, "test", c.get("test_per_class"))
    if job["kind"] == "certify":
        return certify_work(config, d, [job["name"]])
    if job["kind"] == "audit":
        a = config["audit"]
        groups = len(get_table("table1").settings(config, plan.vicinities(config, d)))
        return Work(forwards=groups * int(a["inputs"]) * int(a["samples"]), largest_call=256)
    if job["kind"] == "native":
        nat = config["native"]
        n = _split(config, d, "test", nat.get("test_per_class"))
        sm = nat["smoothing"]
        per = int(sm["n0"]) + int(sm["n"]) if get_method(method).native_certificate == "smoothing" else 2 * 3
        return Work(forwards=per * n, largest_call=4096)
    if job["kind"] == "validation":
        n = _split(config, d, "train", config["train"].get("val_per_class"))
        return Work(forwards=n * int(c["budget"]), largest_call=4096)
    raise ValueError(f"no cost model for job kind {job['kind']!r}")


def certify_work(config: dict, dataset: str, tables: list[str]) -> Work:
    """The forwards of certifying ``tables`` of one model in one job: the settings of all the
    tables on one vicinity read one stream per input (:class:`bench.certify.SampleTape`), so
    each vicinity costs its most demanding setting (typical: the largest n_min; worst: the
    budget), each rounded up to whole chunks of the stream, plus one clean forward per input."""
    from bench.certify import CHUNK
    from bench.config import min_samples
    from bench.tables import get_table

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


def throughput(device: str, path: Path = THROUGHPUT) -> pd.DataFrame:
    """The measured rows of ``device`` (a substring of the ``device`` column, case-insensitive)."""
    if not path.exists():
        raise FileNotFoundError(f"{path} is missing: run `python benchmarks/throughput.py` on the device first")
    table = pd.read_csv(path)
    rows = table[table["device"].str.contains(device, case=False, regex=False)]
    if rows.empty:
        raise ValueError(f"no throughput measured on a device matching {device!r}; measured: "
                         f"{', '.join(sorted(table['device'].unique()))}. Run `python benchmarks/throughput.py` "
                         "on it and pass its name")
    if rows["device"].nunique() > 1:
        raise ValueError(f"{device!r} matches several devices: {', '.join(sorted(rows['device'].unique()))}")
    return rows


def estimate(config: dict, device: str, path: Path = THROUGHPUT) -> pd.DataFrame:
    """One row per job: its kind, model, work, estimated hours (typical and worst case), peak
    memory (GiB) and the time limit it runs under (minutes, from ``resources``). With
    ``attacks.group: model`` a model's grouped attacks are one job (:func:`bench.plan.grouped_attacks`),
    and with ``certify.group: model`` its grouped certifications
    (:func:`bench.plan.grouped_certifications`), with the audit (:func:`bench.plan.grouped_audit`):
    the attacks' work and hours add up, the certifications' are each vicinity's most demanding
    setting over all the tables (:func:`certify_work`) plus the audit's, their peak is the
    largest, and they start one process.

    ``hours`` = ``start_hours`` (the device's ``job_start_s``) + passes × the per-image time
    (:func:`_per_image`: the measured batch's time less its one latency) + ``latency_hours`` (the
    job's ``calls`` at the measured per-call ``latency_ms``)."""
    measured = throughput(device, path)
    device_name = measured["device"].iloc[0]
    for column in ("latency_ms", "job_start_s"):
        if column not in measured or measured[column].isna().any():
            log.warning("%s has no measured %s: it counts as 0, so the estimate is too low for %s; run "
                        "`python benchmarks/throughput.py` there", device_name, column,
                        "latency-bound jobs (iterative attacks on a few images)" if column == "latency_ms" else "small jobs")
            measured = measured.assign(**{column: measured[column].fillna(0.0) if column in measured else 0.0})
    start_s = float(measured["job_start_s"].max())
    rates = measured.set_index(["arch", "shape", "phase"])
    grouped, grouped_tables = plan.grouped_attacks(config), plan.grouped_certifications(config)
    audit_grouped = plan.grouped_audit(config)
    rows = []
    for job in jobs(config):
        w = work(job, config)
        shape = shape_group(dataset_info(job["dataset"]))
        fwd = rates.loc[(job["arch"], shape, "forward")]
        grad = rates.loc[(job["arch"], shape, "train")]
        latency = (w.forward_calls * fwd["latency_ms"] + w.gradient_calls * grad["latency_ms"]) / 1000
        seconds = w.forwards * _per_image(fwd) + w.gradient * _per_image(grad) + latency
        worst = seconds if w.worst_forwards is None else w.worst_forwards * _per_image(fwd) + latency
        per_image = (grad if w.train else fwd)["activation_mib_per_image"]
        weights = fwd["parameters"] * 4 / 2**20 * (3 if w.train else 1)  # + gradients and momentum
        limit = config["resources"]["train_minutes" if job["kind"] == "train" else "eval_minutes"]
        rows.append({**{k: job.get(k) for k in ("kind", "name", "dataset", "method", "arch")},
                     "forwards": w.forwards, "gradient_passes": w.gradient,
                     "calls": w.forward_calls + w.gradient_calls, "latency_hours": latency / 3600,
                     "hours": seconds / 3600, "worst_hours": worst / 3600,
                     "weights_gib": weights / 1024, "activations_gib": w.largest_call * per_image / 1024,
                     "image_gib": per_image / 1024, "chunked": w.chunked, "limit_minutes": limit,
                     "device": device_name, "output": job["output"],
                     "job": _job_name(job["output"], grouped, grouped_tables, audit_grouped)})
    frame = pd.DataFrame(rows)
    for kind, names, label in (("attack", grouped, "attacks"), ("certify", grouped_tables, "certifications")):
        if not names:
            continue
        together = (frame["kind"] == kind) & frame["name"].isin(names)
        if kind == "certify" and audit_grouped:  # the audit runs in the certification job
            together |= frame["kind"] == "audit"
        together &= ~frame["output"].str.contains("/ablation/")
        audits = frame[together & (frame["kind"] == "audit")].set_index("job")[["forwards", "hours", "worst_hours"]]
        merged = frame[together].groupby("job", sort=False).agg(  # one job per model and seed
            {"dataset": "first", "method": "first", "arch": "first", "kind": "first", "forwards": "sum",
             "gradient_passes": "sum", "calls": "sum", "latency_hours": "sum", "hours": "sum", "worst_hours": "sum",
             "weights_gib": "max", "activations_gib": "max", "image_gib": "max", "chunked": "any",
             "limit_minutes": "first", "device": "first", "output": "first"}).reset_index()
        merged["name"], merged["kind"] = f"{label} ({len(names)})", kind
        if kind == "certify":  # the tables share each vicinity's streams: not the sum of their forwards
            for i, row in merged.iterrows():
                w = certify_work(config, row["dataset"], names)
                per_image = _per_image(rates.loc[(row["arch"], shape_group(dataset_info(row["dataset"])), "forward")])
                audit = audits.loc[row["job"]] if row["job"] in audits.index else pd.Series(0.0, audits.columns)
                merged.loc[i, ["forwards", "hours", "worst_hours"]] = [
                    w.forwards + audit["forwards"], w.forwards * per_image / 3600 + audit["hours"],
                    w.worst_forwards * per_image / 3600 + audit["worst_hours"]]
        frame = pd.concat([frame[~together], merged[frame.columns]], ignore_index=True)
    # every job (a grouped one once) starts a process: Python, torch, the engine, CUDA
    frame["start_hours"] = start_s / 3600
    frame["hours"] += frame["start_hours"]
    frame["worst_hours"] += frame["start_hours"]
    return frame.drop(columns="output")


def _per_image(rate: pd.Series) -> float:
    """Seconds per image beyond a call's latency: the throughput's batch time less one latency,
    over its batch (``images_per_s`` was measured at ``batch_size`` and includes one latency)."""
    batch_s = rate["batch_size"] / rate["images_per_s"]
    return max(batch_s - rate["latency_ms"] / 1000, 0.0) / rate["batch_size"]


def _job_name(output: str, grouped, grouped_tables, audit_grouped: bool = False) -> str | None:
    """The job's name as ``reports/job_times.csv`` writes it (its ``benchmark:`` file, from
    ``<model>/`` on, without ``.tsv``)."""
    path = plan.benchmark_of(output, grouped, grouped_tables, audit_grouped)
    return None if path is None else path.split("/benchmarks/", 1)[1][: -len(".tsv")]


def compare(frame: pd.DataFrame, times: pd.DataFrame) -> pd.DataFrame:
    """The estimate beside the measurement: one row per job of ``frame`` (:func:`estimate`) that
    ``times`` (``reports/job_times.csv``: ``job``, ``seconds``) measured, with ``estimated_s``
    (typical), ``measured_s`` and ``ratio`` = measured / estimated."""
    out = frame.dropna(subset=["job"]).merge(times[["job", "seconds"]], on="job", how="inner")
    unmatched = sorted(set(times["job"]) - set(out["job"]))
    if unmatched:  # e.g. a run with one certification job per table, compared under certify.group: model
        log.warning("%d measured jobs have no estimate under this config (grouped otherwise?), left out: %s%s",
                    len(unmatched), ", ".join(unmatched[:5]), ", ..." if len(unmatched) > 5 else "")
    out = out.assign(estimated_s=out["hours"] * 3600, measured_s=out["seconds"]).drop(columns="seconds")
    return out.assign(ratio=out["measured_s"] / out["estimated_s"])


def compare_by_kind(both: pd.DataFrame) -> pd.DataFrame:
    """Per job kind of a :func:`compare` frame: estimated and measured seconds, and their ratio."""
    by_kind = both.groupby("kind")[["estimated_s", "measured_s"]].sum()
    return by_kind.assign(ratio=by_kind["measured_s"] / by_kind["estimated_s"])


def peak_gib(frame: pd.DataFrame, budget_mb: int | str | None, memory_gib: float) -> pd.Series:
    """Each job's peak memory on a device of ``memory_gib``: weights plus the largest forward's
    activations, cut to the activation budget (``resources.activation_memory_mb``: MiB, or
    ``auto``, 80 % of what the weights leave free; never below one image per chunk)."""
    activations = frame["activations_gib"]
    if budget_mb == "auto":
        capped = activations.clip(upper=0.8 * (memory_gib - frame["weights_gib"]))
    elif budget_mb:
        capped = activations.clip(upper=float(budget_mb) / 1024)
    else:
        capped = activations
    activations = capped.where(frame["chunked"], activations)
    return frame["weights_gib"] + activations.clip(lower=frame["image_gib"])


def summary(frame: pd.DataFrame, budget_mb: int | str | None = None, retries: int = 1,
            memories: tuple[float, ...] = (11, 80)) -> pd.DataFrame:
    """Per job kind: jobs, total and largest hours (typical and worst case), whether every job
    fits ``retries + 1`` runs of its time limit (the jobs resume: a killed certification or
    attack job restarts after its last saved block or batch), the largest unchunked memory
    (``peak_gib``) and, per device memory (GiB), the largest peak under ``budget_mb`` and
    whether it fits."""
    out = []
    peaks = {m: peak_gib(frame, budget_mb, m) for m in memories}
    unchunked = frame["weights_gib"] + frame["activations_gib"]
    for kind, g in frame.groupby("kind", sort=False):
        limit_h = g["limit_minutes"].iloc[0] / 60
        row = {"kind": kind, "jobs": len(g), "forwards": g["forwards"].sum(), "gradient_passes": g["gradient_passes"].sum(),
               "hours": g["hours"].sum(), "worst_hours": g["worst_hours"].sum(),
               "longest_job_hours": g["worst_hours"].max(), "limit_hours": limit_h,
               "fits_limit": bool((g["worst_hours"] <= limit_h * (retries + 1)).all()),
               "peak_gib": unchunked[g.index].max()}
        for m in memories:
            row[f"peak_gib_{m:g}gb"] = peaks[m][g.index].max()
            row[f"fits_{m:g}gb"] = bool((peaks[m][g.index] <= m).all())
        out.append(row)
    out.append({"kind": "all", "jobs": len(frame), "forwards": frame["forwards"].sum(),
                "gradient_passes": frame["gradient_passes"].sum(), "hours": frame["hours"].sum(),
                "worst_hours": frame["worst_hours"].sum(), "longest_job_hours": frame["worst_hours"].max(),
                "peak_gib": unchunked.max()})
    return pd.DataFrame(out)


def load_config(path: str | Path) -> dict[str, Any]:
    """A config file read and validated as the Snakefile does (schema defaults filled in)."""
    import yaml
    from snakemake.utils import validate

    from bench.external import register

    config = yaml.safe_load(Path(path).read_text())
    validate(config, str(Path(__file__).resolve().parent.parent / "config" / "schema.yaml"))
    register(config)  # external checkpoints are methods of their own name, as in the Snakefile
    return config

