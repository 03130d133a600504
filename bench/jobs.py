"""The DAG's jobs: what each Snakemake rule runs (through ``scripts/*.py``, one line each).

Every job reads the validated config and its wildcards, does one thing, and writes small tidy
files; no job reads another job's internals, only its declared outputs:

- :func:`train_job`: one model (``model.json``, ``model.safetensors``, ``log.csv``);
- :func:`certify_job`: the certification settings of one paper table for one model
  (``table<N>.json``: one row per setting; ``table<N>_inputs.csv``: one row per input);
- :func:`attack_job`: one attack (or AutoAttack) on one model (``<attack>.json``).

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

from bench.certify import CertifyConfig, certify, classifier, summarize
from bench.data import dataset_info, load_split
from bench.io import write_csv, write_json
from bench.method import get_method, load_plugin, shape_group
from bench.lirpa import bounded_model, margin_bounds
from bench.train import TrainSpec, load_model, resolve_device, train
from bench.vicinity import parse_vicinity

log = logging.getLogger(__name__)

__all__ = ["attack_job", "certify_job", "certify_settings", "train_job", "vicinity_spec"]


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
        hparams=dict(cfg.get("hparams", {}).get(w.method, {})),
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
    return {"method": w.method, "dataset": w.dataset, "arch": w.arch, "seed": int(w.seed)}


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
    for i, s in enumerate(certify_settings(cfg, table, w.dataset)):
        conf = CertifyConfig(kappa=s["kappa"], alpha=s["alpha"], procedure=s["procedure"],
                             budget=int(cfg["certify"]["budget"]))
        start = time.perf_counter()
        result, clean = certify(classifier(model), test.images, parse_vicinity(s["spec"]),
                                test.info.num_classes, conf, seed=int(w.seed) + i, progress=False)
        seconds = time.perf_counter() - start
        frame = result.frame(test.labels, clean)
        rows.append({**_identity(w), "table": table, **s, **summarize(frame), "seconds": seconds})
        frames.append(frame.assign(**{k: s[k] for k in ("vicinity", "kappa", "alpha", "procedure")}))
    if table == 11 and 0 in cfg["certify"]["kappas"]:
        rows.append({**_identity(w), "table": table, **_deterministic(cfg, w, model, test)})
    write_csv(pd.concat(frames, ignore_index=True), smk.output.inputs)
    write_json(rows, smk.output.summary)


def _deterministic(cfg, w, model, test) -> dict:
    """κ = 0 (Table 11's first column): certified only by sound bounds, for IBP-trained models.

    An input is certified when the IBP lower bound of every margin z_y − z_j over the L∞ box is
    positive (its clean prediction then cannot change); other methods get no value ("–").
    """
    spec = vicinity_spec(cfg, w.dataset, "main")
    base = {"vicinity": "main", "spec": spec, "kappa": 0.0, "alpha": 0.0, "procedure": "ibp_bounds",
            "inputs": len(test)}
    if w.method != "ibp":
        return {**base, "standard_accuracy": None, "certified_robustness_rate": None,
                "certified_robust_accuracy": None}
    eps = parse_vicinity(spec).eps
    bounded = bounded_model(model, test.images[:2])
    bounded.eval()
    start = time.perf_counter()
    certified, correct = [], []
    with torch.no_grad():
        for images, labels in test.batches(256):
            pred = model(images).argmax(1)
            _, lb = margin_bounds(bounded, images, pred, eps, "IBP")
            certified.append((lb > 0).all(1))
            correct.append(pred == labels)
    certified, correct = torch.cat(certified), torch.cat(correct)
    return {**base, "standard_accuracy": 100.0 * correct.float().mean().item(),
            "certified_robustness_rate": 100.0 * certified.float().mean().item(),
            "certified_robust_accuracy": 100.0 * (certified & correct).float().mean().item(),
            "seconds": time.perf_counter() - start}


def attack_job(smk) -> None:
    """One attack on one model: the defence success rate under the method's own prediction."""
    from bench.attacks import LABELS, AttackBudget, autoattack, autoattack_settings, make_attack

    _setup(smk)
    cfg, w = smk.config, smk.wildcards
    device = resolve_device(cfg.get("device"))
    run_dir = Path(smk.input.model).parent
    model = load_model(run_dir, device)
    meta = json.loads((run_dir / "model.json").read_text())
    info = dataset_info(w.dataset)
    cls = get_method(w.method)
    method = cls(meta["hparams"], info, parse_vicinity(meta["vicinity"]),
                 torch.Generator(device=device).manual_seed(int(w.seed)))
    acfg = cfg["attacks"]
    test = load_split(w.dataset, "test", cfg["data"]["root"], subset_per_class=acfg.get("test_per_class")).to(device)
    eps = parse_vicinity(vicinity_spec(cfg, w.dataset, "main")).eps
    budget = AttackBudget(linf=eps, num_classes=info.num_classes, seed=int(w.seed), channels=info.channels)
    torch.manual_seed(int(w.seed))
    start = time.perf_counter()
    if w.attack == "AutoAttack":
        attack = autoattack(model, budget, steps=int(acfg["autoattack_steps"]), queries=int(acfg["square_queries"]))
        settings = autoattack_settings(budget, int(acfg["autoattack_steps"]), int(acfg["square_queries"]))
    else:
        attack = make_attack(w.attack, model, budget)
        settings = {"linf": budget.linf, "l2": budget.l2, "gaussian_std": budget.gaussian_std}
    model.eval()
    correct = 0
    for images, labels in test.batches(int(acfg["batch_size"])):
        adv = attack(images, labels)
        correct += int((method.predict(model, adv) == labels).sum())
    write_json({**_identity(w), "attack": w.attack, "label": LABELS.get(w.attack, w.attack),
                "inputs": len(test), "defence_success_rate": 100.0 * correct / len(test),
                "inference": "vote" if cls.vote else "argmax", "settings": settings,
                "seconds": time.perf_counter() - start}, smk.output.result)
