"""The DAG's jobs: what each Snakemake rule runs (through ``scripts/*.py``, one line each).

Every job reads the validated config and its wildcards, does one thing, and writes small tidy
files; no job reads another job's internals, only its declared outputs:

- :func:`train_job`: one model (``model.json``, ``model.safetensors``, ``log.csv``);
- :func:`certify_job`: the certification settings of one paper table for one model
  (``table<N>.json``: one row per setting; ``table<N>_inputs.csv``: one row per input);
- :func:`attack_job`: one attack (Table 9, AutoAttack, adaptive ``Vote*``, a masking check or a
  transfer) on one model (``attacks/<attack>.json``);
- :func:`audit_job`: a fresh-sample audit of Table 1's certificates (``audit.json``);
- :func:`native_job`: the method's own certificate, Cohen's CERTIFY or sound bounds (``native.json``);
- :func:`validation_job`: validation certified robust accuracy, for ``arch: sweep``.

Aggregation into the paper's tables and the report lives in :mod:`bench.aggregate`.
"""
from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from bench.certify import CertifyConfig, certify_many, classifier, summarize
from bench.data import dataset_info, load_split
from bench.io import write_csv, write_json
from bench.method import get_method, load_plugin, shape_group
from bench.train import TrainSpec, load_model, resolve_device, train
from bench.vicinity import parse_vicinity

log = logging.getLogger(__name__)

__all__ = ["ablation_override", "attack_job", "audit_job", "certify_job", "certify_settings", "native_job", "train_job",
           "validation_job", "vicinity_spec"]


def _setup(smk) -> None:
    """Logging to the rule's log file, torch threads from the rule's ``threads``, plugins."""
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s", datefmt="%H:%M:%S",
                        filename=smk.log[0] if smk.log else None, force=True)
    torch.set_num_threads(max(1, int(smk.threads)))
    for plugin in smk.config.get("plugins", []):
        load_plugin(plugin)


def vicinity_spec(config: dict, dataset: str, name: str) -> str:
    """The vicinity spec string called ``name`` (``main``, ``small``, a transform) for a dataset."""
    group = shape_group(dataset_info(dataset))
    vicinities = {**config["vicinities"]["all"], **config["vicinities"].get(group, {})}
    return vicinities[name]


def train_job(smk) -> None:
    _setup(smk)
    cfg, w = smk.config, smk.wildcards
    tcfg = cfg["train"]
    spec = TrainSpec(
        dataset=w.dataset, method=w.method, arch=w.arch, seed=int(w.seed),
        epochs=int(tcfg["epochs"]), batch_size=int(tcfg["batch_size"]),
        vicinity=vicinity_spec(cfg, w.dataset, "main"),
        hparams={**cfg.get("hparams", {}).get(w.method, {}), **ablation_override(w)},
        train_per_class=tcfg.get("train_per_class"), val_per_class=tcfg.get("val_per_class"),
        device=cfg.get("device"), data_root=cfg["data"]["root"], plugins=list(cfg.get("plugins", [])),
    )
    train(spec, Path(smk.output.model).parent, progress=False)


def certify_settings(config: dict, table: int, dataset: str) -> list[dict[str, Any]]:
    """The certification settings (vicinity, κ, α, procedure) behind one paper table."""
    c = config["certify"]
    procs = c["procedures"]

    def row(vicinity: str, kappa: float, alpha: float, procedure: str) -> dict:
        return {"vicinity": vicinity, "spec": vicinity_spec(config, dataset, vicinity),
                "kappa": kappa, "alpha": alpha, "procedure": procedure}

    if table == 1:
        return [row("main", c["kappa"], c["alpha"], p) for p in procs]
    if table == 10:
        return [row("small", c["kappa"], c["alpha"], p) for p in procs]
    if table == 11:
        return [row("main", k, c["alpha"], p) for k in c["kappas"] if k > 0 for p in procs]
    if table == 12:
        return [row("main", c["kappa"], round(1 - conf, 10), p) for conf in c["confidences"] for p in procs]
    if table == 2:
        return [row(t, c["kappa"], c["alpha"], p) for t in c["transforms"] for p in procs]
    raise ValueError(f"no certification settings for table {table}")


def _identity(w) -> dict:
    """The keys every result row carries; ablation runs add the varied hyperparameter."""
    out = {"method": w.method, "dataset": w.dataset, "arch": w.arch, "seed": int(w.seed)}
    if "hparam" in w.keys():
        out.update(hparam=w.hparam, value=float(w.value))
    return out


def ablation_override(w) -> dict:
    """``{hparam: value}`` for an ablation run's wildcards, else ``{}``."""
    return {w.hparam: float(w.value)} if "hparam" in w.keys() else {}


def certify_job(smk) -> None:
    """All settings of one table for one model: certification of the base classifier h."""
    _setup(smk)
    cfg, w = smk.config, smk.wildcards
    table = int(w.table)
    device = resolve_device(cfg.get("device"))
    model = load_model(Path(smk.input.model).parent, device)
    test = load_split(w.dataset, "test", cfg["data"]["root"],
                      subset_per_class=cfg["certify"].get("test_per_class")).to(device)
    rows, frames = [], []
    settings = certify_settings(cfg, table, w.dataset)
    # Settings on one vicinity share its sample streams (bench.certify.SampleTape); the paper's
    # procedure runs first in each group, so its `seconds` is its cost alone (Table 4).
    groups: dict[str, list[dict]] = {}
    for s in sorted(settings, key=lambda s: s["procedure"] != "paper"):
        groups.setdefault(s["spec"], []).append(s)
    for i, (spec, group) in enumerate(groups.items()):
        confs = [CertifyConfig(kappa=s["kappa"], alpha=s["alpha"], procedure=s["procedure"],
                               budget=int(cfg["certify"]["budget"])) for s in group]
        results, clean = certify_many(classifier(model), test.images, parse_vicinity(spec),
                                      test.info.num_classes, confs, seed=int(w.seed) + i, progress=False)
        for s, result in zip(group, results):
            frame = result.frame(test.labels, clean)
            rows.append({**_identity(w), "table": table, **s, **summarize(frame), "seconds": result.seconds,
                         "samples_drawn": result.drawn, "stream": f"shared by {len(group)} settings"})
            frames.append(frame.assign(**{k: s[k] for k in ("vicinity", "kappa", "alpha", "procedure")}))
    if table == 11 and 0 in cfg["certify"]["kappas"]:
        rows.append({**_identity(w), "table": table, **_deterministic(cfg, w, model, test)})
    write_csv(pd.concat(frames, ignore_index=True), smk.output.inputs)
    write_json(rows, smk.output.summary)


def _deterministic(cfg, w, model, test) -> dict:
    """κ = 0 (Table 11's first column): certified only by sound IBP bounds, for IBP-trained
    models (:func:`bench.native.bound_certify`); other methods get no value ("–")."""
    from bench.native import bound_certify

    spec = vicinity_spec(cfg, w.dataset, "main")
    base = {"vicinity": "main", "spec": spec, "kappa": 0.0, "alpha": 0.0, "procedure": "ibp_bounds",
            "inputs": len(test)}
    if w.method != "ibp":
        return {**base, "standard_accuracy": None, "certified_robustness_rate": None,
                "certified_robust_accuracy": None}
    start = time.perf_counter()
    metrics = bound_certify(model, test.images, test.labels, parse_vicinity(spec).eps, "IBP")
    return {**base, **metrics, "seconds": time.perf_counter() - start}


def _method_instance(run_dir: Path, w, device) -> tuple[torch.nn.Module, Any]:
    """The trained model and its method object (the method's own prediction, vote inputs)."""
    model = load_model(run_dir, device)
    meta = json.loads((run_dir / "model.json").read_text())
    method = get_method(w.method)(meta["hparams"], dataset_info(w.dataset), parse_vicinity(meta["vicinity"]),
                                  torch.Generator(device=device).manual_seed(int(w.seed)))
    return model, method


def attack_job(smk) -> None:
    """One attack on one model: the defence success rate under the method's own prediction.

    The ``attack`` wildcard names a Table 9 attack or ``AutoAttack`` (paper protocol: crafted on
    the network), ``Vote<name>`` (adaptive: crafted on the method's vote, :mod:`bench.adaptive`),
    or a gradient-masking check attack (:mod:`bench.masking`). With a ``source`` input (the
    ``transfer`` rule) the examples are crafted by PGD on the source model instead.
    """
    from bench.adaptive import make_adaptive_attack
    from bench.attacks import LABELS, AttackBudget, autoattack, autoattack_settings, make_attack
    from bench.masking import CHECK_ATTACKS, check_attack

    _setup(smk)
    cfg, w = smk.config, smk.wildcards
    device = resolve_device(cfg.get("device"))
    model, method = _method_instance(Path(smk.input.model).parent, w, device)
    info = dataset_info(w.dataset)
    acfg = cfg["attacks"]
    test = load_split(w.dataset, "test", cfg["data"]["root"], subset_per_class=acfg.get("test_per_class")).to(device)
    eps = parse_vicinity(vicinity_spec(cfg, w.dataset, "main")).eps
    budget = AttackBudget(linf=eps, num_classes=info.num_classes, seed=int(w.seed), channels=info.channels,
                          square_queries=int(acfg["square_queries"]))
    torch.manual_seed(int(w.seed))
    start = time.perf_counter()
    name, protocol = getattr(w, "attack", "TransferFromERM"), "paper"
    if "source" in smk.input.keys():
        source = load_model(Path(smk.input.source).parent, device).eval()
        attack = make_attack("PGD", source, budget)
        settings, protocol = {"linf": budget.linf, "crafted_on": smk.input.source}, "transfer"
    elif name == "AutoAttack":
        attack = autoattack(model, budget, steps=int(acfg["autoattack_steps"]), queries=int(acfg["square_queries"]))
        settings = autoattack_settings(budget, int(acfg["autoattack_steps"]), int(acfg["square_queries"]))
    elif name.startswith("Vote"):
        name, protocol, a = name[len("Vote"):], "adaptive", cfg["adaptive"]
        attack, settings = make_adaptive_attack(name, model, method, budget, vote_samples=int(a["vote_samples"]),
                                                eot_iter=int(a["eot_iter"]), steps=int(a["steps"]))
    elif name in CHECK_ATTACKS:
        m = cfg["masking"]
        attack, settings = check_attack(name, model, budget, more_steps=int(m["more_steps"]),
                                        unbounded_steps=int(m["unbounded_steps"]))
        protocol = "check"
    else:
        attack = make_attack(name, model, budget)
        settings = {"linf": budget.linf, "l2": budget.l2, "gaussian_std": budget.gaussian_std,
                    **({"queries": budget.square_queries} if name == "Square" else {})}
    model.eval()
    correct = 0
    for images, labels in test.batches(int(acfg["batch_size"])):
        adv = attack(images, labels)
        correct += int((method.predict(model, adv) == labels).sum())
    write_json({**_identity(w), "attack": name, "label": LABELS.get(name, name), "protocol": protocol,
                "inputs": len(test), "defence_success_rate": 100.0 * correct / len(test),
                "inference": "vote" if method.vote else "argmax", "settings": settings,
                "seconds": time.perf_counter() - start}, smk.output.result)


def audit_job(smk) -> None:
    """Audit the Table 1 certificates of one model (:mod:`bench.audit`), per procedure."""
    from bench.audit import audit

    _setup(smk)
    cfg, w = smk.config, smk.wildcards
    a = cfg["audit"]
    device = resolve_device(cfg.get("device"))
    model = load_model(Path(smk.input.model).parent, device)
    test = load_split(w.dataset, "test", cfg["data"]["root"],
                      subset_per_class=cfg["certify"].get("test_per_class")).to(device)
    inputs = pd.read_csv(smk.input.certified)
    inputs["index"] = inputs.groupby(["vicinity", "kappa", "alpha", "procedure"]).cumcount()
    rows = []
    for (procedure, kappa, spec_name), group in inputs[inputs["outcome"].eq("certified")].groupby(
            ["procedure", "kappa", "vicinity"]):
        # a seeded random sample of the certified inputs: an unbiased estimate of the wrong rate
        chosen = group.sample(n=min(int(a["inputs"]), len(group)), random_state=int(w.seed)).sort_values("index")
        idx = torch.as_tensor(chosen["index"].to_numpy())
        frame = audit(classifier(model), test.images[idx.to(device)], torch.as_tensor(chosen["prediction"].to_numpy()),
                      parse_vicinity(vicinity_spec(cfg, w.dataset, spec_name)), float(kappa),
                      samples=int(a["samples"]), confidence=float(a["confidence"]), seed=int(w.seed) + 1000)
        rows.append({**_identity(w), "procedure": procedure, "kappa": float(kappa), "vicinity": spec_name,
                     "certified": int(len(group)), "audited": int(len(chosen)), "wrong": int(frame["wrong"].sum()),
                     "min_rate": float(frame["rate"].min()) if len(frame) else None,
                     "samples": int(a["samples"]), "confidence": float(a["confidence"])})
    write_json(rows, smk.output.result)


def native_job(smk) -> None:
    """The method's own certificate (:mod:`bench.native`): Cohen's CERTIFY for RS, sound
    auto_LiRPA bounds (IBP, CROWN-IBP) for IBP."""
    from bench.native import bound_certify, certified_accuracy, smoothing_certify

    _setup(smk)
    cfg, w = smk.config, smk.wildcards
    n_cfg = cfg["native"]
    device = resolve_device(cfg.get("device"))
    model, method = _method_instance(Path(smk.input.model).parent, w, device)
    test = load_split(w.dataset, "test", cfg["data"]["root"], subset_per_class=n_cfg.get("test_per_class")).to(device)
    rows = []
    start = time.perf_counter()
    if method.native_certificate == "smoothing":
        s = n_cfg["smoothing"]
        sigma = float(method.hparams["sigma"])
        frame = smoothing_certify(model, test.images, sigma, test.info.num_classes, n0=int(s["n0"]), n=int(s["n"]),
                                  alpha=float(s["alpha"]), seed=int(w.seed))
        for r, acc in certified_accuracy(frame, test.labels, [float(x) for x in s["radii"]]).items():
            rows.append({**_identity(w), "certificate": "CERTIFY (Cohen et al. 2019)", "norm": "L2", "radius": r,
                         "metric": "certified_accuracy", "value": acc, "inputs": len(test),
                         "settings": {"sigma": sigma, "n0": s["n0"], "n": s["n"], "alpha": s["alpha"]}})
    elif method.native_certificate == "bounds":
        eps = parse_vicinity(vicinity_spec(cfg, w.dataset, "main")).eps
        for bound in n_cfg["bounds"]:
            metrics = bound_certify(model, test.images, test.labels, eps, bound)
            rows.append({**_identity(w), "certificate": f"{bound} bounds (auto_LiRPA), κ = 0", "norm": "Linf",
                         "radius": eps, "metric": "certified_robust_accuracy",
                         "value": metrics["certified_robust_accuracy"], "inputs": len(test), "settings": {}})
    else:
        raise ValueError(f"method '{w.method}' declares no native certificate")
    for r in rows:
        r["seconds"] = time.perf_counter() - start
    write_json(rows, smk.output.result)


def validation_job(smk) -> None:
    """Certified robust accuracy on the validation split (main vicinity, first procedure), the
    score by which ``arch: sweep`` picks each method's architecture."""
    _setup(smk)
    cfg, w = smk.config, smk.wildcards
    c = cfg["certify"]
    device = resolve_device(cfg.get("device"))
    model = load_model(Path(smk.input.model).parent, device)
    val = load_split(w.dataset, "val", cfg["data"]["root"], subset_per_class=cfg["train"].get("val_per_class")).to(device)
    conf = CertifyConfig(kappa=c["kappa"], alpha=c["alpha"], procedure=c["procedures"][0], budget=int(c["budget"]))
    (result,), clean = certify_many(classifier(model), val.images, parse_vicinity(vicinity_spec(cfg, w.dataset, "main")),
                                    val.info.num_classes, [conf], seed=int(w.seed), progress=False)
    write_json({**_identity(w), "split": "val", "procedure": conf.procedure,
                **summarize(result.frame(val.labels, clean))}, smk.output.result)
