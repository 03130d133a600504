"""What a training method is: the :class:`Method` base class, :func:`register_method` and its
registry (:mod:`bench.training.plugins` finds the registered methods and looks them up).

A method is one small class in one module, decorated with :func:`register_method`. It declares
its key, display name, citation, the architectures it can train (the paper's Table 7), its
default hyperparameters, and its per-batch training loss; it may also declare its own optimiser,
a hook after the backward pass, and its own prediction rule (a vote over the vicinity, say).
Nothing in the engine or the training loop names a method.

The nine methods of the paper live in the package ``methods`` (one module each) and are found
there automatically; a module elsewhere is added with :func:`bench.training.load_plugin` (a dotted module name
or a path to a ``.py`` file), so a method can be defined outside this repository.

The loop calls :meth:`Method.loss_and_backward`: the loss of one batch with its gradient already
accumulated into the parameters' ``.grad``. By default that is :meth:`Method.loss` and one
``backward``. Methods whose loss forwards many vicinity draws per image (DA, PRL, Ours) derive
from :class:`VicinalMethod` and declare a per-image loss instead; under a memory budget
(:mod:`bench.compute.memory`) the batch is then evaluated in chunks of whole images, with one backward
per chunk (gradient accumulation), so that only one chunk's graph is alive at a time.

Hyperparameters resolve in this order, later winning: ``defaults["all"]``, then the dataset's
shape group (``defaults["28x28"]`` for MNIST-shaped data, ``defaults["32x32"]`` for SVHN and
CIFAR), then the dataset's own key (``defaults["cifar100"]``), then the user's overrides. An
override that names no known hyperparameter is refused with the list of known ones.

Each hyperparameter declares the values it may take, once, in ``ranges`` beside ``defaults``:
a :class:`Range` (``Range.count(1)``: an integer >= 1; ``Range.above(0)``: a finite number > 0;
``Range.between(0, 1)``; ``Range.one_of("IBP", "CROWN")``; …). :func:`register_method` refuses a
range that names no hyperparameter and a default outside its range; the config check
(:mod:`bench.workflow.config`) refuses an override outside it before any job runs.
"""
from __future__ import annotations

import logging
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import Any, ClassVar

import torch
import torch.nn as nn

from bench.certification.vicinity import Vicinity
from bench.compute.memory import chunk_size, get_budget, is_out_of_memory, map_in_chunks, run_chunked
from bench.data import DatasetInfo
from bench.registry import Registry

log = logging.getLogger(__name__)

__all__ = [
    "Backward",
    "ImageLosses",
    "LossOutput",
    "METHODS",
    "Method",
    "Range",
    "majority_vote",
    "plain_backward",
    "register_method",
    "shape_group",
    "VicinalMethod",
]

METHODS: Registry[type["Method"]] = Registry("method")


@dataclass
class LossOutput:
    """What a method's loss returns for one batch.

    ``loss`` is the scalar to minimise. ``logits`` and ``targets`` (optional) are the outputs
    and labels the loss was computed on, from which the loop counts training accuracy without
    another forward pass. ``terms`` holds named parts of the loss, averaged per epoch into the
    training log, such as the mean and standard-deviation terms of Eq. (5): scalar tensors
    (left on the device: the loop averages them without waiting for it after every batch) or
    floats.
    """

    loss: torch.Tensor
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None
    terms: dict[str, torch.Tensor | float] = field(default_factory=dict)


@dataclass(frozen=True)
class Range:
    """The values one hyperparameter may take: numbers from ``low`` to ``high`` (each end closed
    unless ``low_open``/``high_open``), whole numbers only if ``integer``, and never NaN, nor ±inf
    where ``finite``; or, if ``choices`` is given, exactly one of those (words, flags). With
    ``each``, the value is a list and every item of it must lie in the range.

    Build one with the class methods, which read as what they allow: ``Range.count(1)``,
    ``Range.at_least(0)``, ``Range.above(0)``, ``Range.between(0, 1, low_open=True)``,
    ``Range.one_of("IBP", "CROWN")``, ``Range.flag()``. ``str(range)`` says what it allows, in
    the words of the config check's ``allowed:``.
    """

    low: float = -math.inf
    high: float = math.inf
    low_open: bool = False
    high_open: bool = False
    integer: bool = False
    finite: bool = True
    choices: tuple = ()
    each: bool = False

    @classmethod
    def count(cls, low: int = 1, *, each: bool = False) -> "Range":
        """A whole number >= ``low`` (samples, steps, epochs)."""
        return cls(low=low, integer=True, each=each)

    @classmethod
    def at_least(cls, low: float) -> "Range":
        """A finite number >= ``low`` (a weight that may be 0, a radius)."""
        return cls(low=low)

    @classmethod
    def above(cls, low: float, *, finite: bool = True) -> "Range":
        """A number > ``low``, finite unless ``finite`` is False (a step size, a learning rate)."""
        return cls(low=low, low_open=True, finite=finite)

    @classmethod
    def between(cls, low: float, high: float, *, low_open: bool = False, high_open: bool = False) -> "Range":
        """A number from ``low`` to ``high`` (a probability: ``between(0, 1)``)."""
        return cls(low=low, high=high, low_open=low_open, high_open=high_open)

    @classmethod
    def one_of(cls, *choices: Any) -> "Range":
        """Exactly one of ``choices``."""
        return cls(choices=tuple(choices))

    @classmethod
    def flag(cls) -> "Range":
        """True or False."""
        return cls.one_of(True, False)

    def problem(self, value: Any) -> str | None:
        """What is wrong with ``value`` (``"is out of range"``, ``"is not finite"``, …), or None
        if the range allows it. A string that ``float()`` reads is a number (PyYAML reads
        ``1e-3`` as one; the methods convert with ``float()``); a bool is not."""
        if self.each:
            if not isinstance(value, (list, tuple)):
                return "is not a list"
            item = replace(self, each=False)
            wrong = [why for why in map(item.problem, value) if why is not None]
            return f"has an item that {wrong[0]}" if wrong else None
        if self.choices:
            # type-exact: True == 1 in Python, yet a flag is no number and 1 is no flag
            chosen = any(value == c and type(value) is type(c) for c in self.choices)
            return None if chosen else "is not one of the choices"
        if isinstance(value, bool) or not isinstance(value, (numbers.Real, str)):
            return "is not a number"
        try:
            x = float(value)
        except ValueError:
            return "is not a number"
        if self.integer and isinstance(value, str) and not value.strip().lstrip("+-").isdigit():
            return "is not a whole number"  # the methods read it with int(), which takes digits only
        if math.isnan(x) or (self.finite and math.isinf(x)):
            return "is not finite"
        if self.integer and not x.is_integer():
            return "is not a whole number"
        below = x <= self.low if self.low_open else x < self.low
        above = x >= self.high if self.high_open else x > self.high
        return "is out of range" if below or above else None

    def __str__(self) -> str:
        if self.each:
            return f"a list, each item {replace(self, each=False)}"
        if self.choices:
            if all(isinstance(c, bool) for c in self.choices):
                return " or ".join(str(c).lower() for c in self.choices)  # as YAML writes them
            return "one of " + ", ".join(map(repr, self.choices))
        num = lambda x: f"{x:g}"
        what = "an integer" if self.integer else "a finite number" if self.finite else "a number"
        low, high = not math.isinf(self.low), not math.isinf(self.high)
        if low and high:
            ends = f"{'(' if self.low_open else '['}{num(self.low)}, {num(self.high)}{')' if self.high_open else ']'}"
            return f"{'an integer' if self.integer else 'a number'} in {ends}"
        if low:
            return f"{what} {'>' if self.low_open else '>='} {num(self.low)}" + ("" if self.finite else ", or inf")
        if high:
            return f"{what} {'<' if self.high_open else '<='} {num(self.high)}" + ("" if self.finite else ", or -inf")
        return what


#: how a loss is back-propagated: :func:`plain_backward` by default, or a caller's own (to scale
#: the loss for fp16, say: ``lambda loss: scaler.scale(loss).backward()``); called once per chunk
Backward = Callable[[torch.Tensor], None]


def plain_backward(loss: torch.Tensor) -> None:
    """``loss.backward()`` outside any autocast region (PyTorch's advice: autocast wraps the
    forward only; the backward ops take the dtypes the forward chose): the default
    :data:`Backward`."""
    device_type = loss.device.type
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        with torch.autocast(device_type, enabled=False):
            loss.backward()
    else:
        loss.backward()


@dataclass
class ImageLosses:
    """A :class:`VicinalMethod`'s loss on a run of N' images (the batch, or a chunk of it).

    ``losses``: the per-image loss (N'), whose batch mean is the method's loss. ``terms``: named
    per-image values (N' each, detached), whose batch means are logged (:class:`LossOutput`).
    ``logits`` and ``targets``: for the training accuracy, as in :class:`LossOutput`.
    """

    losses: torch.Tensor
    terms: dict[str, torch.Tensor] = field(default_factory=dict)
    logits: torch.Tensor | None = None
    targets: torch.Tensor | None = None

    def detached(self) -> "ImageLosses":
        """The same values, cut from the graph (kept after a chunk's backward)."""
        cut = lambda t: None if t is None else t.detach()
        return ImageLosses(self.losses.detach(), {k: v.detach() for k, v in self.terms.items()},
                           cut(self.logits), cut(self.targets))

    @staticmethod
    def cat(parts: list["ImageLosses"]) -> "ImageLosses":
        """The chunks ``parts`` (in batch order) as one run of images."""
        cat = lambda tensors: None if tensors[0] is None else torch.cat(tensors)
        return ImageLosses(torch.cat([p.losses for p in parts]),
                           {k: torch.cat([p.terms[k] for p in parts]) for k in parts[0].terms},
                           cat([p.logits for p in parts]), cat([p.targets for p in parts]))

    def output(self) -> LossOutput:
        """The batch's :class:`LossOutput`: the mean loss and the mean of each term (scalar
        tensors, left on the device)."""
        return LossOutput(self.losses.mean(), self.logits, self.targets,
                          {k: v.mean() if v.is_floating_point() else v.float().mean()
                           for k, v in self.terms.items()})


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
    #: the values each hyperparameter may take (hyperparameter -> :class:`Range`), declared once
    #: beside ``defaults``; a hyperparameter without one is not checked (a plugin's, say)
    ranges: ClassVar[dict[str, Range]] = {}
    #: where each default comes from (hyperparameter -> paper section, or repository, file and
    #: setting name); ``python -m bench methods --recipes`` prints them, a test requires one each
    sources: ClassVar[dict[str, str]] = {}
    #: the training batch size of the method's recipe per shape group, used when the config's
    #: ``train.batch_size`` is ``recipe``; default: the paper's authors' scripts ('batch_size':32
    #: in experiments/e1.py, e2.py, e3.py; the paper is silent)
    batch_size: ClassVar[dict[str, int]] = {"28x28": 32, "32x32": 32}
    vote: ClassVar[bool] = False  # True if the method predicts by a vote over the vicinity
    #: its own certificate, run beside the probabilistic one (bench.evaluation.native): "smoothing" or "bounds"
    native_certificate: ClassVar[str | None] = None
    #: True where the training schedule is stretched to the run's epochs (IBP's eps ramp and
    #: rate decay): a longer run must then start over rather than resume a shorter one
    schedule_scales_with_epochs: ClassVar[bool] = False

    def __init__(self, hparams: dict[str, Any], info: DatasetInfo, vicinity: Vicinity,
                 generator: torch.Generator):
        self.hparams = hparams
        self.info = info
        self.vicinity = vicinity
        self.generator = generator  # for every random draw of the method (on the data's device)
        self.epoch = 0  # set by the loop: 0-based epoch
        self.epochs = 1  # set by the loop before optimizer(): the run's number of epochs
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

    @classmethod
    def range_problems(cls, hparams: dict[str, Any]) -> dict[str, str]:
        """Each hyperparameter of ``hparams`` outside its declared :class:`Range`: name -> what is
        wrong (``"is out of range"``, …); hyperparameters without a range are not checked."""
        found = {}
        for name, value in hparams.items():
            why = cls.ranges[name].problem(value) if name in cls.ranges else None
            if why is not None:
                found[name] = why
        return found

    # --- hooks the loop calls ----------------------------------------------------------------

    def prepare(self, model: nn.Module, example: torch.Tensor) -> nn.Module:
        """Called once before training (and before a resumed run loads its weights); returns
        the module to train. ``example`` is one training batch. Default: ``model`` unchanged."""
        return model

    def optimizer(self, model: nn.Module, arch: str):
        """``(optimizer, scheduler)``; default: the paper's Appendix C.1 choice."""
        from bench.training.optim import make_optimizer

        return make_optimizer(model, arch, self.info)

    def loss(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor) -> LossOutput:
        """The training loss of one batch (images N×C×H×W in [0,1], labels N)."""
        raise NotImplementedError

    def loss_and_backward(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                          backward: Backward = plain_backward) -> LossOutput:
        """What the loop calls: the loss of one batch, its gradient accumulated into ``.grad`` by
        ``backward`` (called once per chunk, so that mixed precision can scale it), the returned
        loss detached. Default: :meth:`loss` and one ``backward``."""
        out = self.loss(model, images, labels)
        backward(out.loss)
        return replace(out, loss=out.loss.detach())

    def after_backward(self, model: nn.Module) -> None:
        """Called between ``backward()`` and ``optimizer.step()`` (gradient clipping, say)."""

    def predict(self, model: nn.Module, images: torch.Tensor, precision=None) -> torch.Tensor:
        """The method's prediction for a batch: argmax of the logits, or, for a voting method,
        the majority class over ``vote_samples`` of its :meth:`vote_inputs`.

        ``precision`` (:class:`bench.compute.precision.Precision` or its name; None: fp32, as before)
        sets how the forward passes run; the vote inputs are drawn outside autocast, in fp32.
        The vote's N·n inputs are drawn at once (the same draws with or without a memory budget)
        and, under a budget (:mod:`bench.compute.memory`), classified in chunks: the same votes."""
        from bench.compute.precision import autocast, prepare_input

        classify = lambda inputs: model(inputs).argmax(1)
        with torch.inference_mode():
            model.eval()
            if not self.vote:
                with autocast(images.device, precision):
                    return map_in_chunks(classify, prepare_input(images, precision), model, train=False)
            n = int(self.hparams["vote_samples"])
            inputs = prepare_input(self.vote_inputs(images, n), precision)
            with autocast(images.device, precision):
                votes = map_in_chunks(classify, inputs, model, train=False)
            return majority_vote(votes.view(len(images), n), self.info.num_classes)

    def vote_inputs(self, images: torch.Tensor, n: int) -> torch.Tensor:
        """The ``n`` inputs per image a voting method classifies, (N·n)×C×H×W, grouped by image;
        differentiable in ``images`` (the adaptive attacks take gradients through it).
        Default: draws of the vicinity (Eq. 6)."""
        return self.samples(images, n)

    def samples(self, images: torch.Tensor, n: int) -> torch.Tensor:
        """``n`` draws of the vicinity per image, (N·n)×C×H×W, from the method's generator."""
        return self.vicinity.flat(images, n, self.generator)


class VicinalMethod(Method):
    """A method whose loss is the batch mean of a per-image loss of ``n`` vicinity draws each:
    vicinal risk minimisation (Chapelle et al. 2000), of which DA, PRL and Ours are instances.

    A subclass implements :meth:`image_losses` and names the hyperparameter holding ``n``
    (``draws_hparam``). The base class draws the batch's N·n samples in one call of the
    method's generator (so a chunked and an unchunked step see the same draws) and:

    - :meth:`loss`: the per-image losses of the whole batch in one call, and their mean;
    - :meth:`loss_and_backward`, under a memory budget: the batch in chunks of whole images,
      each chunk carrying all n draws of its images (Ours' per-image standard deviation does not
      decompose over draws); each chunk's loss is its images' sum divided by the batch size N,
      and is back-propagated at once, so the chunks' gradients add up to the batch mean's
      gradient (gradient accumulation) and only one chunk's graph is alive at a time. The chunk
      size comes from the budget (:func:`bench.compute.memory.chunk_size`, ``inputs_per_image`` forwards
      per image); an out-of-memory error halves it and redoes that chunk, whose partial gradient
      is first undone (each chunk keeps a copy of the gradients from before it, for that).

    Layers that look across the batch see a chunk, not the batch: BatchNorm normalises each
    chunk by its own statistics (as ghost batch normalisation, Hoffer et al. 2017) and updates
    its running statistics once per chunk; dropout draws its masks per chunk (same distribution,
    other draws). Without such layers, a chunked step's gradient equals the unchunked one's up
    to float rounding.
    """

    draws_hparam: ClassVar[str] = "n_samples"

    def draws(self) -> int:
        """n, the vicinity draws per image."""
        return int(self.hparams[self.draws_hparam])

    def inputs_per_image(self) -> int:
        """Images the network forwards per batch image (sizes the chunks): n by default."""
        return self.draws()

    def image_losses(self, model: nn.Module, images: torch.Tensor, labels: torch.Tensor,
                     samples: torch.Tensor, batch_size: int) -> ImageLosses:
        """The per-image loss of N' images (N'×C×H×W, labels N') from their draws ``samples``
        (N'×n×C×H×W, the n draws of each image). ``batch_size`` is the whole batch's N, which
        N' is smaller than for a chunk: a loss that depends on N must use it."""
        raise NotImplementedError

    def _draw(self, images: torch.Tensor) -> torch.Tensor:
        n = self.draws()
        return self.samples(images, n).view(len(images), n, *images.shape[1:])

    def loss(self, model, images, labels):
        part = self.image_losses(model, images, labels, self._draw(images), len(labels))
        return part.output()

    def loss_and_backward(self, model, images, labels, backward=plain_backward):
        budget = get_budget()
        if budget is None:  # no chunking: one forward and one backward, as without a budget
            return super().loss_and_backward(model, images, labels, backward)
        N = len(labels)
        samples = self._draw(images)
        per_chunk = max(1, chunk_size(model, images, budget, train=True) // self.inputs_per_image())
        params = [p for p in model.parameters() if p.requires_grad]

        def step(start: int, stop: int) -> ImageLosses:
            grads = [None if p.grad is None else p.grad.clone() for p in params]
            try:
                part = self.image_losses(model, images[start:stop], labels[start:stop],
                                         samples[start:stop], N)
                backward(part.losses.sum() / N)
            except RuntimeError as error:
                if is_out_of_memory(error):  # undo this chunk's partial gradient before the retry
                    for p, g in zip(params, grads):
                        p.grad = g
                raise
            return part.detached()

        parts = run_chunked(step, N, per_chunk, key=("loss", self.key, id(model)))
        out = ImageLosses.cat(parts).output()
        if len(parts) > 1:
            log.debug("%s: %d images in %d chunks of at most %d", self.key, N, len(parts), per_chunk)
        return out


def register_method(cls: type[Method]) -> type[Method]:
    """Class decorator: add ``cls`` to the registry under ``cls.key``, after checking that it
    declares what a method must, that its ``ranges`` name only its hyperparameters, and that
    every default (in every group of ``defaults``) lies in its range."""
    for attr in ("key", "name", "citation", "architectures"):
        if not hasattr(cls, attr):
            raise TypeError(f"method class {cls.__name__} must declare '{attr}'")
    names = {k for group in cls.defaults.values() for k in group}
    stray = sorted(set(cls.ranges) - names)
    if stray:
        raise TypeError(f"method class {cls.__name__} declares ranges of {', '.join(stray)}, which are not among "
                        f"its hyperparameters ({', '.join(sorted(names)) or 'none'})")
    for group, values in cls.defaults.items():
        for name, why in cls.range_problems(values).items():
            raise TypeError(f"method class {cls.__name__}: the default {name} = {values[name]!r} ({group}) {why}; "
                            f"allowed: {cls.ranges[name]}")
    return METHODS.add(cls.key, cls)
