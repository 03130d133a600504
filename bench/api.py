"""Library entry point: certify or attack any model with the benchmark's engine.

- :func:`certify`: certified probabilistic robustness of each input (the paper's Algorithm 2,
  batched: :func:`bench.certification.engine.certify_many`) and the table's three metrics with exact 95 %
  Clopper–Pearson intervals (:func:`bench.stats.clopper_pearson`);
- :func:`attack`: robust accuracy under a Table 9 attack or AutoAttack (:mod:`bench.evaluation.attacks`),
  or an adaptive attack on a method's vote (:mod:`bench.evaluation.adaptive`), with its interval,
  and a progress bar over its batches (tqdm, on stderr);
- :func:`load_split`: a dataset split as tensors (:func:`bench.data.load_split`), kept under the
  API's data root (:func:`default_data_root`: ``$BENCH_DATA``, else a user cache directory, never
  the working directory).

Conventions, the benchmark's own: images are float tensors N×C×H×W with values in [0,1] (or a
:class:`bench.data.Split`); normalisation (mean/std) belongs inside the model, because vicinities
and ``eps`` are in pixel units of [0,1] images (``8/255`` = 8 grey levels). A model is an
``nn.Module`` returning logits N×K; a prediction rule is any callable mapping such a batch to N
integer classes (a vote, say). Rates and interval bounds are in percent. Nothing is moved between
devices: put the model and the images on one. Example: docs/own_model.md.
"""
from __future__ import annotations

import itertools
import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Union

import numpy as np
import pandas as pd
import torch
from torch import nn
from tqdm.auto import tqdm

from bench.certification.engine import CertifyConfig, certify_many, check_predictions, classifier, validate_num_classes
from bench.certification.metrics import per_input
from bench.certification.vicinity import Vicinity, parse_vicinity
from bench.data import Split, default_root
from bench.stats import LEVEL, clopper_pearson

__all__ = ["AttackResult", "Certificate", "attack", "certify", "check_images", "check_labels", "default_data_root",
           "load_split"]

log = logging.getLogger(__name__)

#: an ``nn.Module`` returning logits N×K, or a callable returning N integer classes
ModelOrPredict = Union[nn.Module, Callable[[torch.Tensor], torch.Tensor]]


@dataclass
class Certificate:
    """What :func:`certify` found. ``frame``: one row per input (label, clean_prediction, input,
    prediction, samples, count, p_certify, p_not_robust, outcome). ``metrics``: one row per metric
    (standard_accuracy and certified_robust_accuracy only with labels) with successes, inputs,
    percent and the exact 95 % interval low..high (percent)."""

    frame: pd.DataFrame
    metrics: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)


@dataclass
class AttackResult:
    """What :func:`attack` found. ``frame``: one row per input (label, clean_prediction,
    adversarial_prediction, clean_correct, adversarial_correct, correct, perturbation: the L∞
    distance moved, pixel units). ``metrics``: clean_accuracy and robust_accuracy rows as in
    :class:`Certificate`."""

    frame: pd.DataFrame
    metrics: pd.DataFrame
    settings: dict[str, Any] = field(default_factory=dict)

    @property
    def correct(self) -> np.ndarray:
        """Per input: right on the clean image and on the attacked one (bool, length N)."""
        return self.frame["correct"].to_numpy(bool)

    @property
    def robust_accuracy(self) -> float:
        """Percent of inputs the attack did not break (right on both), the interval's centre."""
        return float(self.metrics.at["robust_accuracy", "percent"])


def default_data_root() -> Path:
    """Where :func:`load_split` keeps datasets when given no root: ``$BENCH_DATA`` if set (the
    documented data root, :func:`bench.data.default_root`), else the user's cache directory,
    ``$XDG_CACHE_HOME/cpr-bench/data`` (``~/.cache/cpr-bench/data`` when that is unset or not an
    absolute path, as the XDG specification says).

    Not ``./data``, the command line's and the demo's default: a script that uses the API runs
    from anywhere, and would leave a copy of every dataset in each folder it was run from. The
    DAG is unaffected: it passes its config's ``data.root``.
    """
    if os.environ.get("BENCH_DATA"):
        return default_root()
    cache = os.environ.get("XDG_CACHE_HOME", "")
    base = Path(cache) if cache and Path(cache).is_absolute() else Path.home() / ".cache"
    return base / "cpr-bench" / "data"


def load_split(name: str, split: str, root: str | Path | None = None, *, subset_per_class: int | None = None,
               seed: int = 0, download: bool = True, verify_checksums: bool = True) -> Split:
    """:func:`bench.data.load_split` (one split of dataset ``name`` as float tensors in [0,1],
    ``subset_per_class`` images of each class, the paper's seeded 8:2 train/validation cut), with
    the API's data root, :func:`default_data_root`, when ``root`` is None."""
    from bench.data import load_split as load

    return load(name, split, default_data_root() if root is None else root, subset_per_class=subset_per_class,
                seed=seed, download=download, verify_checksums=verify_checksums)


def check_images(images: object, model: object = None) -> torch.Tensor:
    """Refuse anything but a non-empty float N×C×H×W tensor with values in [0,1] on the device of
    ``model``'s parameters and buffers (if ``model`` is an ``nn.Module``); returns ``images``."""
    if not isinstance(images, torch.Tensor):
        raise TypeError(f"images must be a torch.Tensor N×C×H×W or a bench.data.Split; got {type(images).__name__}")
    if images.ndim != 4 or len(images) == 0:
        raise ValueError(f"images must be a non-empty batch of shape N×C×H×W; got shape {tuple(images.shape)} "
                         f"(one image: x.unsqueeze(0); grayscale N×H×W: x.unsqueeze(1))")
    if not images.dtype.is_floating_point:
        raise ValueError(f"images must be a float tensor with values in [0,1]; got dtype {images.dtype} "
                         f"(8-bit pixels: images.float() / 255)")
    if isinstance(model, nn.Module):
        devices = sorted({str(t.device) for t in itertools.chain(model.parameters(), model.buffers())}
                         - {str(images.device)})
        if devices:
            raise ValueError(f"the model's parameters are on {', '.join(devices)} but the images are on "
                             f"{images.device}; put both on one device, e.g. model.to('{images.device}') "
                             f"or images.to('{devices[0]}')")
    low, high = float(images.min()), float(images.max())
    if not (0.0 <= low and high <= 1.0):  # also refuses NaN
        raise ValueError(f"images must hold values in [0,1]; found min {low:g}, max {high:g}. Pass pixels "
                         f"scaled to [0,1] and put any normalisation (mean/std) inside the model, e.g. as its "
                         f"first layer: the vicinity and eps are in pixel units of [0,1] images")
    return images


def check_labels(labels: object, n: int, num_classes: int, device: torch.device) -> torch.Tensor:
    """``labels`` (tensor, array or list) as a long tensor on ``device``, or a ValueError unless
    it holds ``n`` integer classes in [0, num_classes)."""
    labels = torch.as_tensor(labels)
    if labels.ndim != 1 or len(labels) != n:
        raise ValueError(f"labels must be one integer class per image, shape ({n},); got shape {tuple(labels.shape)}")
    if labels.dtype == torch.bool or labels.dtype.is_floating_point or labels.dtype.is_complex:
        raise ValueError(f"labels must be integer class indices; got dtype {labels.dtype} (e.g. labels.long())")
    bad = ((labels < 0) | (labels >= num_classes)).nonzero()
    if len(bad):
        i = int(bad[0, 0])
        raise ValueError(f"label {int(labels[i])} of input {i} is outside [0, {num_classes}) "
                         f"(num_classes = {num_classes})")
    return labels.to(device=device, dtype=torch.long)


def _inputs(model: object, images: object, labels: object, num_classes: int | None):
    """Checked (images, labels or None, num_classes); a Split brings its labels and classes."""
    split = images if isinstance(images, Split) else None
    if split is not None:
        if labels is not None:
            raise ValueError("labels come with the Split; pass labels only beside an images tensor")
        images, labels = split.images, split.labels
    if not callable(model):
        raise TypeError(f"expected an nn.Module or a prediction rule (a callable); got {type(model).__name__}")
    images = check_images(images, model)
    if num_classes is None and isinstance(model, nn.Module):
        with torch.inference_mode():
            was_training = model.training
            out = model.eval()(images[:1])
            model.train(was_training)
        if not isinstance(out, torch.Tensor) or out.ndim != 2:
            raise ValueError(f"the model returned {getattr(out, 'shape', type(out).__name__)} for one image; "
                             f"expected logits of shape (1, num_classes)")
        num_classes = out.shape[1]
        if split is not None and num_classes != split.info.num_classes:
            # more logits than classes would run silently: a class the data never has could be certified
            raise ValueError(f"the model returns {num_classes} logits per image, but {split.info.name} has "
                             f"{split.info.num_classes} classes: a model for this dataset returns "
                             f"{split.info.num_classes}")
    elif num_classes is None and split is not None:
        num_classes = split.info.num_classes
    elif num_classes is None:
        raise ValueError("a prediction rule's number of classes cannot be read off its output: pass num_classes=")
    num_classes = validate_num_classes(num_classes)
    if labels is not None:
        labels = check_labels(labels, len(images), num_classes, images.device)
    return images, labels, num_classes


def _metrics(flags: dict[str, np.ndarray]) -> pd.DataFrame:
    """One row per metric: successes of inputs, percent, exact Clopper–Pearson interval (percent)."""
    rows = {}
    for name, ok in flags.items():
        k, n = int(np.sum(ok)), len(ok)
        low, high = clopper_pearson(k, n, LEVEL)
        rows[name] = {"successes": k, "inputs": n, "percent": 100.0 * k / n, "low": low, "high": high}
    return pd.DataFrame.from_dict(rows, orient="index").rename_axis("metric")


def certify(model_or_predict: ModelOrPredict, images: torch.Tensor | Split, labels: object = None,
            vicinity: str | Vicinity = "linf:0.1", kappa: float = 0.01, alpha: float = 0.01,
            procedure: str = "paper", budget: int = 20_000, seed: int = 0, batch_size: int | None = None,
            num_classes: int | None = None, *, progress: bool = False) -> Certificate:
    """Certify each image: is the prediction the same on more than a 1−κ share of its vicinity?

    Draws vicinity samples (``vicinity``: a :func:`bench.certification.vicinity.parse_vicinity` spec such as
    ``"linf:8/255"``, eps in pixel units of [0,1] images) on the images' device, seeded by
    ``seed``, in forward batches of ``batch_size`` (None: 4096 on CUDA, 256 on the CPU), until
    the sequential test ``procedure`` (``paper``: Algorithm 2's binomial tests; ``mixture``,
    ``sprt``: valid sequential tests) accepts p > 1−κ (``certified``) or rejects it at level
    ``alpha``, or ``budget`` samples are spent (``undecided``: not certified). A module is
    classified by the argmax of its logits in eval mode (it is left in eval mode); a callable is
    used as it is, and needs ``num_classes`` (a Split brings its own). Metrics: the definitions of
    :func:`bench.certification.engine.summarize` (Table 8), as counts with intervals.
    """
    images, labels, k = _inputs(model_or_predict, images, labels, num_classes)
    vic = parse_vicinity(vicinity) if isinstance(vicinity, str) else vicinity
    predict = classifier(model_or_predict) if isinstance(model_or_predict, nn.Module) else model_or_predict
    config = CertifyConfig(kappa=kappa, alpha=alpha, procedure=procedure, budget=budget, batch_size=batch_size)
    (result,), clean = certify_many(predict, images, vic, k, [config], seed=seed, progress=progress)
    frame = result.frame(None if labels is None else labels.cpu(), clean)
    flags = {m: v.to_numpy() for m, v in per_input(frame, labelled=labels is not None).items()}
    settings = {"vicinity": getattr(vic, "spec", repr(vic)), "kappa": kappa, "alpha": alpha, "procedure": procedure,
                "budget": int(budget), "seed": seed, "num_classes": k, "drawn": result.drawn,
                "seconds": result.seconds, "mean_samples": float(frame["samples"].mean())}
    metrics = _metrics(flags)
    log.info("certified %d inputs in %.1f s: %s", len(frame), result.seconds,
             ", ".join(f"{m} {r.percent:.1f}% [{r.low:.1f}, {r.high:.1f}]" for m, r in metrics.iterrows()))
    return Certificate(frame, metrics, settings)


def attack(model: nn.Module, images: torch.Tensor | Split, labels: object = None, attack: str = "PGD",
           eps: float = 8 / 255, seed: int = 0, batch_size: int = 256, num_classes: int | None = None, *,
           predict: Callable[[torch.Tensor], torch.Tensor] | None = None, method: Any = None,
           steps: int = 10, eot_iter: int = 2, vote_samples: int = 8, autoattack_steps: int = 100,
           square_queries: int = 5000, progress: bool = True) -> AttackResult:
    """Attack each image within the L∞ ball of radius ``eps`` (pixel units of [0,1] images) and
    score the prediction on the result: the robust accuracy with its exact 95 % interval.

    ``attack``: a Table 9 name (:data:`bench.evaluation.attacks.ATTACKS`; PGDL2 and GN keep their L2 and
    noise budgets, 10/255 and 0.1), ``AutoAttack`` (standard version, ``autoattack_steps``,
    ``square_queries``), or ``Vote<name>`` (adaptive: crafted on ``method``'s vote with EOT,
    ``vote_samples``, ``eot_iter``, ``steps``). Examples are crafted on ``model`` (logits), in
    batches of ``batch_size``, after ``torch.manual_seed(seed)``; they are scored by ``predict``
    if given (e.g. your own vote: the paper's protocol), else by ``method.predict``, else by the
    argmax. An input counts as robust if it is right both clean and attacked (the clean image
    lies in its own ball), so robust accuracy <= clean accuracy. ``progress``: a tqdm bar on
    stderr over the images, advanced batch by batch (AutoAttack runs minutes per batch).
    """
    from bench.evaluation.adaptive import make_adaptive_attack
    from bench.evaluation.attacks import AttackBudget, autoattack, autoattack_settings, make_attack

    if not isinstance(model, nn.Module):
        raise TypeError(f"attack needs the differentiable network, an nn.Module returning logits; got "
                        f"{type(model).__name__}. A prediction rule has no gradient: pass the network as model "
                        f"and the rule as predict= (examples crafted on the network, scored by the rule)")
    images, labels, k = _inputs(model, images, labels, num_classes)
    if labels is None:
        raise ValueError("attack needs labels (or a bench.data.Split, which brings them)")
    if not 0 < eps <= 1:
        raise ValueError(f"eps = {eps!r} is out of range; allowed: (0, 1], pixel units of [0,1] images (8/255, 0.3)")
    if predict is not None and method is not None:
        raise ValueError("pass predict= or method=, not both: each one is a way to score the attacked images")
    budget = AttackBudget(linf=float(eps), num_classes=k, seed=seed, channels=images.shape[1],
                          square_queries=square_queries)
    model.eval()
    if attack.startswith("Vote"):
        if not getattr(method, "vote", False):
            raise ValueError(f"'{attack}' attacks a vote adaptively, through a differentiable stand-in built from "
                             f"the vote's inputs: it needs method=, a bench Method that predicts by a vote "
                             f"(bench.evaluation.adaptive.VoteModel). For your own vote over a plain nn.Module, craft on the "
                             f"network instead: attack='{attack[4:]}', predict=your_vote")
        atk, settings = make_adaptive_attack(attack[4:], model, method, budget, vote_samples=vote_samples,
                                             eot_iter=eot_iter, steps=steps)
    elif attack == "AutoAttack":
        atk = autoattack(model, budget, steps=autoattack_steps, queries=square_queries)
        settings = autoattack_settings(budget, autoattack_steps, square_queries)
    else:
        atk, settings = make_attack(attack, model, budget), {"linf": budget.linf, "l2": budget.l2,
                                                             "gaussian_std": budget.gaussian_std}
    rule = predict if predict is not None else (
        (lambda x: method.predict(model, x)) if method is not None else classifier(model))
    torch.manual_seed(seed)
    start, clean, adv, moved = time.perf_counter(), [], [], []
    with tqdm(total=len(images), desc=f"attack[{attack}]", unit="image", disable=not progress, leave=False) as bar:
        for s in range(0, len(images), batch_size):
            x, y = images[s:s + batch_size], labels[s:s + batch_size]
            index = torch.arange(s, s + len(x))
            x_adv = atk(x, y)
            for out, batch, what in ((clean, x, "clean"), (adv, x_adv, "attacked")):
                out.append(rule(batch))
                check_predictions(out[-1], k, f"predict ({what} images)", index)
            moved.append((x_adv - x).abs().flatten(1).amax(1).detach())
            bar.update(len(x))
    label = labels.cpu().numpy()
    clean_pred, adv_pred = torch.cat(clean).cpu().numpy(), torch.cat(adv).cpu().numpy()
    frame = pd.DataFrame({"label": label, "clean_prediction": clean_pred, "adversarial_prediction": adv_pred,
                          "clean_correct": clean_pred == label, "adversarial_correct": adv_pred == label})
    frame["correct"] = frame["clean_correct"] & frame["adversarial_correct"]
    frame["perturbation"] = torch.cat(moved).float().cpu().numpy()
    metrics = _metrics({"clean_accuracy": frame["clean_correct"].to_numpy(),
                        "robust_accuracy": frame["correct"].to_numpy()})
    settings = {"attack": attack, "eps": float(eps), "seed": seed, "num_classes": k, **settings,
                "seconds": time.perf_counter() - start}
    r = metrics.loc["robust_accuracy"]
    log.info("%s at eps %.4g on %d inputs: robust accuracy %.1f%% [%.1f, %.1f]", attack, eps, len(frame),
             r.percent, r.low, r.high)
    return AttackResult(frame, metrics, settings)
