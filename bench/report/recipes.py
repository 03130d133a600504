"""The training recipe of every method on each data shape, read from the code, with a source
for every value (``python -m bench methods --recipes``; README, docs/methods.md and docs/recipes.csv show it).

Rule for a value's source: the paper's text where it speaks; the paper's authors' code
(``soumission-anonyme/probabilistic-robustness-accuracy``) where the paper is silent; a
baseline's original code for the baseline's own settings. The values are *read* from the
objects the training uses (the method's resolved hyperparameters, its optimiser and scheduler
as built, :mod:`bench.training.augment`'s recipe, the method's batch size), so the table cannot drift
from the code; the sources are declared next to each value (a method's ``sources``, the
shared harness's :data:`HARNESS_SOURCES`), and a test requires one for every value.
"""
from __future__ import annotations

import pandas as pd
import torch

from bench.data import dataset_info
from bench.models import create_model
from bench.training import available_methods, get_method, shape_group
from bench.training.augment import resolve as augmentation

__all__ = ["HARNESS_SOURCES", "recipe_table"]

#: where the shared recipe's values come from (every method without its own optimiser)
HARNESS_SOURCES = {
    "optimizer": "paper Appendix C.1: Adadelta (lr 1.0) for the Basic ConvNet on MNIST; SGD, lr 0.01, weight decay "
                 "3.5e-3 otherwise",
    "momentum": "authors' code: experiments/e3.py 'momentum':0.9 and checkpoints/configs.json (paper silent; "
                "advbench's sgd_momentum 0.9, where the recipe comes from)",
    "lr_schedule": "paper Appendix C.1: divided by 10 at epochs 55, 75 and 90 (SGD); none for Adadelta",
    "batch_size": "authors' code: experiments/e1.py, e2.py, e3.py 'batch_size':32 (paper silent); used with "
                  "train.batch_size: recipe",
    "augmentation": "authors' code: utils/misc.py RandomCrop(32, padding=4), RandomHorizontalFlip() for CIFAR-10 "
                    "only (as TRADES, MART, Cohen et al.); none for SVHN and 28x28 (bench.training.augment)",
    "epochs": "paper Appendix C.1: 150 (config train.epochs; the authors' CIFAR-10 script runs 115)",
}
#: a dataset of each shape group, to resolve shape-dependent values, and Fashion-MNIST, whose
#: budgets are its own (the offline default's dataset)
EXAMPLE = {"28x28": "mnist", "28x28 fashion_mnist": "fashion_mnist", "32x32": "cifar10"}


def _optimizer_rows(method_cls, dataset: str, epochs: int) -> list[tuple[str, object]]:
    from bench.workflow.plan import best_arch

    info = dataset_info(dataset)
    arch = best_arch(method_cls.key, dataset)
    method = method_cls(method_cls.resolve_hparams(info), info, None, torch.Generator())
    method.epochs = epochs  # schedules that scale with the run's length (IBP's) show that run's epochs
    model = create_model(arch, info)
    opt, scheduler = method.optimizer(model, arch)
    group = opt.param_groups[0]
    rows = [("arch", arch), ("optimizer", type(opt).__name__), ("lr", group["lr"])]
    if "momentum" in group:
        rows.append(("momentum", group["momentum"]))
    rows.append(("weight_decay", group.get("weight_decay", 0.0)))
    milestones = sorted(getattr(scheduler, "milestones", {}))
    rows.append(("lr_schedule", f"x{scheduler.gamma:g} at epochs {', '.join(map(str, milestones))} of {epochs}"
                 if milestones else "constant"))
    return rows


def recipe_table(methods: list[str] | None = None, epochs: int | dict[str, int] = 150) -> pd.DataFrame:
    """One row per (method, shape, setting): its value as the training code uses it and its source,
    for a run of ``epochs`` epochs (default: the paper's 150; a dict: each method's own)."""
    rows = []
    for key in methods or available_methods():
        n_epochs = epochs[key] if isinstance(epochs, dict) else epochs
        cls = get_method(key)
        own_optimizer = "optimizer" in vars(cls)
        for shape, dataset in EXAMPLE.items():
            info = dataset_info(dataset)
            hparams = cls.resolve_hparams(info)
            values = [(k, v) for k, v in _optimizer_rows(cls, dataset, n_epochs) if k not in hparams]  # shown below
            values += [("batch_size", cls.batch_size[shape_group(info)]),
                       ("augmentation", f"{dataset}: {augmentation('recipe', info)}"),
                       ("epochs", n_epochs)]
            for name, value in values:
                if name == "arch":
                    source = "paper Appendix C.1 / Table 5 (the architecture each method is reported on)"
                elif own_optimizer and name in ("optimizer", "lr", "momentum", "weight_decay", "lr_schedule"):
                    source = cls.sources.get(name, "")
                elif name in ("lr", "weight_decay"):
                    source = HARNESS_SOURCES["optimizer"]
                elif name == "batch_size" and "batch_size" in cls.sources:
                    source = cls.sources["batch_size"]
                else:
                    source = HARNESS_SOURCES.get(name, "")
                rows.append({"method": key, "shape": shape, "setting": name, "value": value, "source": source,
                             "kind": "own optimiser" if own_optimizer and name != "arch" else "shared"})
            for name, value in hparams.items():
                rows.append({"method": key, "shape": shape, "setting": name, "value": value,
                             "source": cls.sources.get(name, ""), "kind": "hyperparameter"})
    frame = pd.DataFrame(rows)
    frame["value"] = frame["value"].map(_show)
    return frame


def _show(value) -> str:
    if isinstance(value, float):
        return f"{value:.6g}"
    return str(value)
