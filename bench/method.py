"""Training methods as plugins: the :class:`Method` base class and the registry.

A method is one small class in one module, decorated with :func:`register_method`. It declares
its key, display name, citation, the architectures it can train (the paper's Table 7), its
default hyperparameters, and its per-batch training loss; it may also declare its own optimiser,
a hook after the backward pass, and its own prediction rule (a vote over the vicinity, say).
Nothing in the engine or the training loop names a method.

The nine methods of the paper live in the package ``methods`` (one module each) and are found
there automatically; a module elsewhere is added with :func:`load_plugin` (a dotted module name
or a path to a ``.py`` file), so a method can be defined outside this repository.

Hyperparameters resolve in this order, later winning: ``defaults["all"]``, then the dataset's
shape group (``defaults["28x28"]`` for MNIST-shaped data, ``defaults["32x32"]`` for SVHN and
CIFAR), then the dataset's own key (``defaults["cifar100"]``), then the user's overrides. An
override that names no known hyperparameter is refused with the list of known ones.
"""
from __future__ import annotations

import importlib
import importlib.util
import logging
import pkgutil
import sys
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import torch
import torch.nn as nn

from bench.data import DatasetInfo
from bench.vicinity import Vicinity

log = logging.getLogger(__name__)

__all__ = [
    "LossOutput",
    "METHODS",
    "Method",
    "available_methods",
    "get_method",
    "load_plugin",
    "majority_vote",
    "register_method",
    "shape_group",
]

METHODS: dict[str, type["Method"]] = {}


@dataclass
class LossOutput:
    """What a method's loss returns for one batch.

    ``loss`` is the scalar to minimise. ``logits`` and ``targets`` (optional) are the outputs
    and labels the loss was computed on, from which the loop counts training accuracy without
    another forward pass. ``terms`` holds named parts of the loss (floats), averaged per epoch
    into the training log, such as the mean and standard-deviation terms of Eq. (5).
    """

    loss: torch.Tensor
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    terms: dict[str, float] = field(default_factory=dict)


def majority_vote(classes: torch.Tensor, num_classes: int) -> torch.Tensor:
    """The most frequent class of each row of ``classes`` (N×n); ties go to the smaller class."""
    counts = torch.zeros(classes.shape[0], num_classes, dtype=torch.long, device=classes.device)
    return counts.scatter_add_(1, classes, torch.ones_like(classes)).argmax(1)


def shape_group(info: DatasetInfo) -> str:
    """``"28x28"`` for MNIST-shaped data, ``"32x32"`` for SVHN and CIFAR."""
    return f"{info.image_size}x{info.image_size}"


class Method:
    """One training method. Subclass, set the class attributes, implement :meth:`loss`."""

    key: ClassVar[str]
    name: ClassVar[str]
    citation: ClassVar[str]
    architectures: ClassVar[tuple[str, ...]]
    defaults: ClassVar[dict[str, dict[str, Any]]] = {}
    vote: ClassVar[bool] = False  # True if the method predicts by a vote over the vicinity
    #: its own certificate, run beside the probabilistic one (bench.native): "smoothing" or "bounds"
    native_certificate: ClassVar[str | None] = None

    def __init__(self, hparams: dict[str, Any], info: DatasetInfo, vicinity: Vicinity,
                 generator: torch.Generator):
        self.hparams = hparams
        self.info = info
        self.vicinity = vicinity
        self.generator = generator  # for every random draw of the method (on the data's device)
        self.epoch = 0  # set by the loop: 0-based epoch
        self.batch = 0  # set by the loop: 0-based batch index within the epoch
        self.batches_per_epoch = 1

    # --- declared ----------------------------------------------------------------------------

    @classmethod
    def resolve_hparams(cls, info: DatasetInfo, overrides: dict[str, Any] | None = None) -> dict[str, Any]:
        """The method's hyperparameters for dataset ``info``, with ``overrides`` applied."""
        known = cls.defaults.get("all", {})
        resolved = dict(known)
        for key in (shape_group(info), info.name):
            resolved.update(cls.defaults.get(key, {}))
        names = set(resolved) | {k for group in cls.defaults.values() for k in group}
        for key, value in (overrides or {}).items():
            if key not in names:
                raise ValueError(
                    f"method '{cls.key}' has no hyperparameter '{key}'; known: {', '.join(sorted(names)) or 'none'}"
                )
            resolved[key] = value
        return resolved

    # --- hooks the loop calls ----------------------------------------------------------------

    def prepare(self, model: nn.Module, example: torch.Tensor) -> nn.Module:
        """Called once before training (and before a resumed run loads its weights); returns
        the module to train. ``example`` is one training batch. Default: ``model`` unchanged."""
        return model

    def optimizer(self, model: nn.Module, arch: str):
        """``(optimizer, scheduler)``; default: the paper's Appendix C.1 choice."""
        from bench.train import make_optimizer

        return make_optimizer(model, arch, self.info)

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """The training loss of one batch (images N×C×H×W in [0,1], labels N)."""
        raise NotImplementedError

    def after_backward(self, model: nn.Module) -> None:
        """Called between ``backward()`` and ``optimizer.step()`` (gradient clipping, say)."""

    def predict(self, model: nn.Module, images: torch.Tensor) -> torch.Tensor:
        """The method's prediction for a batch: argmax of the logits, or, for a voting method,
        the majority class over ``vote_samples`` of its :meth:`vote_inputs`."""
        with torch.inference_mode():
            model.eval()
            if not self.vote:
                return model(images).argmax(1)
            n = int(self.hparams["vote_samples"])
            votes = model(self.vote_inputs(images, n)).argmax(1).view(len(images), n)
            return majority_vote(votes, self.info.num_classes)

    def vote_inputs(self, images: torch.Tensor, n: int) -> torch.Tensor:
        """The ``n`` inputs per image a voting method classifies, (N·n)×C×H×W, grouped by image;
        differentiable in ``images`` (the adaptive attacks take gradients through it).
        Default: draws of the vicinity (Eq. 6)."""
        return self.samples(images, n)

    def samples(self, images: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` draws of the vicinity per image, (N·n)×C×H×W, from the method's generator."""
        return self.vicinity.flat(images, n, self.generator)


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: add ``cls`` to the registry under ``cls.key``."""
    for attr in ("key", "name", "citation", "architectures"):
        if not hasattr(cls, attr):
            raise TypeError(f"method class {cls.__name__} must declare '{attr}'")
    if cls.key in METHODS and METHODS[cls.key] is not cls:
        existing = METHODS[cls.key]
        if (existing.__module__, existing.__qualname__) != (cls.__module__, cls.__qualname__):
            raise ValueError(f"method '{cls.key}' is registered twice ({existing.__module__}, {cls.__module__})")
    METHODS[cls.key] = cls
    return cls


_discovered = False


def _discover() -> None:
    """Import every module of the ``methods`` package once, so that each registers itself."""
    global _discovered
    if _discovered:
        return
    import methods

    for info in pkgutil.iter_modules(methods.__path__):
        if not info.name.startswith("_"):
            importlib.import_module(f"methods.{info.name}")
    _discovered = True


def load_plugin(spec: str) -> None:
    """Import a module that registers methods: a dotted module name or a path to a .py file."""
    path = Path(spec)
    if spec.endswith(".py"):
        if not path.exists():
            raise FileNotFoundError(f"method plugin file not found: {path}")
        name = f"bench_plugin_{path.stem}"
        module_spec = importlib.util.spec_from_file_location(name, path)
        module = importlib.util.module_from_spec(module_spec)
        sys.modules[name] = module
        module_spec.loader.exec_module(module)
    else:
        importlib.import_module(spec)


def available_methods() -> list[str]:
    """Keys of all registered methods (the package ``methods`` plus loaded plugins)."""
    _discover()
    return list(METHODS)


def get_method(key: str) -> type[Method]:
    """The method class registered as ``key``; an unknown key lists the known ones."""
    _discover()
    try:
        return METHODS[key]
    except KeyError:
        raise ValueError(f"unknown method '{key}'; known: {', '.join(METHODS)}") from None
